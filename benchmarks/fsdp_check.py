"""Does a run under ``accelerate_configs/fsdp.yaml`` train, checkpoint and export a router that loads?

On CPU accelerate falls back to plain training; the test suite drives FSDP2 over two gloo processes
in fp32 anyway (``tests/fsdp_on_cpu.py``). This check covers what only a GPU has: one FSDP2 process
with bf16 mixed precision on CUDA, through the loop's ``save_state``, best-weights gathering, final
reload and router export. The encoder is a small
DeBERTa-v3-shaped model with random weights and the real DeBERTa-v3 tokenizer; the data is the
embedded synthetic benchmark. It prints one JSON line: the distributed type the run recorded, whether
the router loads and predicts, and the error's last lines when something failed.

    python benchmarks/fsdp_check.py [--tokenizer DIR] [--work DIR] [--timeout 90]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

SMALL = dict(hidden=64, layers=2, heads=2, intermediate=128, batch=8, max_length=64, precision="bf16", queries=64, steps=4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", help="DeBERTa-v3 tokenizer folder (default: the one routertrain.model.encoders finds)")
    parser.add_argument("--work", help="folder for the encoder and the run (default: a temporary one)")
    parser.add_argument("--config", default=str(REPO / "accelerate_configs" / "fsdp.yaml"))
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds the training run may take")
    args = parser.parse_args()

    from throughput import build_encoder_folder

    work = Path(args.work or tempfile.mkdtemp(prefix="fsdp-check-"))
    encoder = build_encoder_folder(args, SMALL, work / "encoder")
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", args.config, "--num_processes", "1",
        str(REPO / "train.py"), "recipe=smoke", f"model.name_or_path={encoder}", f"run.output_dir={work}", "run.name=fsdp",
        "train.max_steps=4", "train.save_every=2", "train.eval_every=2", "train.global_batch_size=8", "data.synthetic.n_train=64",
        "data.max_length=64", "train.mixed_precision=bf16", "train.resume=never",
    ]
    result: dict = {"command": " ".join(cmd[2:])}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=REPO, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        result["returncode"] = proc.returncode
        if proc.returncode != 0:
            result["error"] = proc.stderr.strip().splitlines()[-12:]
    except subprocess.TimeoutExpired:
        result["error"] = [f"timed out after {args.timeout} s"]
    run = work / "fsdp"
    if (run / "provenance.json").is_file():
        result["distributed_type"] = json.loads((run / "provenance.json").read_text()).get("distributed_type")
    result["fsdp_exercised"] = result.get("distributed_type") == "FSDP"  # False on CPU: accelerate trains unsharded there
    result["checkpoints"] = sorted(p.name for p in (run / "checkpoints").glob("step-*")) if (run / "checkpoints").is_dir() else []
    if (run / "router").is_dir():
        try:
            from routertrain.hub.router import Router

            probs = Router.from_pretrained(run / "router").predict(["Prove that the square root of 2 is irrational.", "Translate cat to French."])
            result["router_loads"] = True
            result["router_probs_finite"] = bool((probs == probs).all())
            result["router_rows_differ"] = bool(abs(probs[0] - probs[1]).max() > 0)
        except Exception as err:  # noqa: BLE001 - the point of the check is to report it
            result["router_loads"] = False
            result["error"] = result.get("error", []) + [f"{type(err).__name__}: {err}"]
    else:
        result["router_loads"] = False
    print(json.dumps(result))
    return 0 if result.get("router_loads") and "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
