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
   at once), and ``tests/echo_app.py``. At 1 client, query by query, these take turns (so that load from
   elsewhere falls on all alike): in-process ``predict`` of the one query (same backend as the server),
   GET and POST on the echo app, ``/v1/route``, chat straight to the backend, chat through the router.
   At 32 clients: in-process batch-64 ``predict`` and ``/v1/route`` (one query per request) in
   alternating rounds on the same queries; then chat straight to the backend and through the router. The
   32 clients are aiohttp coroutines (``--load-client``; httpx costs 25x the CPU per request here).

Printed: the overhead of ``/v1/route`` at 1 client (median of the per-query differences from in-process
predict), its throughput at 32 clients over in-process batched throughput, and what chat completions
add at p50 over calling the backend directly. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
N_BATCH, ROUNDS, CLIENTS = 640, 3, 32
N_SINGLE, N_CONCURRENT = 150, 640  # --n-single, --n-concurrent
SERVE_ARGS: list[str] = []  # --serve-args
LOAD_CLIENT = "aiohttp"  # --load-client: what sends the 32 clients' requests


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


def paired(calls: dict, items: list[str]) -> dict[str, np.ndarray]:
    """Seconds per call of each of ``calls`` on each item, the calls taking turns item by item (so that
    other load on the machine falls on all of them alike)."""
    out = {name: [] for name in calls}
    for item in items:
        for name, call in calls.items():
            t0 = time.perf_counter()
            response = call(item)
            out[name].append(time.perf_counter() - t0)
            assert getattr(response, "status_code", 200) == 200, response.text[:300]
    return {name: np.array(v) for name, v in out.items()}


async def concurrent(method: str, url: str, bodies: list[dict], clients: int) -> tuple[np.ndarray, float]:
    """Seconds per request and requests per second, ``clients`` clients each sending its share in turn.
    The load generator is aiohttp (``--load-client``): httpx spends 2.5 ms of CPU per request here, aiohttp
    0.1 ms, and on 2 shared cores the client's CPU is taken from the server being measured."""
    out = []
    async with contextlib.AsyncExitStack() as stack:
        if LOAD_CLIENT == "aiohttp":
            import aiohttp

            session = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), timeout=aiohttp.ClientTimeout(total=120)))

            async def send(body):
                async with session.request(method, url, json=body) as response:
                    return response.status, await response.text()
        else:
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=120, limits=limits))

            async def send(body):
                response = await client.request(method, url, json=body)
                return response.status_code, response.text

        async def worker(part):
            for body in part:
                t0 = time.perf_counter()
                status, text = await send(body)
                out.append(time.perf_counter() - t0)
                assert status == 200, text[:300]

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(bodies[i::clients]) for i in range(clients)))
        wall = time.perf_counter() - t0
    return np.array(out), len(bodies) / wall


