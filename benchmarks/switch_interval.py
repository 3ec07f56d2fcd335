"""Throughput of ``serve``'s ``/v1/route`` at 32 clients for several GIL switch intervals, in one run.

    python benchmarks/switch_interval.py checkpoints/routerdc-l6-frozen --intervals 5,0.5,0.1,2 --rounds 6

One ``serve`` per interval (``--switch-interval-ms``), all started before any round, in front of
``tests/fake_backend.py``. Each round runs in-process batch-64 ``Router.predict`` on the 640 queries,
then 640 one-query requests from 32 aiohttp clients to each server (order reversed every other round,
so that drift in the machine's load falls on all alike). Printed: the median queries/s of each and its
ratio to the in-process median. The queries and helpers are those of ``routing_speed.py``.
Why the interval matters: ``routertrain/serving/batching.py``'s docstring.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import routing_speed as rs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("router")
    parser.add_argument("--data", default="../shared/data/routerdc")
    parser.add_argument("--intervals", default="5,0.5", help="switch intervals in ms, comma-separated (Python's default: 5)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    from routertrain.config import load_config
    from routertrain.data import load_routing_data
    from routertrain.hub.router import Router

    test = list(load_routing_data(load_config(["data=routerdc", f"data.path={args.data}"]).data).splits["test"]["query"])
    queries = [test[i] for i in np.random.default_rng(0).permutation(len(test))][: rs.N_CONCURRENT]
    bodies = [{"queries": [q]} for q in queries]
    local = Router.from_pretrained(args.router, device="cpu")
    local.predict(queries[:64])
    tmp = Path("checkpoints/routing-speed")
    tmp.mkdir(parents=True, exist_ok=True)
    procs, urls = [], {}
    try:
        backend, match = rs.start([sys.executable, str(rs.REPO / "tests" / "fake_backend.py"), "fake"], tmp / "backend.log", r"listening (\d+)")
        procs.append(backend)
        config = tmp / "backends.yaml"
        config.write_text(yaml.safe_dump({"backends": {local.models[0]: {"base_url": f"http://127.0.0.1:{match.group(1)}/v1", "model": "fake"}}}))
        for interval in args.intervals.split(","):
            server, match = rs.start([sys.executable, "-m", "routertrain.cli.serve", args.router, "--backends", str(config), "--port", "0", "--fast", "none",
                                      "--switch-interval-ms", interval], tmp / f"serve-switch-{interval}.log", r"on (http://127\.0\.0\.1:\d+)/v1")
            procs.append(server)
            urls[interval] = match.group(1)
            asyncio.run(rs.concurrent("POST", f"{urls[interval]}/v1/route", bodies[:64], rs.CLIENTS))  # warm-up
        qps = {"in-process batch 64": [], **{f"serve, switch interval {i} ms": [] for i in urls}}
        for r in range(args.rounds):
            t0 = time.perf_counter()
            local.predict(queries, batch_size=64)
            qps["in-process batch 64"].append(len(queries) / (time.perf_counter() - t0))
            for interval in list(urls) if r % 2 == 0 else list(urls)[::-1]:
                qps[f"serve, switch interval {interval} ms"].append(asyncio.run(rs.concurrent("POST", f"{urls[interval]}/v1/route", bodies, rs.CLIENTS))[1])
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=60)
    base = float(np.median(qps["in-process batch 64"]))
    print(f"| {len(queries)} RouterDC test queries, {args.rounds} rounds | median queries/s | over in-process | rounds |\n|---|---|---|---|")
    for name, values in qps.items():
        print(f"| {name} | {np.median(values):.1f} | {np.median(values) / base:.3f}x | {', '.join(f'{v:.1f}' for v in values)} |")


if __name__ == "__main__":
    main()
