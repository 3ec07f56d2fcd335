"""DeBERTa-v3 attention kernels against transformers' own attention: parity, then training speed.

Candidates (each swapped into a copy of the same randomly initialised encoder):

- ``hf``: transformers' eager disentangled attention (the reference);
- ``disentangled-flash-torch``: disentangled-flash's optimised PyTorch path (any device);
- ``disentangled-flash``: disentangled-flash's Triton kernels (CUDA only);
- ``flashdeberta``: flashdeberta's Triton kernels (CUDA only). Its own ``from_pretrained`` refuses
  ``flash_attention_2`` under transformers 5, so its attention class is swapped into each layer;
- ``hf+compile``: ``hf`` under ``torch.compile(dynamic=True)`` (warm-up time reported apart).

Parity, on one batch padded to its longest query (so masks matter), in train mode without dropout:
fp32 output and gradient differences against ``hf`` in fp32 (TF32 off), and in bf16 autocast the
error against that fp32 reference divided by ``hf``'s own bf16 error ("bf16 noise" = ratio <= 2).

Speed: forward + backward of the encoder on length-grouped batches drawn from real MMLU-Pro query
lengths (DeBERTa-v3 tokenizer), in the preset's precision, after one untimed pass over every batch
(Triton compiles per length); rounds alternate between candidates. A candidate that fails at any
point is reported as such, and the others' results are kept.

    python benchmarks/deberta_kernels.py --preset cpu-small
    python benchmarks/deberta_kernels.py --preset gpu-large
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import PRESETS, deberta_config, peak_flops, query_lengths, write_results  # noqa: E402

CANDIDATES = ("hf", "disentangled-flash-torch", "disentangled-flash", "flashdeberta", "hf+compile")


def make_candidate(reference: torch.nn.Module, name: str, device: str) -> torch.nn.Module:
    """A copy of ``reference`` with the candidate's attention; raises RuntimeError when it cannot run here.
    ``NAME+compile`` is candidate NAME under ``torch.compile(dynamic=True)`` (lengths vary per batch)."""
    if name.endswith("+compile"):
        return torch.compile(make_candidate(reference, name.removesuffix("+compile"), device), dynamic=True)
    model = copy.deepcopy(reference)
    if name == "hf":
        return model
    if name.startswith("disentangled-flash"):
        from routertrain.model.kernels import apply_attention_kernel, kernel_backend

        if name == "disentangled-flash" and device != "cuda":
            raise RuntimeError("Triton kernels need CUDA")
        apply_attention_kernel(model, name, device)
        assert kernel_backend(model) == ("disentangled-flash/triton" if name == "disentangled-flash" else "disentangled-flash/torch")
        return model
    if name == "flashdeberta":
        if device != "cuda":
            raise RuntimeError("Triton kernels need CUDA")
        try:
            from flashdeberta import FlashDisentangledSelfAttention
        except ImportError as err:
            raise RuntimeError(f"flashdeberta not importable: {err}") from None
        for layer in model.encoder.layer:
            layer.attention.self.__class__ = FlashDisentangledSelfAttention
        return model
    raise ValueError(name)


def forward_backward(model, ids, mask, bf16: bool):
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=bf16):
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).float()
    pooled = (hidden.float() * weights).sum(1) / weights.sum(1)
    pooled.pow(2).sum().backward()
    grads = {n.removeprefix("_orig_mod."): p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return hidden.detach().float(), grads


def errors(hidden, grads, ref_hidden, ref_grads, mask) -> tuple[float, float]:
    """(max abs output error on real tokens, max relative L2 gradient error over parameters)."""
    out = (hidden - ref_hidden)[mask.bool()].abs().max().item()
    grad = max(((grads[n] - g).norm() / g.norm().clamp_min(1e-12)).item() for n, g in ref_grads.items())
    return out, grad


def failure(err: Exception) -> str:
    return f"failed: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:120]}"


def parity(reference, models: dict, ids, mask, device: str, unavailable: dict) -> dict:
    """Errors of each candidate against ``hf``; a candidate that raises moves to ``unavailable``
    (its first run on a new GPU may fail to compile) without losing the others' results."""
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        ref_h, ref_g = forward_backward(reference, ids, mask, bf16=False)
        hf_bf16 = errors(*forward_backward(reference, ids, mask, bf16=True), ref_h, ref_g, mask)
        rows = {}
        for name, model in list(models.items()):
            start = time.perf_counter()  # first calls: include Triton / torch.compile compilation
            try:
                fp32 = errors(*forward_backward(model, ids, mask, bf16=False), ref_h, ref_g, mask)
                bf16 = errors(*forward_backward(model, ids, mask, bf16=True), ref_h, ref_g, mask)
            except Exception as err:  # noqa: BLE001 - any failure of a third-party kernel is a result to report
                unavailable[name] = failure(err)
                del models[name]
                continue
            first_use = time.perf_counter() - start
            ratio = max(bf16[0] / max(hf_bf16[0], 1e-12), bf16[1] / max(hf_bf16[1], 1e-12))
            rows[name] = {"fp32_out_err": fp32[0], "fp32_grad_err": fp32[1], "bf16_out_err": bf16[0], "bf16_grad_err": bf16[1],
                          "bf16_err_vs_hf_bf16": ratio, "match": fp32[0] < 1e-3 and fp32[1] < 1e-3 and ratio <= 2.0, "first_use_s": first_use}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return rows


