"""Training throughput of routertrain's loop against the transformers Trainer, on real query lengths.

Both train the same router shape (a DeBERTa-v3 encoder built from its config with random weights,
one output per model), on MMLU-Pro queries tokenised with the real DeBERTa-v3 tokenizer, with the
same global batch, optimizer steps, learning-rate schedule and precision:

- ``routertrain``: ``routertrain.train(cfg)``, the project's own loop (length-grouped batches,
  dynamic padding, fused AdamW on CUDA, masked BCE);
- ``trainer``: ``AutoModelForSequenceClassification`` with ``problem_type=multi_label_classification``
  and the Trainer's default data handling (random order, padding to the longest of each batch).

Each side runs in its own process (so peak memory is its own) and reports samples/s, real
(non-padding) tokens/s, model FLOP utilisation counted on real tokens, and peak memory.

    python benchmarks/throughput.py --preset cpu-small        # 2 CPU cores: small DeBERTa shape
    python benchmarks/throughput.py --preset gpu-large        # one GPU: the real DeBERTa-v3-large shape
    python benchmarks/throughput.py --kernels hf,disentangled-flash-torch   # one routertrain row per attention kernel

``--export DIR`` writes the data and tokenizer for a machine without ../shared (``--data-disk``,
``--tokenizer``); ``benchmarks/gpu_session.sh`` uses it. Results are appended to BENCHMARKS.md
with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from routertrain.provenance import atomic_write_json  # noqa: E402

PRESETS = {
    # a DeBERTa-v3 shape small enough for 2 CPU cores; real vocabulary and tokenizer
    "cpu-small": dict(hidden=256, layers=4, heads=4, intermediate=1024, batch=16, max_length=256, precision="no", queries=800),
    # microsoft/deberta-v3-large's shape (435M parameters)
    "gpu-large": dict(hidden=1024, layers=24, heads=16, intermediate=4096, batch=32, max_length=256, precision="bf16", queries=6000),
}
for _p in PRESETS.values():  # one epoch by default: both loops then see exactly the same queries and tokens
    _p["steps"] = _p["queries"] // _p["batch"]
N_MODELS = 11
POSITION_BUCKETS = 256  # DeBERTa-v3's relative-position buckets: 2 x 256 relative slots
# dense bf16 tensor-core peaks, most specific name first (torch names the SXM H100 "NVIDIA H100 80GB HBM3")
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}


def deberta_config(preset: dict, dropout: float = 0.1):
    """microsoft/deberta-v3-*'s architecture at the preset's size (relative attention, 256 position buckets)."""
    from transformers import DebertaV2Config

    return DebertaV2Config(
        vocab_size=128100, hidden_size=preset["hidden"], num_hidden_layers=preset["layers"], num_attention_heads=preset["heads"],
        intermediate_size=preset["intermediate"], max_position_embeddings=512, relative_attention=True, position_buckets=POSITION_BUCKETS,
        norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
        max_relative_positions=-1, layer_norm_eps=1e-7, pad_token_id=0, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )


def tokenizer_dir(args) -> Path:
    from routertrain.model.encoders import deberta_v3_tokenizer_dir

    return Path(args.tokenizer) if args.tokenizer else deberta_v3_tokenizer_dir()


def build_encoder_folder(args, preset: dict, folder: Path) -> Path:
    """A DeBERTa-v3-shaped model with random weights, saved with the real DeBERTa-v3 tokenizer."""
    import torch
    from transformers import AutoTokenizer, DebertaV2Model

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(args))
    torch.manual_seed(0)
    DebertaV2Model(deberta_config(preset)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def routing_data(args, preset: dict):
    """MMLU-Pro (real queries and correctness of the first N_MODELS open-weight models), or the
    same data from a folder written by ``--export`` (for machines without ../shared)."""
    from routertrain.config import load_config
    from routertrain.data import load_routing_data

    if args.data_disk:
        return load_routing_data(load_config(["data.name=disk", f"data.path={args.data_disk}"]).data)
    cfg = load_config(["data=mmlu-pro", f"data.path={args.data_path}", "data.pool=open-weight"])
    data = load_routing_data(cfg.data)
    keep = data.models[:N_MODELS]
    cfg = load_config(["data=mmlu-pro", f"data.path={args.data_path}", f"data.models=[{','.join(keep)}]"])
    data = load_routing_data(cfg.data)
    n = min(max(p["queries"] for p in PRESETS.values()), len(data.splits["train"]))
    data.splits["train"] = data.splits["train"].select(range(n))
    data.splits["validation"] = data.splits["validation"].select(range(min(256, len(data.splits["validation"]))))
    data.splits["test"] = data.splits["test"].select(range(min(256, len(data.splits["test"]))))
    return data


def preset_data(args, preset: dict):
    """The preset's share of the training queries (the first ``queries``; validation and test whole)."""
    data = routing_data(args, preset)
    data.splits["train"] = data.splits["train"].select(range(min(preset["queries"], len(data.splits["train"]))))
    return data


