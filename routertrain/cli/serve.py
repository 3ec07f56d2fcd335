"""Serve a router as an OpenAI-compatible endpoint in front of its pool's models.

    python -m routertrain.cli.serve ROUTER --backends backends.yaml [--host 127.0.0.1] [--port 8000]

Clients point their OpenAI base URL at http://HOST:PORT/v1 and send ``model: router`` (or
``router-0.1``: cost weight 0.1; see ``routertrain.serving.app``). Stop it with Ctrl-C or SIGTERM:
requests in flight finish, then it exits with status 0.
"""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

from routertrain.cli.args import Parser, bounded, fail
from routertrain.cli.common import device_option
from routertrain.serving.batching import SWITCH_INTERVAL_S


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket for uvicorn. Made with IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on
    accepted connections only then; without it Nagle's algorithm meets delayed ACKs and answers stall ~40 ms."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # listening before the address is printed: early clients wait in the backlog, never get "connection refused"
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m routertrain.cli.serve", description=__doc__.splitlines()[0])
    parser.add_argument("router", help="router folder, run folder, or Hub repo id")
    parser.add_argument("--backends", type=Path, required=True, help="YAML file: pool model -> base_url, model, api_key_env (see routertrain.serving.backends)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=bounded(int, 0, 65535), default=8000, help="port (default 8000; 0: any free port, printed at start)")
    parser.add_argument("--score", choices=("last", "conversation"), default="last", help="route on the last user message (default) or the whole conversation")
    parser.add_argument("--window-ms", type=bounded(float, 0), default=0.0, help="extra wait for more queries before scoring a micro-batch, in ms (default 0: score what is waiting at once)")
    parser.add_argument("--max-batch", type=bounded(int, 1), default=64, help="queries per micro-batch (default 64)")
    parser.add_argument("--max-queue", type=bounded(int, 1), default=1024, help="requests waiting to be routed; beyond it 503 with Retry-After (default 1024)")
    parser.add_argument("--max-body-mb", type=bounded(float, 0), default=4.0, help="largest request body in MiB; larger gets 413 (default 4)")
    parser.add_argument("--calibration-queries", type=Path, help="queries (one per line) on which per-request targets such as router-mean-cost-0.3 are solved")
    parser.add_argument("--fast", choices=("none", "auto", "onnx", "int8"), default="none",
                        help="none (default): eager torch; onnx: the network exported to ONNX Runtime, routes as eager does; auto: onnx on CPU when "
                             "onnxruntime is installed; int8: dynamic int8 quantisation (changes some decisions). ONNX is opt-in: on an idle 2-core "
                             "CPU it was level at batch 1 and slower at batch 64 (BENCHMARKS.md)")
    parser.add_argument("--threads", type=bounded(int, 1), help="CPU threads that score a batch (default: torch's, one per core)")
    parser.add_argument("--switch-interval-ms", type=bounded(float, 0.01), default=SWITCH_INTERVAL_S * 1000,
                        help="the interpreter's GIL switch interval, in ms (default 0.5; Python's own is 5): how long the scoring thread can wait "
                             "for the GIL while the event loop holds it (routertrain.serving.batching)")
    parser.add_argument("--device", type=device_option, default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--access-log", action="store_true", help="log every request line")
    args = parser.parse_args(argv)

    import uvicorn

    from routertrain.cli.route import read_queries
    from routertrain.hub.router import Router, router_folder
    from routertrain.serving.app import ServeOptions, create_app
    from routertrain.serving.backends import BackendConfigError, load_backends
    from routertrain.serving.batching import scoring_thread

    try:
        try:
            location = router_folder(args.router)
        except FileNotFoundError:
            location = args.router  # a Hub repo id
        fast = args.fast
        if fast == "auto":
            from routertrain.hub.onnx import default_backend

            fast = "onnx" if args.device.startswith("cpu") and default_backend() == "onnx" else "none"
        if fast in ("int8", "onnx") and not args.device.startswith("cpu"):
            raise ValueError(f"--fast {fast} is a CPU path; drop it or use --device cpu (got {args.device})")

        def load():  # in the thread that will score every batch: torch runs fastest used from one thread only
            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            router = Router.from_pretrained(location, device=args.device, backend="onnx" if fast == "onnx" else "torch")
            if fast == "int8":
                from routertrain.model.quantize import quantize_int8

                for network in router.networks():  # one, or an ensemble's members
                    quantize_int8(network)
            return router, router.predict(read_queries(args.calibration_queries)) if args.calibration_queries else None

        pool = scoring_thread()
        router, calibration = pool.submit(load).result()
        backends = load_backends(args.backends, router.models)
        sock = listening_socket(args.host, args.port)
    except (BackendConfigError, OSError, ValueError) as err:
        return fail(err)
    saved = getattr(router.config, "calibration", None)
    served = [m for m in router.models if m in backends.models]
    if saved and saved.get("models", router.models) != served:
        print(f"warning: the saved calibration chose among {len(saved.get('models', router.models))} models but this server has backends for {len(served)}: "
              f"its target may not hold here; calibrate again with --backends {args.backends}", file=sys.stderr, flush=True)
    options = ServeOptions(args.score, args.window_ms / 1000, args.max_batch, args.max_queue, int(args.max_body_mb * 2**20), calibration_probs=calibration)
    app = create_app(router, backends, options, pool)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=args.access_log, timeout_graceful_shutdown=30))

    def stop(signum, frame):  # uvicorn re-raises the signal it caught once it has shut down cleanly
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.setswitchinterval(args.switch_interval_ms / 1000)  # the scoring thread gets the GIL back sooner from the event loop
    host, port = sock.getsockname()[:2]
    served = ", ".join(f"{name} -> {b.base_url} ({b.model})" for name, b in backends.models.items())
    print(f"routertrain serve: {router.folder} ({fast}) on http://{host}:{port}/v1 | backends: {served}" + (f" | fallback {backends.fallback}" if backends.fallback else ""), flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
