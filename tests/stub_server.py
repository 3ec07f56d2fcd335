"""The routing server's application around a stub router whose scoring can be made slow or fail: a real
server on 127.0.0.1 for the tests of a full queue, a failing micro-batch and unreachable backends.

    python tests/stub_server.py BACKENDS.yaml [--max-queue N]     prints "on http://127.0.0.1:PORT"

The stub routes between two models, m1 and m2 (always m1). A batch holding the query ``slow`` takes
1.5 s to score; one holding ``boom`` raises.
"""

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import uvicorn

from routertrain.cli.serve import listening_socket
from routertrain.serving.app import ServeOptions, create_app
from routertrain.serving.backends import load_backends


class StubRouter:
    models = ["m1", "m2"]
    costs = None
    config = SimpleNamespace(calibration=None)
    train_means = None  # no tie-break keys: ties go to pool order
    folder = Path("stub")

    def predict(self, queries: list[str]) -> np.ndarray:
        if "boom" in queries:
            raise RuntimeError("the stub router fails on 'boom'")
        if "slow" in queries:
            time.sleep(1.5)
        return np.tile([0.9, 0.1], (len(queries), 1)).astype(np.float32)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("backends", type=Path)
    parser.add_argument("--max-queue", type=int, default=1024)
    args = parser.parse_args()
    router = StubRouter()
    app = create_app(router, load_backends(args.backends, router.models), ServeOptions(max_queue=args.max_queue))
    sock = listening_socket("127.0.0.1", 0)
    print(f"on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
