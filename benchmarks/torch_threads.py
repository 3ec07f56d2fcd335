"""Does it matter which thread runs torch? One query at a time through ``Router.predict``, p50 in ms.

    python benchmarks/torch_threads.py checkpoints/routerdc-l6-frozen --data ../shared/data/routerdc

Each case runs in a fresh process (a thread that has run torch cannot be undone):

- ``main``: the router loaded and scored in the main thread (as a script does);
- ``other``: loaded in the main thread, scored in a one-thread ``ThreadPoolExecutor`` (as ``serve`` did);
- ``one``: loaded and scored in that executor's thread (as ``serve`` does now);
- ``one-then-main``: as ``one``, then one query scored in the main thread, then the executor again.

Three rounds of the first 120 RouterDC test queries per case. Why: ``serving/batching.py``'s docstring.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASES = ("main", "other", "one", "one-then-main")


def child(router: str, data: str, case: str) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from routertrain.config import load_config
    from routertrain.data import load_routing_data
    from routertrain.hub.router import Router

    queries = list(load_routing_data(load_config(["data=routerdc", f"data.path={data}"]).data).splits["test"]["query"])[:120]
    pool = ThreadPoolExecutor(max_workers=1)

    def p50(r) -> float:
        times = []
        for q in queries:
            t0 = time.perf_counter()
            r.predict([q])
            times.append(time.perf_counter() - t0)
        return round(float(np.median(times)) * 1000, 1)

    if case == "main":
        r = Router.from_pretrained(router)
        return {case: [p50(r) for _ in range(3)]}
    if case == "other":
        r = Router.from_pretrained(router)
        return {case: [pool.submit(p50, r).result() for _ in range(3)]}
    r = pool.submit(Router.from_pretrained, router).result()
    rounds = [pool.submit(p50, r).result() for _ in range(3 if case == "one" else 1)]
    if case == "one":
        return {case: rounds}
    r.predict(queries[:1])  # the main thread runs torch once
    return {case: rounds + [pool.submit(p50, r).result() for _ in range(2)], "then main": p50(r)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("router")
    parser.add_argument("--data", default="../shared/data/routerdc")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.router, args.data, args.child)), flush=True)
        return
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, args.router, "--data", args.data, "--child", case], capture_output=True, text=True, check=True).stdout
        print(next(line[7:] for line in out.splitlines() if line.startswith("RESULT ")), flush=True)


if __name__ == "__main__":
    main()