def batch_counts(url: str) -> tuple[float, float]:
    """The server's micro-batches and the queries they held, so far (its Prometheus counters)."""
    text = httpx.get(f"{url}/metrics").text
    return tuple(float(re.search(rf"^{name} (\S+)", text, re.M).group(1)) for name in ("routertrain_batches_total", "routertrain_batched_queries_total"))


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
        server, match = start([sys.executable, "-m", "routertrain.cli.serve", router, "--backends", str(config), "--port", "0", "--fast", fast, *SERVE_ARGS],
                              tmp / f"serve-{fast}.log", r"on (http://127\.0\.0\.1:\d+)/v1")
        procs.append(server)
        url = match.group(1)
        single, many = queries[:N_SINGLE], queries[:N_CONCURRENT]
        local = Router.from_pretrained(router, device="cpu", backend="onnx" if fast in ("onnx", "auto") else "torch")
        with httpx.Client(timeout=120) as client:
            for _ in range(600):
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            calls = {
                "in_process": lambda q: local.predict([q]),
                "echo_get": lambda _: client.get(f"{echo_url}/health"),
                "echo_post": lambda q: client.post(f"{echo_url}/echo", json={"queries": [q]}),
                "route_1": lambda q: client.post(f"{url}/v1/route", json={"queries": [q]}),
                "direct_1": lambda q: client.post(f"{backend_url}/chat/completions", json=chat_body(q, "fake")),
                "chat_1": lambda q: client.post(f"{url}/v1/chat/completions", json=chat_body(q, "router")),
            }
            paired(calls, single[:20])  # warm-up
            times = paired(calls, single)
        result = {name: ms(seconds) for name, seconds in times.items()}
        result["route_overhead"] = float(np.median(times["route_1"] - times["in_process"]) * 1000)  # per query, paired
        result["chat_overhead"] = float(np.median(times["chat_1"] - times["direct_1"]) * 1000)
        batches_before = batch_counts(url)
        rounds = {"in_process_qps": [], "route_32_qps": []}
        for _ in range(2):  # batched in process and 32 clients over HTTP take turns on the same queries
            t0 = time.perf_counter()
            local.predict(many, batch_size=64)
            rounds["in_process_qps"].append(len(many) / (time.perf_counter() - t0))
            seconds, qps = asyncio.run(concurrent("POST", f"{url}/v1/route", [{"queries": [q]} for q in many], CLIENTS))
            rounds["route_32_qps"].append(qps)
        batches, batched = np.subtract(batch_counts(url), batches_before)
        result.update({name: float(np.median(v)) for name, v in rounds.items()}, rounds=rounds, route_32=ms(seconds), mean_batch=batched / max(batches, 1))
        seconds, result["direct_32_qps"] = asyncio.run(concurrent("POST", f"{backend_url}/chat/completions", [chat_body(q, "fake") for q in many], CLIENTS))
        result["direct_32"] = ms(seconds)
        seconds, result["chat_32_qps"] = asyncio.run(concurrent("POST", f"{url}/v1/chat/completions", [chat_body(q, "router") for q in many], CLIENTS))
        result["chat_32"] = ms(seconds)
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
        "", f"| over HTTP (`serve --fast {fast}{' ' if SERVE_ARGS else ''}{' '.join(SERVE_ARGS)}`) | clients | p50 / p99 (ms) | requests/s |", "|---|---|---|---|",
        f"| in-process `Router.predict`, one query (taking turns with the requests below) | 1 | {f(http['in_process'])} | |",
        f"| plain uvicorn echo app, GET /health | 1 | {f(http['echo_get'])} | |",
        f"| plain uvicorn echo app, POST /echo (one query) | 1 | {f(http['echo_post'])} | |",
        f"| `/v1/route`, one query per request | 1 | {f(http['route_1'])} | |",
        f"| `/v1/route`, one query per request | {CLIENTS} | {f(http['route_32'])} | {http['route_32_qps']:.1f} |",
        f"| chat completions straight to the backend | 1 | {f(http['direct_1'])} | |",
        f"| chat completions through the router | 1 | {f(http['chat_1'])} | |",
        f"| chat completions straight to the backend | {CLIENTS} | {f(http['direct_32'])} | {http['direct_32_qps']:.1f} |",
        f"| chat completions through the router | {CLIENTS} | {f(http['chat_32'])} | {http['chat_32_qps']:.1f} |",
    ]
    chat_over = http["chat_overhead"]
    lines += [
        "",
        f"- `/v1/route` at 1 client: p50 {http['route_1'][0]:.2f} ms against in-process p50 {http['in_process'][0]:.2f} ms (one query per call, taking turns): "
        f"overhead **{http['route_overhead']:+.2f} ms** (median of the per-query differences; HTTP floor, echo app POST p50: {http['echo_post'][0]:.2f} ms).",
        f"- `/v1/route` at {CLIENTS} clients: {http['route_32_qps']:.1f} queries/s against in-process batch-64 {http['in_process_qps']:.1f}, in alternating rounds: "
        f"**{http['route_32_qps'] / http['in_process_qps']:.2f}x** (rounds: {', '.join(f'{x:.1f}' for x in http['rounds']['route_32_qps'])} vs "
        f"{', '.join(f'{x:.1f}' for x in http['rounds']['in_process_qps'])}; mean micro-batch at 32 clients {http['mean_batch']:.1f} queries).",
        f"- chat completions at 1 client add **{chat_over:+.2f} ms** at p50 over calling the backend directly (median per-query difference; "
        f"routing one query in process takes {http['in_process'][0]:.2f} ms of it; the rest: {chat_over - http['in_process'][0]:+.2f} ms).",
        f"- ONNX vs eager: same decision on {local['agreement']:.2%} of {local['n_agree']} test queries, largest probability difference "
        f"{local['max_diff']:.1e}. Per-round batch-1 p50 (ms) eager {', '.join(f'{x:.1f}' for x in local['rounds_p50']['eager'])}; "
        f"ONNX {', '.join(f'{x:.1f}' for x in local['rounds_p50']['onnx'])}; batch-64 queries/s eager "
        f"{', '.join(f'{x:.1f}' for x in local['qps_rounds']['eager'])}; ONNX {', '.join(f'{x:.1f}' for x in local['qps_rounds']['onnx'])}.",
        f"- {n_queries} RouterDC test queries in a fixed shuffle; batch 1 and HTTP at 1 client: the first {N_SINGLE}; batch 64: the first {N_BATCH}; "
        f"{CLIENTS} clients: {N_CONCURRENT} requests, sent with {LOAD_CLIENT}. {local['threads']} torch threads. Run time {seconds:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    global N_SINGLE, N_CONCURRENT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("router")
    parser.add_argument("--data", default="../shared/data/routerdc")
    parser.add_argument("--fast", default="onnx", choices=("onnx", "none", "int8", "auto"), help="the serve path measured over HTTP (default onnx)")
    parser.add_argument("--n-agree", type=int, default=2000, help="test queries on which ONNX and eager decisions are compared")
    parser.add_argument("--n-single", type=int, default=N_SINGLE, help="queries sent one by one (in process and at 1 client)")
    parser.add_argument("--n-concurrent", type=int, default=N_CONCURRENT, help=f"requests from {CLIENTS} clients")
    parser.add_argument("--load-client", choices=("aiohttp", "httpx"), default="aiohttp", help="the 32 clients' HTTP library (default aiohttp: the leanest here)")
    parser.add_argument("--serve-args", default="", help="more options for serve, e.g. '--threads 1'")
    parser.add_argument("--output", type=Path, default=Path("checkpoints/routing-speed.md"))
    args = parser.parse_args()
    SERVE_ARGS.extend(args.serve_args.split())
    global LOAD_CLIENT
    LOAD_CLIENT = args.load_client
    N_SINGLE, N_CONCURRENT = args.n_single, args.n_concurrent
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