def grouped_batches(lengths: np.ndarray, batch: int, n: int, vocab: int, device: str, seed: int = 0):
    """``n`` batches of ``batch`` queries of neighbouring length (as routertrain groups them), padded to their longest."""
    rng = np.random.default_rng(seed)
    order = np.sort(lengths)
    out = []
    for _ in range(n):
        start = rng.integers(0, len(order) - batch + 1)
        lens = order[start:start + batch]
        width = int(lens.max())
        ids = torch.from_numpy(rng.integers(5, vocab, (batch, width)))
        mask = (torch.arange(width)[None, :] < torch.from_numpy(lens)[:, None]).long()
        out.append((ids.masked_fill(mask == 0, 0).to(device), mask.to(device), int(lens.sum())))
    return out


def speed(models: dict, batches, bf16: bool, device: str, rounds: int, unavailable: dict) -> dict:
    """Forward + backward time per batch, rounds alternating between candidates, after one untimed
    pass over every batch (each new length may compile a Triton kernel). Peak memory is what a step
    adds to the memory already allocated (every candidate's weights stay resident)."""
    for name, model in list(models.items()):
        try:
            for ids, mask, _ in batches:
                forward_backward(model, ids, mask, bf16)
        except Exception as err:  # noqa: BLE001 - reported, the other candidates still run
            unavailable[name] = failure(err)
            del models[name]
    timings = {name: [] for name in models}
    peaks = {}
    for _ in range(rounds):
        for name, model in models.items():
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                resident = torch.cuda.memory_allocated()
            start = time.perf_counter()
            for ids, mask, _ in batches:
                with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=bf16):
                    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
                hidden.float().pow(2).mean().backward()
                model.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
                peaks[name] = (torch.cuda.max_memory_allocated() - resident) / 2**30
            timings[name].append(time.perf_counter() - start)
    tokens = sum(t for _, _, t in batches)
    return {name: {"ms_per_step": 1e3 * float(np.median(ts)) / len(batches), "real_tokens_per_s": tokens / float(np.median(ts)),
                   "rounds_s": [round(t, 3) for t in ts], "peak_memory_gb": peaks.get(name)} for name, ts in timings.items()}


