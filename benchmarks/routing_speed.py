"""Routing speed of ``serve`` on this CPU: eager fp32 against dynamic int8, side by side in one run.

    python benchmarks/routing_speed.py ROUTER --data ../shared/data/mmlu-pro-outputs [--output checkpoints/routing-speed.md]

For each path (``serve --fast none`` and ``--fast int8``) a real server runs on 127.0.0.1 in front of a
fake backend (tests/fake_backend.py, answers at once), and a client measures:

- routing overhead per chat request: the server's routing time (its ``x-routertrain-routing-ms``
  header: micro-batch wait + scoring), and the client-side latency through the router beside the
  same request sent straight to the backend, at concurrency 1 (sequential) and 32 (32 clients), p50 and p99;
- ``/v1/route`` throughput: queries per second with 64-query requests from 4 parallel clients.

Accuracy change: both paths score the MMLU-Pro test split in-process; reported are the routing
agreement (same chosen model), the largest probability difference and both routing accuracies.
Queries are MMLU-Pro test questions. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
N_SEQUENTIAL, N_CONCURRENT, CONCURRENCY = 100, 320, 32
ROUTE_REQUESTS, ROUTE_BATCH, ROUTE_CLIENTS = 24, 64, 4


def start(args: list[str], log: Path, pattern: str) -> tuple[subprocess.Popen, re.Match]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text())
        if match:
            return proc, match
        if proc.poll() is not None:
            raise SystemExit(f"{args[:3]} exited: {log.read_text()[-1500:]}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{args[:3]} did not start: {log.read_text()[-1500:]}")


def wait_healthy(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never became healthy")


async def latencies(url: str, queries: list[str], concurrency: int, model: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per chat request and the router's own routing seconds (its header; NaN for a direct
    call), ``concurrency`` clients each sending its share sequentially."""
    out, routing = [], []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def worker(part: list[str]):
            for query in part:
                body = {"messages": [{"role": "user", "content": query}], **({"model": model} if model else {})}
                t0 = time.perf_counter()
                response = await client.post(f"{url}/chat/completions", json=body)
                out.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text
                routing.append(float(response.headers.get("x-routertrain-routing-ms", "nan")) / 1000)
        await asyncio.gather(*(worker(queries[i::concurrency]) for i in range(concurrency)))
    return np.array(out), np.array(routing)


async def route_throughput(url: str, queries: list[str]) -> float:
    batches = [queries[(i * ROUTE_BATCH) % len(queries):][:ROUTE_BATCH] for i in range(ROUTE_REQUESTS)]
    async with httpx.AsyncClient(timeout=120) as client:
        async def worker(part):
            for batch in part:
                response = await client.post(f"{url}/v1/route", json={"queries": batch})
                assert response.status_code == 200, response.text
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(batches[i::ROUTE_CLIENTS]) for i in range(ROUTE_CLIENTS)))
    return sum(len(b) for b in batches) / (time.perf_counter() - t0)


def percentiles(seconds: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 99) * 1000)