def query_lengths(args, preset: dict):
    """DeBERTa-v3 token counts of the preset's training queries (truncated at max_length)."""
    import numpy as np
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir(args))
    queries = list(preset_data(args, preset).splits["train"]["query"])
    return np.array([len(x) for x in tok(queries, truncation=True, max_length=preset["max_length"])["input_ids"]])


def export(args, folder: Path) -> None:
    """Write the benchmark's data and tokenizer to ``folder`` so a machine without ../shared can run it."""
    from transformers import AutoTokenizer

    routing_data(args, PRESETS["gpu-large"]).save_to_disk(folder / "data")
    AutoTokenizer.from_pretrained(tokenizer_dir(args)).save_pretrained(folder / "tokenizer")
    print(f"wrote {folder}/data and {folder}/tokenizer; run with --data-disk {folder}/data --tokenizer {folder}/tokenizer")


def train_flops(preset: dict, lengths) -> tuple[float, float]:
    """Model FLOPs of one training step's work, counted on real tokens (forward + backward = 3 x forward):
    (mean FLOPs per query, FLOPs per optimizer step that do not depend on the queries).

    Per query of n real tokens, in each of L layers of width h:
    - dense: 6 x (4h^2 + 2hi) per token (attention projections and feed-forward; embeddings are lookups);
    - attention: 12 x h x n per token for the content scores and the weighted values;
    - DeBERTa's relative terms, content-to-position and position-to-content: each scores a token
      against the relative positions it needs, r = min(2n, 2 x position buckets), so 12 x h x r per token.
    Per step, each layer projects the r_max-row relative-position table with its query and key
    weights (12 x r_max x h^2), r_max for the longest query. This is the work the model needs;
    transformers' eager attention does more (it scores every one of the 2 x 256 relative slots)."""
    import numpy as np

    h, L, i = preset["hidden"], preset["layers"], preset["intermediate"]
    n = np.asarray(lengths, dtype=np.float64)
    slots = 2 * POSITION_BUCKETS
    rel = np.minimum(2 * n, slots)
    per_query = L * (6 * (4 * h * h + 2 * h * i) * n + 12 * h * n * n + 12 * h * n * rel)
    per_step = L * 12 * min(2 * float(n.max()), slots) * h * h
    return float(per_query.mean()), float(per_step)


def mfu(result: dict, preset: dict, lengths, peak: float) -> float:
    """Model FLOP utilisation: the FLOPs of the queries trained per second over the device's peak."""
    per_query, per_step = train_flops(preset, lengths)
    return (result["samples_per_s"] * per_query + preset["steps"] / result["runtime_s"] * per_step) / peak


def peak_flops(device: str) -> tuple[float, str]:
    """The accelerator's bf16 peak, or on CPU a large fp32 matmul measured now (same run)."""
    import torch

    if device == "cuda":
        name = torch.cuda.get_device_name()
        for key, tflops in PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name} bf16 dense peak {tflops:.0f} TFLOP/s"
        return float("nan"), name
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    rate = reps * 2 * 2048**3 / (time.perf_counter() - start)
    return rate, f"CPU fp32 matmul measured {rate / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)"