def table(result: dict, command: str) -> str:
    p = result["preset"]
    lines = [f"### DeBERTa attention kernels, {result['preset_name']}: {time.strftime('%Y-%m-%d')}, {result['device']}", "", f"`{command}`", "",
             f"Encoder: DeBERTa-v3 shape hidden {p['hidden']} x {p['layers']} layers x {p['heads']} heads (random weights); speed on {result['n_batches']} "
             f"length-grouped batches of {p['batch']} (real MMLU-Pro lengths, mean {result['mean_len']:.0f} tokens), forward + backward, "
             f"{'bf16 autocast' if result['bf16'] else 'fp32'}, median of {result['rounds']} alternating rounds. Parity batch: {result['parity_shape']}, padded.", "",
             "| attention | fp32 max out err | fp32 max grad rel err | bf16 err / hf bf16 err | matches | ms/step | real tokens/s | speed vs hf | first fp32 + bf16 calls (s) | GPU memory per step (GB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    base = result["speed"].get("hf", {}).get("ms_per_step")
    for name in result["candidates"]:
        if name in result["unavailable"]:
            lines.append(f"| {name} | not run here: {result['unavailable'][name]} | | | | | | | | |")
            continue
        q, s = result["parity"][name], result["speed"][name]
        mem = f"{s['peak_memory_gb']:.2f}" if s["peak_memory_gb"] is not None else "-"
        if name == "hf":
            lines.append(f"| hf | (reference) | (reference) | 1.00 | - | {s['ms_per_step']:.1f} | {s['real_tokens_per_s']:.0f} | 1.00x | {q['first_use_s']:.1f} | {mem} |")
            continue
        relative = f"{base / s['ms_per_step']:.2f}x" if base else "-"
        lines.append(f"| {name} | {q['fp32_out_err']:.1e} | {q['fp32_grad_err']:.1e} | {q['bf16_err_vs_hf_bf16']:.2f} | {'yes' if q['match'] else 'NO'} | "
                     f"{s['ms_per_step']:.1f} | {s['real_tokens_per_s']:.0f} | {relative} | {q['first_use_s']:.1f} | {mem} |")
    return "\n".join(lines + [""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    parser.add_argument("--data-path", default=str(REPO.parent / "shared" / "data" / "mmlu-pro-outputs"), help="MMLU-Pro results (query lengths)")
    parser.add_argument("--data-disk", help="a dataset folder written by benchmarks/throughput.py --export (instead of --data-path)")
    parser.add_argument("--tokenizer", help="DeBERTa-v3 tokenizer folder (default: the one routertrain.model.encoders finds)")
    parser.add_argument("--batches", type=int, default=8, help="length-grouped batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"), help="markdown file the table is appended to ('' = none)")
    parser.add_argument("--json", help="also write the raw result here")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = preset["precision"] == "bf16"
    lengths = query_lengths(args, preset)
    config = deberta_config(preset, dropout=0.0)
    from transformers import DebertaV2Model

    torch.manual_seed(0)
    reference = DebertaV2Model(config).to(device).train()
    models, unavailable = {}, {}
    for name in args.candidates.split(","):
        try:
            model = make_candidate(reference, name, device)
        except (RuntimeError, ImportError) as err:
            unavailable[name] = str(err).splitlines()[0][:100]
            continue
        models[name] = model
    rng = np.random.default_rng(1)
    n_parity = min(8, preset["batch"])
    par_lens = rng.choice(lengths, n_parity)
    width = int(par_lens.max())
    ids = torch.from_numpy(rng.integers(5, config.vocab_size, (n_parity, width)))
    mask = (torch.arange(width)[None, :] < torch.from_numpy(par_lens)[:, None]).long()
    ids, mask = ids.masked_fill(mask == 0, 0).to(device), mask.to(device)
    par = parity(reference, models, ids, mask, device, unavailable)
    batches = grouped_batches(lengths, preset["batch"], args.batches, config.vocab_size, device)
    result = {"preset_name": args.preset, "preset": preset, "device": peak_flops(device)[1], "bf16": bf16, "mean_len": float(np.mean(lengths)),
              "n_batches": args.batches, "rounds": args.rounds, "parity_shape": f"{n_parity} x {width}", "unavailable": unavailable, "candidates": args.candidates.split(","),
              "parity": par, "speed": speed(models, batches, bf16, device, args.rounds, unavailable)}
    command = f"python benchmarks/deberta_kernels.py --preset {args.preset} --batches {args.batches} --rounds {args.rounds}"
    command += f" --candidates {args.candidates}" if args.candidates != ",".join(CANDIDATES) else ""
    text = table(result, command)
    print(json.dumps(result, default=str))
    write_results(text, result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