def measure_server(router: str, fast: str, backend_url: str, model: str, queries: list[str], tmp: Path) -> dict:
    config = tmp / "backends.yaml"
    config.write_text(yaml.safe_dump({"backends": {model: {"base_url": backend_url, "model": "fake"}}}))
    proc, match = start([sys.executable, "-m", "routertrain.cli.serve", router, "--backends", str(config), "--port", "0", "--fast", fast],
                        tmp / f"serve-{fast}.log", r"on (http://127\.0\.0\.1:\d+)/v1")
    url = match.group(1)
    try:
        wait_healthy(url)
        asyncio.run(latencies(f"{url}/v1", queries[:10], 1, "router"))  # warm-up
        result = {"route_qps": asyncio.run(route_throughput(url, queries))}
        for concurrency, n in ((1, N_SEQUENTIAL), (CONCURRENCY, N_CONCURRENT)):
            direct, _ = asyncio.run(latencies(backend_url, queries[:n], concurrency, "fake"))
            routed, routing = asyncio.run(latencies(f"{url}/v1", queries[:n], concurrency, "router"))
            result[concurrency] = {"direct": percentiles(direct), "routed": percentiles(routed), "routing": percentiles(routing)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return result


def accuracy_change(router_path: str, queries: list[str], labels: np.ndarray) -> dict:
    import torch

    from routertrain.evaluation.metrics import score_accuracy
    from routertrain.hub.router import Router
    from routertrain.model.quantize import quantize_int8

    eager = Router.from_pretrained(router_path, device="cpu")
    t0 = time.perf_counter()
    p_eager = eager.predict(queries)
    t_eager = time.perf_counter() - t0
    fast = quantize_int8(Router.from_pretrained(router_path, device="cpu").model)
    int8 = Router(fast, eager.tokenizer, eager.config, eager.folder, "cpu")
    t0 = time.perf_counter()
    p_int8 = int8.predict(queries)
    t_int8 = time.perf_counter() - t0
    return {
        "agreement": float((p_eager.argmax(1) == p_int8.argmax(1)).mean()),
        "max_prob_diff": float(np.abs(p_eager - p_int8).max()),
        "acc_eager": score_accuracy(p_eager, labels), "acc_int8": score_accuracy(p_int8, labels),
        "qps_eager": len(queries) / t_eager, "qps_int8": len(queries) / t_int8, "n": len(queries), "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("router")
    parser.add_argument("--data", default="../shared/data/mmlu-pro-outputs")
    parser.add_argument("--output", type=Path, default=Path("checkpoints/routing-speed.md"))
    args = parser.parse_args()
    started = time.time()

    from routertrain.config import load_config
    from routertrain.data import load_routing_data
    from routertrain.hub.router import Router
    from routertrain.provenance import atomic_write_text

    data = load_routing_data(load_config(["data=mmlu-pro", f"data.path={args.data}", "data.pool=open-weight"]).data)
    queries, labels = list(data.splits["test"]["query"]), data.labels("test")
    models = Router.from_pretrained(args.router, device="cpu").models
    assert models == data.models, "the router's pool is not MMLU-Pro-27"
    tmp = Path("checkpoints/routing-speed")
    tmp.mkdir(parents=True, exist_ok=True)
    backend, match = start([sys.executable, str(REPO / "tests" / "fake_backend.py"), "fake"], tmp / "backend.log", r"listening (\d+)")
    backend_url = f"http://127.0.0.1:{match.group(1)}/v1"
    try:
        servers = {fast: measure_server(args.router, fast, backend_url, models[0], queries, tmp) for fast in ("none", "int8")}
    finally:
        backend.kill()
    change = accuracy_change(args.router, queries, labels)

    lines = ["| path | clients | routing time p50 / p99 (ms) | routed request p50 / p99 (ms) | same request straight to the backend p50 / p99 (ms) |",
             "|---|---|---|---|---|"]
    for fast, label in (("none", "eager fp32"), ("int8", "dynamic int8 (`serve --fast int8`)")):
        for c in (1, CONCURRENCY):
            cells = [f"{a:.1f} / {b:.1f}" for a, b in (servers[fast][c]["routing"], servers[fast][c]["routed"], servers[fast][c]["direct"])]
            lines.append(f"| {label} | {c} | " + " | ".join(cells) + " |")
    lines += ["", "| path | /v1/route queries/s | in-process Router.predict queries/s | test routing accuracy |", "|---|---|---|---|"]
    for fast, label, key in (("none", "eager fp32", "eager"), ("int8", "dynamic int8", "int8")):
        lines.append(f"| {label} | {servers[fast]['route_qps']:.0f} | {change['qps_' + key]:.0f} | {change['acc_' + key]:.4f} |")
    text = "\n".join(lines) + (
        f"\n\nint8 vs eager on the {change['n']} MMLU-Pro test questions: same model chosen for {change['agreement']:.2%} of them, "
        f"largest probability change {change['max_prob_diff']:.4f}, routing accuracy {change['acc_int8'] - change['acc_eager']:+.4f}. "
        f"Routing time = the server's own time from a request's arrival to its decision (x-routertrain-routing-ms: micro-batch wait and scoring); "
        f"routed vs direct = client-side latency through the router vs straight to the same fake backend ({N_SEQUENTIAL} sequential requests; "
        f"{N_CONCURRENT} requests from {CONCURRENCY} parallel clients). /v1/route: {ROUTE_REQUESTS} requests of {ROUTE_BATCH} queries from "
        f"{ROUTE_CLIENTS} clients. In-process: Router.predict over the test split, {change['threads']} torch threads. Run time {time.time() - started:.0f}s.\n"
    )
    atomic_write_text(args.output, text)
    print(text)


if __name__ == "__main__":
    main()