def run_routertrain(args, preset: dict, encoder: Path, data, out: Path, kernel: str = "hf") -> dict:
    from routertrain.config import load_config
    from routertrain.training.loop import train

    saved = out / "dataset"
    data.save_to_disk(saved)
    cfg = load_config([
        "data.name=disk", f"data.path={saved}", f"data.max_length={preset['max_length']}",
        f"model.name_or_path={encoder}", f"run.output_dir={out}", f"run.name=routertrain-{kernel}", "train.resume=never", f"model.attention_kernel={kernel}",
        f"train.global_batch_size={preset['batch']}", f"train.max_steps={preset['steps']}", "train.lr=2e-5", "train.warmup_ratio=0.1",
        f"train.mixed_precision={preset['precision']}", "train.eval_every=100000", "train.save_every=-1",
        "eval.splits=validation", "model.dropout=0.1", f"train.num_workers={args.workers}",
    ])
    results = train(cfg)
    t = results["train"]
    return {"samples_per_s": t["samples_per_s"], "real_tokens_per_s": t["real_tokens_per_s"], "padding_share": t["padding_share"],
            "validation_routing_acc": results["validation"]["routing_acc"], "runtime_s": t["runtime_s"]}


def run_trainer(args, preset: dict, encoder: Path, data, out: Path) -> dict:
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from routertrain.evaluation import decision as M

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=len(data.models), problem_type="multi_label_classification")

    def encode(batch):
        return tokenizer(batch["query"], truncation=True, max_length=preset["max_length"])

    train_ds = data.splits["train"].map(encode, batched=True, remove_columns=[c for c in data.splits["train"].column_names if c != "labels"])
    val_ds = data.splits["validation"].map(encode, batched=True, remove_columns=[c for c in data.splits["validation"].column_names if c != "labels"])
    targs = TrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=preset["batch"], max_steps=preset["steps"], learning_rate=2e-5,
        warmup_steps=int(0.1 * preset["steps"]), lr_scheduler_type="linear", weight_decay=0.01, bf16=preset["precision"] == "bf16",
        logging_steps=10**6, save_strategy="no", eval_strategy="no", report_to=[], seed=42, dataloader_num_workers=args.workers,
        per_device_eval_batch_size=64,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, processing_class=tokenizer)
    stats = trainer.train().metrics
    samples = preset["steps"] * preset["batch"]
    mean_len = float(np.mean([len(x) for x in train_ds["input_ids"]]))
    logits = trainer.predict(val_ds).predictions
    acc = M.score_accuracy(logits, data.labels("validation"))
    return {"samples_per_s": samples / stats["train_runtime"], "real_tokens_per_s": samples * mean_len / stats["train_runtime"],
            "validation_routing_acc": acc, "runtime_s": stats["train_runtime"]}


def warm_up(encoder: Path, impl: str, preset: dict, max_len: int) -> float:
    """Seconds spent on the first calls of the side's attention, on a throwaway copy of the encoder.

    Triton kernels compile once per sequence length (and batch size), so the routertrain row with
    disentangled-flash's kernels gets one forward + backward at every padded length its batches can
    have (multiples of the loop's padding multiple); the others one at the longest length (cuBLAS and
    allocator set-up). Those seconds are reported apart, not in samples/s: in a real run of hours
    they are paid once."""
    import torch
    from transformers import DebertaV2Model

    from routertrain.model.kernels import apply_attention_kernel, padding_multiple

    kernel = impl.split(":")[1] if impl.startswith("routertrain:") else "hf"
    model = apply_attention_kernel(DebertaV2Model.from_pretrained(encoder), kernel, "cuda").cuda().train()
    multiple = padding_multiple(model)
    widths = range(multiple, preset["max_length"] + multiple, multiple) if multiple > 1 else [max_len]
    torch.cuda.synchronize()
    start = time.perf_counter()
    for width in widths:
        ids = torch.randint(5, model.config.vocab_size, (preset["batch"], min(width, preset["max_length"])), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=preset["precision"] == "bf16"):
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        hidden.float().mean().backward()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    del model, hidden
    torch.cuda.empty_cache()
    return seconds


