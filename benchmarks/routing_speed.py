"""Routing speed on this CPU, in one run on the same real queries: in-process ``Router.predict`` (eager fp32
and ONNX Runtime), ``serve``'s ``/v1/route`` and chat completions at 1 and 32 clients, and a plain
uvicorn echo app (the floor of HTTP on this machine).

    python benchmarks/routing_speed.py ROUTER --data ../shared/data/routerdc [--fast onnx] [--output checkpoints/routing-speed.md]

ROUTER is a RouterDC router (``benchmarks/speed_router.py`` writes one). Queries: a fixed shuffle of the
RouterDC test split (the real mix of lengths). Measured, in this order so that nothing else runs meanwhile:

1. in-process, eager fp32 against ONNX Runtime, alternating rounds: p50 / p99 of one query per call
   (batch 1), queries per second at batch 64, and the decisions of both on ``--n-agree`` test queries
   (``router.decide``: the router's own rule);
2. a real ``serve`` (``--fast``, default onnx) on 127.0.0.1 in front of ``tests/fake_backend.py`` (answers
   at once), and ``tests/echo_app.py``: ``/v1/route`` with one query per request, sequentially (1 client)
   and from 32 clients; chat completions through the router and straight to the backend, at 1 and 32
   clients; GET and POST on the echo app.

Printed: the overhead of ``/v1/route`` at 1 client (its p50 minus in-process batch-1 p50 on the same
queries, same backend), its throughput at 32 clients over in-process batched throughput, and what chat
completions add at p50 over calling the backend directly. Client and server share the machine's cores.
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
N_SINGLE, N_BATCH, ROUNDS, CLIENTS, N_CONCURRENT = 200, 640, 3, 32, 640


def start(args: list[str], log: Path, pattern: str) -> tuple[subprocess.Popen, re.Match]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text())
        if match:
            return proc, match
        if proc.poll() is not None:
            raise SystemExit(f"{args[:3]} exited: {log.read_text()[-1500:]}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{args[:3]} did not start: {log.read_text()[-1500:]}")


def ms(seconds) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 99) * 1000)


def in_process(router_path: str, queries: list[str], agree: list[str]) -> dict:
    from routertrain.hub.router import Router

    routers = {"eager": Router.from_pretrained(router_path, device="cpu"), "onnx": Router.from_pretrained(router_path, device="cpu", backend="onnx")}
    single = {name: [] for name in routers}
    batched = {name: [] for name in routers}
    for name, router in routers.items():  # warm-up
        router.predict(queries[:64])
    for _ in range(ROUNDS):
        for name, router in routers.items():
            for query in queries[:N_SINGLE]:
                t0 = time.perf_counter()
                router.predict([query])
                single[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            router.predict(queries[:N_BATCH], batch_size=64)
            batched[name].append(N_BATCH / (time.perf_counter() - t0))
    probs = {name: router.predict(agree) for name, router in routers.items()}
    decisions = {name: routers["eager"].decide(p) for name, p in probs.items()}
    import torch

    return {
        "single": {name: ms(np.array(v).reshape(ROUNDS, -1).T.ravel()) for name, v in single.items()},
        "rounds_p50": {name: [ms(r)[0] for r in np.array(v).reshape(ROUNDS, -1)] for name, v in single.items()},
        "qps": {name: float(np.median(v)) for name, v in batched.items()},
        "qps_rounds": batched,
        "agreement": float((decisions["eager"] == decisions["onnx"]).mean()),
        "max_diff": float(np.abs(probs["eager"] - probs["onnx"]).max()), "n_agree": len(agree), "threads": torch.get_num_threads(),
    }


def sequential(call, items) -> np.ndarray:
    out = []
    for item in items:
        t0 = time.perf_counter()
        response = call(item)
        out.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.text[:300]
    return np.array(out)


async def concurrent(method: str, url: str, bodies: list[dict], clients: int) -> tuple[np.ndarray, float]:
    """Seconds per request and requests per second, ``clients`` clients each sending its share in turn."""
    out = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def worker(part):
            for body in part:
                t0 = time.perf_counter()
                response = await client.request(method, url, json=body)
                out.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text[:300]
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(bodies[i::clients]) for i in range(clients)))
        wall = time.perf_counter() - t0
    return np.array(out), len(bodies) / wall


def chat_body(query: str, model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": query}]}


def over_http(router: str, fast: str, queries: list[str], tmp: Path) -> dict:
    from routertrain.hub.router import Router

    model = Router.from_pretrained(router, device="cpu").models[0]
    procs = []
    try:
        backend, match = start([sys.executable, str(REPO / "tests" / "fake_backend.py"), "fake"], tmp / "backend.log", r"listening (\d+)")
        procs.append(backend)
        backend_url = f"http://127.0.0.1:{match.group(1)}/v1"
        echo, match = start([sys.executable, str(REPO / "tests" / "echo_app.py")], tmp / "echo.log", r"on (http://127\.0\.0\.1:\d+)")
        procs.append(echo)
        echo_url = match.group(1)
        config = tmp / "backends.yaml"
        config.write_text(yaml.safe_dump({"backends": {model: {"base_url": backend_url, "model": "fake"}}}))
        server, match = start([sys.executable, "-m", "routertrain.cli.serve", router, "--backends", str(config), "--port", "0", "--fast", fast],
                              tmp / f"serve-{fast}.log", r"on (http://127\.0\.0\.1:\d+)/v1")
        procs.append(server)
        url = match.group(1)
        single = queries[:N_SINGLE]
        result = {}
        with httpx.Client(timeout=120) as client:
            for _ in range(600):
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            sequential(lambda q: client.post(f"{url}/v1/route", json={"queries": [q]}), single[:20])  # warm-up
            sequential(lambda q: client.post(f"{backend_url}/chat/completions", json=chat_body(q, "fake")), single[:20])
            result["echo_get"] = ms(sequential(lambda _: client.get(f"{echo_url}/health"), single))
            result["echo_post"] = ms(sequential(lambda q: client.post(f"{echo_url}/echo", json={"queries": [q]}), single))
            result["route_1"] = ms(sequential(lambda q: client.post(f"{url}/v1/route", json={"queries": [q]}), single))
            result["direct_1"] = ms(sequential(lambda q: client.post(f"{backend_url}/chat/completions", json=chat_body(q, "fake")), single))
            result["chat_1"] = ms(sequential(lambda q: client.post(f"{url}/v1/chat/completions", json=chat_body(q, "router")), single))
        many = queries[:N_CONCURRENT]
        seconds, result["route_32_qps"] = asyncio.run(concurrent("POST", f"{url}/v1/route", [{"queries": [q]} for q in many], CLIENTS))
        result["route_32"] = ms(seconds)
        seconds, result["direct_32_qps"] = asyncio.run(concurrent("POST", f"{backend_url}/chat/completions", [chat_body(q, "fake") for q in many], CLIENTS))
        result["direct_32"] = ms(seconds)
        seconds, result["chat_32_qps"] = asyncio.run(concurrent("POST", f"{url}/v1/chat/completions", [chat_body(q, "router") for q in many], CLIENTS))
        result["chat_32"] = ms(seconds)
        metrics = httpx.get(f"{url}/metrics").text
        counts = {name: float(re.search(rf"^{name} (\S+)", metrics, re.M).group(1)) for name in ("routertrain_batches_total", "routertrain_batched_queries_total")}
        result["mean_batch"] = counts["routertrain_batched_queries_total"] / max(counts["routertrain_batches_total"], 1)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=60)
    return result


def report(local: dict, http: dict, fast: str, n_queries: int, seconds: float) -> str:
    f = lambda pair: f"{pair[0]:.1f} / {pair[1]:.1f}"  # noqa: E731
    single, qps = local["single"], local["qps"]
    lines = [
        "| in process | batch 1 p50 / p99 (ms) | batch 64 queries/s |", "|---|---|---|",
        f"| eager fp32 | {f(single['eager'])} | {qps['eager']:.1f} |",
        f"| ONNX Runtime | {f(single['onnx'])} | {qps['onnx']:.1f} |",
        f"| ratio eager / ONNX | {single['eager'][0] / single['onnx'][0]:.2f}x lower p50 | {qps['onnx'] / qps['eager']:.2f}x throughput |",
        "", f"| over HTTP (`serve --fast {fast}`) | clients | p50 / p99 (ms) | requests/s |", "|---|---|---|---|",
        f"| plain uvicorn echo app, GET /health | 1 | {f(http['echo_get'])} | |",
        f"| plain uvicorn echo app, POST /echo (one query) | 1 | {f(http['echo_post'])} | |",
        f"| `/v1/route`, one query per request | 1 | {f(http['route_1'])} | |",
        f"| `/v1/route`, one query per request | {CLIENTS} | {f(http['route_32'])} | {http['route_32_qps']:.1f} |",
        f"| chat completions straight to the backend | 1 | {f(http['direct_1'])} | |",
        f"| chat completions through the router | 1 | {f(http['chat_1'])} | |",
        f"| chat completions straight to the backend | {CLIENTS} | {f(http['direct_32'])} | {http['direct_32_qps']:.1f} |",
        f"| chat completions through the router | {CLIENTS} | {f(http['chat_32'])} | {http['chat_32_qps']:.1f} |",
    ]
    same = "onnx" if fast in ("onnx", "auto") else "eager"
    overhead = http["route_1"][0] - single[same][0]
    chat_over = http["chat_1"][0] - http["direct_1"][0]
    lines += [
        "",
        f"- `/v1/route` at 1 client: p50 {http['route_1'][0]:.2f} ms against in-process batch-1 p50 {single[same][0]:.2f} ms ({same}, same queries): "
        f"overhead **{overhead:+.2f} ms** (HTTP floor, echo app POST: {http['echo_post'][0]:.2f} ms).",
        f"- `/v1/route` at {CLIENTS} clients: {http['route_32_qps']:.1f} queries/s against in-process batch-64 {qps[same]:.1f} ({same}): "
        f"**{http['route_32_qps'] / qps[same]:.2f}x** (mean micro-batch {http['mean_batch']:.1f} queries).",
        f"- chat completions at 1 client add **{chat_over:+.2f} ms** at p50 over calling the backend directly "
        f"(routing one query in process: {single[same][0]:.2f} ms of it; the rest: {chat_over - single[same][0]:+.2f} ms).",
        f"- ONNX vs eager: same decision on {local['agreement']:.2%} of {local['n_agree']} test queries, largest probability difference "
        f"{local['max_diff']:.1e}. Per-round batch-1 p50 (ms) eager {', '.join(f'{x:.1f}' for x in local['rounds_p50']['eager'])}; "
        f"ONNX {', '.join(f'{x:.1f}' for x in local['rounds_p50']['onnx'])}; batch-64 queries/s eager "
        f"{', '.join(f'{x:.1f}' for x in local['qps_rounds']['eager'])}; ONNX {', '.join(f'{x:.1f}' for x in local['qps_rounds']['onnx'])}.",
        f"- {n_queries} RouterDC test queries in a fixed shuffle; batch 1 and HTTP at 1 client: the first {N_SINGLE}; batch 64: the first {N_BATCH}; "
        f"{CLIENTS} clients: {N_CONCURRENT} requests. {local['threads']} torch threads. Run time {seconds:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("router")
    parser.add_argument("--data", default="../shared/data/routerdc")
    parser.add_argument("--fast", default="onnx", choices=("onnx", "none", "int8", "auto"), help="the serve path measured over HTTP (default onnx)")
    parser.add_argument("--n-agree", type=int, default=2000, help="test queries on which ONNX and eager decisions are compared")
    parser.add_argument("--output", type=Path, default=Path("checkpoints/routing-speed.md"))
    args = parser.parse_args()
    started = time.time()

    from routertrain.config import load_config
    from routertrain.data import load_routing_data
    from routertrain.provenance import atomic_write_text

    data = load_routing_data(load_config(["data=routerdc", f"data.path={args.data}"]).data)
    test = list(data.splits["test"]["query"])
    queries = [test[i] for i in np.random.default_rng(0).permutation(len(test))]
    local = in_process(args.router, queries, queries[: args.n_agree])
    tmp = Path("checkpoints/routing-speed")
    tmp.mkdir(parents=True, exist_ok=True)
    http = over_http(args.router, args.fast, queries, tmp)
    text = report(local, http, args.fast, len(test), time.time() - started)
    atomic_write_text(args.output, text)
    print(text)


if __name__ == "__main__":
    main()