def child(args) -> int:
    """Run one side and print its JSON result as the last line."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    preset = PRESETS[args.preset]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.work)
    encoder = out / "encoder"
    data = preset_data(args, preset)
    tok = AutoTokenizer.from_pretrained(encoder)
    lengths = [len(x) for x in tok(list(data.splits["train"]["query"]), truncation=True, max_length=preset["max_length"])["input_ids"]]
    warmup_s = warm_up(encoder, args.impl, preset, max(lengths)) if device == "cuda" else None
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.impl == "trainer":
        result = run_trainer(args, preset, encoder, data, out)
    else:
        result = run_routertrain(args, preset, encoder, data, out, kernel=args.impl.split(":")[1])
    peak, peak_name = (args.peak_flops, args.peak_name) if args.peak_flops else peak_flops(device)
    result.update({
        "impl": args.impl, "preset": args.preset, "device": peak_name, "mean_real_tokens": float(np.mean(lengths)), "warmup_s": warmup_s,
        "mfu": mfu(result, preset, lengths, peak),
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "memory_kind": "GPU allocated" if device == "cuda" else "process max RSS",
    })
    print(json.dumps(result))
    return 0


def median_row(rows: list[dict], impl: str) -> dict:
    import numpy as np

    mine = [r for r in rows if r["impl"] == impl]
    out = dict(mine[0])
    for key in ("samples_per_s", "real_tokens_per_s", "mfu", "peak_memory_gb", "validation_routing_acc"):
        out[key] = float(np.median([r[key] for r in mine]))
    out["rounds"] = [round(r["samples_per_s"], 2) for r in mine]
    return out


def table(rows: list[dict], preset: dict, command: str, failed: dict | None = None) -> str:
    """The markdown table of a run: one row per side (medians over rounds), ratios to the Trainer."""
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    medians = [median_row(rows, impl) for impl in impls]
    theirs = next((r for r in medians if r["impl"] == "trainer"), None)
    ours = [r for r in medians if r["impl"] != "trainer"]
    first = medians[0] if medians else {"preset": "?", "device": "?", "mean_real_tokens": float("nan"), "rounds": []}
    warm = any(r.get("warmup_s") is not None for r in medians)
    lines = [
        f"### {first['preset']}: {time.strftime('%Y-%m-%d')}, {first['device']}",
        "",
        f"`{command}`",
        "",
        f"Model: DeBERTa-v3 shape hidden {preset['hidden']} x {preset['layers']} layers (random weights, real tokenizer), {N_MODELS}-model head; "
        f"global batch {preset['batch']}, max {preset['max_length']} tokens (mean real {first['mean_real_tokens']:.0f}), {preset['steps']} steps, precision {preset['precision']}; "
        f"Python {platform.python_version()}. Medians of {len(first['rounds'])} alternating rounds.",
        "",
        "| loop | samples/s | real tokens/s | MFU (real tokens) | peak memory (GB) | validation routing acc | vs Trainer (per round) |" + (" first calls (s), not timed |" if warm else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if warm else ""),
    ]
    for r in medians:
        ratio = "1.00x" if r is theirs else "-"
        if theirs is not None and r is not theirs:
            per_round = ", ".join(f"{o / t:.2f}x" for o, t in zip(r["rounds"], theirs["rounds"]))
            ratio = f"**{r['samples_per_s'] / theirs['samples_per_s']:.2f}x** ({per_round})"
        name = r["impl"].replace("routertrain:", "routertrain, attention ")
        extra = f" {r['warmup_s']:.1f} |" if warm and r.get("warmup_s") is not None else (" |" if warm else "")
        lines.append(f"| {name} | {r['samples_per_s']:.2f} | {r['real_tokens_per_s']:.0f} | {100 * r['mfu']:.1f}% | {r['peak_memory_gb']:.2f} ({r['memory_kind']}) | {r['validation_routing_acc']:.4f} | {ratio} |{extra}")
    lines += [""]
    if ours:
        padding = ", ".join(f"{100 * r['padding_share']:.0f}%" for r in ours)
        lines += [f"routertrain's batches were {padding} padding. Validation accuracy after so few steps of a random-weight encoder is only a sanity check.", ""]
    lines += [f"- {impl} failed: {why}" for impl, why in (failed or {}).items()]
    return "\n".join(lines) + ("\n" if failed else "")


def write_results(text: str, raw, args) -> None:
    """Print the table, append it to ``--output`` (if set) and dump the raw result to ``--json`` (if set)."""
    print(text)
    if args.json:
        atomic_write_json(args.json, raw)
    if args.output:
        with open(args.output, "a") as fh:
            fh.write(text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    parser.add_argument("--data-path", default=str(REPO.parent / "shared" / "data" / "mmlu-pro-outputs"))
    parser.add_argument("--data-disk", help="a folder written by --export (instead of --data-path)")
    parser.add_argument("--tokenizer", help="DeBERTa-v3 tokenizer folder (default: the one routertrain.model.encoders finds)")
    parser.add_argument("--export", metavar="DIR", help="write the benchmark's data and tokenizer to DIR and stop")
    parser.add_argument("--kernels", default="hf", help="comma-separated model.attention_kernel values, one routertrain row each")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers on both sides")
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"), help="markdown file the table is appended to ('' = none)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--steps", type=int, help="override the preset's optimizer steps")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (Trainer, routertrain), alternating; the table shows medians")
    parser.add_argument("--child-timeout", type=float, help="seconds one side may run before it counts as failed")
    parser.add_argument("--table-from", metavar="JSON", help="write the table of a --json file saved by an earlier (cut-short) run and stop")
    parser.add_argument("--peak-flops", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--peak-name", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps:
        PRESETS[args.preset]["steps"] = args.steps
    if args.impl:
        return child(args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if args.export:
        export(args, Path(args.export))
        return 0
    if args.table_from:  # a run cut short (an outer timeout) saved its rows as it went: write their table
        record = json.loads(Path(args.table_from).read_text())
        write_results(table(record["rows"], record["preset"], record["command"], record["failed"]), record, args)
        return 0
    preset = PRESETS[args.preset]
    impls = ["trainer"] + [f"routertrain:{k}" for k in args.kernels.split(",")]
    passed = ["--preset", args.preset, "--data-path", args.data_path, "--workers", str(args.workers), "--steps", str(preset["steps"])]
    passed += ["--data-disk", args.data_disk] if args.data_disk else []
    passed += ["--tokenizer", args.tokenizer] if args.tokenizer else []
    import torch

    if not torch.cuda.is_available():  # one CPU peak for every row (a GPU's is looked up by name in each side)
        peak, peak_name = peak_flops("cpu")
        passed += ["--peak-flops", str(peak), "--peak-name", peak_name]
    command = f"python benchmarks/throughput.py --preset {args.preset} --steps {preset['steps']} --repeats {args.repeats}"
    command += (f" --kernels {args.kernels}" if args.kernels != "hf" else "") + (f" --workers {args.workers}" if args.workers else "")
    record = {"command": command, "preset": preset, "rows": [], "failed": {}}
    with tempfile.TemporaryDirectory() as work:
        build_encoder_folder(args, preset, Path(work) / "encoder")
        for impl in impls * args.repeats:  # alternate, so load on a shared machine hits every side
            if impl in record["failed"]:
                continue
            cmd = [sys.executable, __file__, *passed, "--impl", impl, "--work", work]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.child_timeout, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            except subprocess.TimeoutExpired:
                record["failed"][impl] = f"timed out after {args.child_timeout} s"
                continue
            if proc.returncode != 0:  # one side failing (a kernel, say) must not lose the others' numbers
                print(proc.stderr[-4000:], file=sys.stderr)
                record["failed"][impl] = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
                continue
            record["rows"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(record["rows"][-1]), flush=True)
            if args.json:  # kept up to date, so --table-from can still write the table after an outer kill
                atomic_write_json(args.json, record)
    if not record["rows"]:
        print(f"every side failed: {record['failed']}", file=sys.stderr)
        return 1
    write_results(table(record["rows"], preset, command, record["failed"]), record, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
