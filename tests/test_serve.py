"""The routing server, end to end: a real ``serve`` subprocess on 127.0.0.1 in front of fake backends
that are real HTTP servers (tests/fake_backend.py). Only loopback addresses, bounded request counts
and timeouts."""

import asyncio
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from routertrain import Router
from routertrain.serving.backends import BackendConfigError, load_backends

from tests.conftest import REPO
TIMEOUT = httpx.Timeout(60.0)
KEY = "sk-test-not-to-be-logged-7f3a"


def environment() -> dict:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return {**env, "PYTHONPATH": str(REPO), "NO_PROXY": "127.0.0.1", "FAKE_BACKEND_KEY": KEY, "OMP_NUM_THREADS": "1"}


def wait_for_line(log: Path, pattern: str, proc: subprocess.Popen, timeout: float = 120.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text() if log.exists() else "")
        if match:
            return match
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {log} after {timeout}s: {log.read_text()[-2000:]}")


class Process:
    """A subprocess whose output goes to a log file; stopped at the end of the test module."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        self.proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=environment(), cwd=REPO)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def fake_backend(name: str, tmp: Path) -> tuple[Process, str]:
    process = Process([sys.executable, str(REPO / "tests" / "fake_backend.py"), name], tmp / f"backend-{name}.log")
    port = wait_for_line(process.log, r"listening (\d+)", process.proc, timeout=30).group(1)
    return process, f"http://127.0.0.1:{port}/v1"


def serve(router: Path, backends: dict, tmp: Path, name: str, fallback: str | None = None) -> tuple[Process, str]:
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"backends": backends, **({"fallback": fallback} if fallback else {}), "timeout_s": 20}))
    process = Process([sys.executable, "-m", "routertrain.cli.serve", str(router), "--backends", str(config), "--port", "0", "--window-ms", "20", "--fast", "onnx", "--switch-interval-ms", "1"],
                      tmp / f"{name}.log")
    url = wait_for_line(process.log, r"on (http://127\.0\.0\.1:\d+)/v1", process.proc).group(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{name} never answered /health: {process.log.read_text()[-2000:]}")


def chat(query: str, model: str = "router", **extra) -> dict:
    return {"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": query}], **extra}


@pytest.fixture(scope="module")
def setup(tiny_run, tmp_path_factory):
    """Two fake backends for the two models of the tiny router that split 200 queries most evenly."""
    from routertrain.config import load_config
    from routertrain.data import build_synthetic

    tmp = tmp_path_factory.mktemp("serve")
    folder = tiny_run / "router"
    router = Router.from_pretrained(folder, device="cpu")
    queries = list(dict.fromkeys(build_synthetic(load_config(["data.synthetic.n_train=600"]).data).splits["train"]["query"]))
    probs = router.predict(queries)
    pairs = [(i, j) for i in range(len(router.models)) for j in range(i + 1, len(router.models))]

    def balance(pair):
        first = probs[:, pair[0]] > probs[:, pair[1]]
        return min(first.sum(), (~first).sum())

    i, j = max(pairs, key=balance)
    clear = np.abs(probs[:, i] - probs[:, j]) > 1e-4  # no query on a knife edge between batch and single scoring
    queries = [q for q, ok in zip(queries, clear) if ok][:200]
    assert len(queries) == 200
    models = (router.models[i], router.models[j])
    processes = []
    try:
        (a, url_a), (b, url_b) = fake_backend("A", tmp), fake_backend("B", tmp)
        processes += [a, b]
        server, url = serve(folder, {models[0]: {"base_url": url_a, "model": "fake-a"}, models[1]: {"base_url": url_b, "model": "fake-b"}}, tmp, "server")
        processes.append(server)
        expected = {q: models[0] if p[i] > p[j] else models[1] for q, p in zip(queries, router.predict(queries))}
        yield {"url": url, "models": models, "backend": {models[0]: "A", models[1]: "B"}, "expected": expected, "queries": queries,
               "router": router, "folder": folder, "tmp": tmp, "server": server, "url_a": url_a}
    finally:
        for process in processes:
            process.stop()


def metric(url: str, name: str, **labels) -> float:
    text = httpx.get(f"{url}/metrics", timeout=TIMEOUT).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} " if labels else f"{name} "):
            return float(line.split()[-1])
    return 0.0


def test_chat_goes_to_the_backend_its_query_routes_to(setup):
    url, expected = setup["url"], setup["expected"]
    for model in setup["models"]:
        query = next(q for q, m in expected.items() if m == model)
        response = httpx.post(f"{url}/v1/chat/completions", json=chat(query), timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["x-routertrain-model"] == body["model"] == model
        assert 0 < float(response.headers["x-routertrain-routing-ms"]) < 60_000
        assert body["backend"] == setup["backend"][model] and body["choices"][0]["message"]["content"].endswith(query)
    other = setup["models"][1]
    forced = httpx.post(f"{url}/v1/chat/completions", json=chat(setup["queries"][0], model=other), timeout=TIMEOUT).json()
    assert forced["model"] == other and forced["backend"] == setup["backend"][other]  # a pool model's own name skips routing
    health = httpx.get(f"{url}/health", timeout=TIMEOUT).json()
    assert health["status"] == "ok" and health["models"] == list(setup["models"]) and all(health["reachable"].values())
    assert f"{setup['folder']} (onnx) on http://" in setup["server"].log.read_text()  # these tests serve through ONNX Runtime (--fast onnx)


def test_streaming_is_forwarded(setup):
    url, query = setup["url"], setup["queries"][3]
    model = setup["expected"][query]
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=chat(query, stream=True), timeout=TIMEOUT) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-routertrain-model"] == model
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and len(events) == 4
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["model"] == model and c["backend"] == setup["backend"][model] for c in chunks)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == f"{setup['backend'][model]} answers: {query}"


def test_route_endpoint_returns_decisions_and_probabilities(setup):
    queries = setup["queries"][:7]
    response = httpx.post(f"{setup['url']}/v1/route", json={"queries": queries}, timeout=TIMEOUT)
    assert response.status_code == 200
    decisions = response.json()["decisions"]
    local = setup["router"].predict(queries)
    for query, decision, row in zip(queries, decisions, local):
        assert decision["query"] == query and decision["model"] == setup["expected"][query]
        np.testing.assert_allclose(list(decision["probabilities"].values()), row, atol=1e-4)
        assert list(decision["probabilities"]) == setup["router"].models


def test_200_concurrent_requests_each_answered_by_its_backend(setup):
    url, queries, expected = setup["url"], setup["queries"], setup["expected"]
    before = {m: metric(url, "routertrain_requests_total", endpoint="chat", model=m, status=200) for m in setup["models"]}
    batches_before = metric(url, "routertrain_batches_total")

    async def run():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
            return await asyncio.gather(*(client.post(f"{url}/v1/chat/completions", json=chat(q)) for q in queries))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 200
    for query, response in zip(queries, responses):
        body = response.json()
        assert body["model"] == expected[query] and body["backend"] == setup["backend"][expected[query]], query
        assert body["choices"][0]["message"]["content"].endswith(query)
    counts = {m: sum(1 for q in queries if expected[q] == m) for m in setup["models"]}
    assert min(counts.values()) > 0  # both backends served some
    for model in setup["models"]:  # the counters moved by exactly these requests
        assert metric(url, "routertrain_requests_total", endpoint="chat", model=model, status=200) - before[model] == counts[model]
    batches = metric(url, "routertrain_batches_total") - batches_before
    assert 1 <= batches < 200  # concurrent requests were scored together
    assert metric(url, "routertrain_routing_seconds_count") >= 200


def test_bad_requests_get_a_one_line_4xx(setup):
    url = setup["url"]
    before = metric(url, "routertrain_bad_requests_total", endpoint="/v1/chat/completions")
    cases = [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"model": "router"}}, 400, "'messages' must be a non-empty list"),
        ({"json": {"messages": [{"role": "system", "content": "hi"}]}}, 400, "no user message"),
        ({"json": chat("hello", model="gpt-9")}, 400, "unknown model 'gpt-9'; use router, router-<cost weight>"),
        ({"json": chat("hello", model="router-abc")}, 400, "unknown model"),
        ({"json": chat("hello", stream="yes")}, 400, "'stream' must be true or false"),
        ({"json": chat("   ")}, 400, "empty"),
        ({"json": chat("hello", model="router-mean-cost-0.3")}, 400, "--calibration-queries"),
        ({"json": {"model": ["router"], "messages": [{"role": "user", "content": "hi"}]}}, 400, "'model' must be a string"),
        ({"json": {"model": ["router"]}}, 400, "'model' must be a string"),
        ({"json": {"messages": "hello"}}, 400, "'messages' must be a non-empty list"),
        ({"json": {"messages": [{"role": "user", "content": 3}]}}, 400, "content must be a string or a list"),
        ({"json": {"messages": [{"content": "hi"}]}}, 400, "'messages' must be a non-empty list"),
        ({"json": [1, 2]}, 400, "must be a JSON object"),
        ({"content": b'{"messages": "' + b"a" * (5 * 2**20) + b'"}', "headers": {"Content-Type": "application/json"}}, 413, "over 4194304 bytes"),
    ]
    for kwargs, status, text in cases:
        response = httpx.post(f"{url}/v1/chat/completions", timeout=TIMEOUT, **kwargs)
        message = response.json()["error"]["message"]
        assert response.status_code == status and text in message and "\n" not in message, (kwargs, response.text)
    assert metric(url, "routertrain_bad_requests_total", endpoint="/v1/chat/completions") - before == len(cases)
    for body, text in (({"queries": []}, "non-empty list"), ({"queries": ["a", 3]}, "non-empty list"), ({"queries": ["a"], "model": 1.5}, "'model' must be a string"),
                       ({"queries": ["a"], "extra": 1}, "unknown field 'extra'")):
        response = httpx.post(f"{url}/v1/route", json=body, timeout=TIMEOUT)
        assert response.status_code == 400 and text in response.json()["error"]["message"], (body, response.text)
    assert httpx.get(f"{url}/v1/nothing", timeout=TIMEOUT).status_code == 404


def test_backend_killed_mid_test_and_clean_shutdown(setup):
    """Two more backends (one needs an API key) behind a second server whose fallback is the third model."""
    tmp, models = setup["tmp"], setup["router"].models
    dying_model, fallback_model = [m for m in models if m not in setup["models"]][:2]
    c, url_c = fake_backend("C", tmp)
    d, url_d = fake_backend("D", tmp)
    server = None
    try:
        backends = {
            setup["models"][0]: {"base_url": setup["url_a"], "model": "fake-a"},
            dying_model: {"base_url": url_c, "model": "fake-c", "api_key_env": "FAKE_BACKEND_KEY"},
            fallback_model: {"base_url": url_d, "model": "fake-d"},
        }
        server, url = serve(setup["folder"], backends, tmp, "server-fallback", fallback=fallback_model)
        query = setup["queries"][0]
        alive = httpx.post(f"{url}/v1/chat/completions", json=chat(query, model=dying_model), timeout=TIMEOUT).json()
        assert alive["backend"] == "C" and alive["authorized"] is True  # the key reached the backend

        c.stop()  # the backend dies mid-test: its requests go to the fallback
        response = httpx.post(f"{url}/v1/chat/completions", json=chat(query, model=dying_model), timeout=TIMEOUT)
        assert response.status_code == 200 and response.json()["backend"] == "D"
        assert response.headers["x-routertrain-model"] == fallback_model and response.headers["x-routertrain-fallback-from"] == dying_model
        assert metric(url, "routertrain_fallbacks_total", model=dying_model) == 1
        assert metric(url, "routertrain_backend_errors_total", model=dying_model) == 1

        d.stop()  # now the fallback is gone too: a JSON error with a gateway status
        response = httpx.post(f"{url}/v1/chat/completions", json=chat(query, model=dying_model), timeout=TIMEOUT)
        error = response.json()["error"]
        assert response.status_code == 502 and error["type"] == "backend_error" and "could not be reached" in error["message"] and "\n" not in error["message"]
        live = httpx.post(f"{url}/v1/chat/completions", json=chat(query, model=setup["models"][0]), timeout=TIMEOUT)
        assert live.status_code == 200 and live.json()["backend"] == "A"  # the others still work

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a request in flight when SIGTERM comes is answered before exit
            slow = pool.submit(httpx.post, f"{url}/v1/chat/completions", json=chat("[sleep 1.5] still there?", model=setup["models"][0]), timeout=TIMEOUT)
            time.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)
            assert slow.result().status_code == 200 and slow.result().json()["backend"] == "A"
        assert server.proc.wait(timeout=60) == 0
        log = server.log.read_text()
        assert "Application shutdown complete" in log and KEY not in log
    finally:
        for process in (c, d, *([server] if server else [])):
            process.stop()


def test_backends_file_is_checked(tmp_path, monkeypatch):
    pool = ["m1", "m2"]
    path = tmp_path / "b.yaml"
    bad = [
        ("backends: [1, 2]", "no 'backends:' mapping"),
        ("backends: {m9: {base_url: 'http://127.0.0.1:1/v1'}}", "'m9' is not in the router's pool; use one of m1, m2"),
        ("backends: {m1: {base_url: 'ftp://x'}}", "needs base_url"),
        ("backends: {m1: {base_url: 'http://127.0.0.1:1/v1'}}\nfallback: m2", "fallback 'm2' has no backend"),
        ("backends: {m1: {base_url: 'http://127.0.0.1:1/v1', api_key_env: NOT_SET_ANYWHERE_42}}", "$NOT_SET_ANYWHERE_42, which is not set"),
        ("backends: {m1: {base_url: 'http://127.0.0.1:1/v1'}\n", "not valid YAML"),
    ]
    monkeypatch.delenv("NOT_SET_ANYWHERE_42", raising=False)
    for text, message in bad:
        path.write_text(text)
        with pytest.raises(BackendConfigError, match=re.escape(message)):
            load_backends(path, pool)
    monkeypatch.setenv("SECRET_FOR_TEST", "s3cr3t")
    path.write_text("backends: {m1: {base_url: 'http://127.0.0.1:1/v1/', model: x, api_key_env: SECRET_FOR_TEST}}")
    loaded = load_backends(path, pool)
    assert loaded.models["m1"].base_url == "http://127.0.0.1:1/v1" and "s3cr3t" not in repr(loaded)


def test_per_request_settings_from_the_model_name():
    """The model-name grammar, on the hand-computed matrix of test_calibrate (no server needed)."""
    from types import SimpleNamespace

    from routertrain.serving.app import BadRequest, Routing
    from routertrain.serving.backends import Backend, Backends
    from tests.test_calibrate import COSTS, MODELS, PROBS

    router = SimpleNamespace(models=MODELS, costs=COSTS, config={}, train_means=None)
    served = Backends({m: Backend(m, "http://127.0.0.1:1/v1", m) for m in MODELS})
    routing = Routing(router, served, PROBS)
    assert routing.setting("router") == (None, None) and routing.setting("b") == (None, 1)
    assert routing.setting("router-0.3") == ({"cost_weight": 0.3}, None)
    assert list(routing.decide(PROBS, routing.setting("router-0.3")[0])) == [0, 1, 1, 2]  # hand-computed: rows 2, 3 switch at 0.2
    mean_cost, _ = routing.setting("router-mean-cost-0.3")
    assert mean_cost["cost_weight"] == pytest.approx(0.5, abs=1e-9)
    share, _ = routing.setting("router-max-share-a-0.25")
    assert share["cost_weight"] == pytest.approx(0.2, abs=1e-9) and share["penalised"] == ["a"]
    for name, message in (("router-mean-cost-0.1x", "must end in a number"), ("router-max-share-zz-0.1", "not in this router's pool"),
                          ("router--1", "unknown model"), ("router-mean-cost--1", "cannot be reached")):
        with pytest.raises(BadRequest, match=message):
            routing.setting(name)
    only_c = Routing(router, Backends({"c": Backend("c", "http://127.0.0.1:1/v1", "c")}), None)
    assert list(only_c.decide(PROBS, None)) == [2, 2, 2, 2]  # models without a backend are never chosen
    with pytest.raises(BadRequest, match="has no backend"):
        only_c.setting("a")


def test_the_text_scored_is_the_last_user_message_or_the_conversation():
    from routertrain.serving.app import BadRequest, query_text

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": None}, {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]}]
    assert query_text(messages, "last") == "second"
    assert query_text(messages, "conversation") == "Be brief.\nfirst\n\nsecond"
    with pytest.raises(BadRequest, match="content must be a string or a list"):
        query_text([{"role": "user", "content": 3}], "last")


def test_no_stall_against_a_plain_uvicorn_app(setup):
    """/health on serve against GET on a plain FastAPI + uvicorn app, interleaved on kept-alive connections: the
    Nagle + delayed-ACK stall (about 40 ms a request) made the ratio about 60; without it, it is near 1."""
    plain = Process([sys.executable, str(REPO / "tests" / "echo_app.py")], setup["tmp"] / "echo.log")
    try:
        plain_url = wait_for_line(plain.log, r"on (http://127\.0\.0\.1:\d+)", plain.proc, timeout=60).group(1)
        times = {setup["url"]: [], plain_url: []}
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(40):
                for url, seconds in times.items():
                    start = time.perf_counter()
                    assert client.get(f"{url}/health").status_code == 200
                    seconds.append(time.perf_counter() - start)
    finally:
        plain.stop()
    ratio = np.median(times[setup["url"]][5:]) / np.median(times[plain_url][5:])
    assert ratio < 8, f"serve's /health takes {ratio:.1f}x a plain uvicorn app's: is TCP_NODELAY set on accepted connections?"


def test_fake_backend_does_not_stall(setup):
    """The fake backend answers a kept-alive connection as fast as a plain uvicorn app does, within a small factor."""
    plain = Process([sys.executable, str(REPO / "tests" / "echo_app.py")], setup["tmp"] / "echo-2.log")
    try:
        plain_url = wait_for_line(plain.log, r"on (http://127\.0\.0\.1:\d+)", plain.proc, timeout=60).group(1)
        times = {"backend": [], "plain": []}
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(30):
                for name, call in (("backend", lambda: client.post(f"{setup['url_a']}/chat/completions", json=chat("hi"))),
                                   ("plain", lambda: client.post(f"{plain_url}/echo", json=chat("hi")))):
                    start = time.perf_counter()
                    assert call().status_code == 200
                    times[name].append(time.perf_counter() - start)
    finally:
        plain.stop()
    ratio = np.median(times["backend"][5:]) / np.median(times["plain"][5:])
    assert ratio < 8, f"the fake backend takes {ratio:.1f}x a plain uvicorn app: is disable_nagle_algorithm set?"


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    """The server around a stub router (tests/stub_server.py) with a queue of one request; its backends are closed ports."""
    import socket

    tmp = tmp_path_factory.mktemp("stub")
    ports = []
    for _ in range(2):  # ports that were free a moment ago and that nothing listens on
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    config = tmp / "dead.yaml"
    config.write_text(yaml.safe_dump({"backends": {f"m{i + 1}": {"base_url": f"http://127.0.0.1:{p}/v1"} for i, p in enumerate(ports)}, "timeout_s": 5}))
    process = Process([sys.executable, str(REPO / "tests" / "stub_server.py"), str(config), "--max-queue", "1"], tmp / "stub.log")
    try:
        yield wait_for_line(process.log, r"on (http://127\.0\.0\.1:\d+)", process.proc, timeout=60).group(1)
    finally:
        process.stop()


def test_health_with_every_backend_down(stub):
    response = httpx.get(f"{stub}/health", timeout=TIMEOUT)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["reachable"] == {"m1": False, "m2": False}


def test_a_failing_batch_fails_only_its_own_requests(stub):
    before = metric(stub, "routertrain_batch_errors_total")
    response = httpx.post(f"{stub}/v1/route", json={"queries": ["boom"]}, timeout=TIMEOUT)
    message = response.json()["error"]["message"]
    assert response.status_code == 500 and "stub router fails" in message and "\n" not in message
    for _ in range(2):  # the worker goes on: later batches are scored
        response = httpx.post(f"{stub}/v1/route", json={"queries": ["fine", "also fine"]}, timeout=TIMEOUT)
        assert response.status_code == 200 and [d["model"] for d in response.json()["decisions"]] == ["m1", "m1"]
    assert metric(stub, "routertrain_batch_errors_total") - before == 1


def test_a_full_queue_answers_503_with_retry_after(stub):
    """Queue of one: while a slow batch is scored, one request waits and the next is refused."""
    async def run():
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            first = asyncio.create_task(client.post(f"{stub}/v1/route", json={"queries": ["slow"]}))
            await asyncio.sleep(0.5)  # the slow batch is being scored (1.5 s): the queue is empty
            waiting = asyncio.create_task(client.post(f"{stub}/v1/route", json={"queries": ["a"]}))
            await asyncio.sleep(0.2)
            refused = await client.post(f"{stub}/v1/route", json={"queries": ["b"]})
            return await first, await waiting, refused

    first, waiting, refused = asyncio.run(run())
    assert first.status_code == 200 and waiting.status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1" and refused.json()["error"]["type"] == "overloaded"
    assert metric(stub, "routertrain_overloaded_total") >= 1


def test_one_thread_loads_the_router_and_scores_every_batch(monkeypatch, tmp_path):
    """torch is fastest used from a single thread (BENCHMARKS.md, section 3): serve loads the router on
    the thread that then scores every micro-batch."""
    import threading

    from routertrain.cli import serve
    from routertrain.hub import router as router_module
    from routertrain.serving.batching import MicroBatcher, scoring_thread

    loaded_on = []

    def from_pretrained(*args, **kwargs):
        loaded_on.append(threading.current_thread().name)
        raise ValueError("stop here")

    monkeypatch.setattr(router_module.Router, "from_pretrained", from_pretrained)
    assert serve.main(["org/router", "--backends", str(tmp_path / "backends.yaml")]) != 0
    assert loaded_on and loaded_on[0].startswith("router") and loaded_on[0] != threading.main_thread().name

    pool = scoring_thread()
    loader = pool.submit(threading.get_ident).result()
    scored_on = []

    def predict(texts):
        scored_on.append(threading.get_ident())
        return np.zeros((len(texts), 2), dtype=np.float32)

    async def run():
        batcher = MicroBatcher(predict, pool=pool)
        await batcher.start()
        await asyncio.gather(*(batcher.submit([f"q{i}"]) for i in range(5)))
        await batcher.close()

    asyncio.run(run())
    assert scored_on and set(scored_on) == {loader}


def test_the_socket_listens_before_serve_prints_its_address():
    """``serve`` prints its address before uvicorn starts serving: a client that connects at once must
    wait in the backlog, not be refused."""
    import socket

    from routertrain.cli.serve import listening_socket

    sock = listening_socket("127.0.0.1", 0)
    try:
        client = socket.create_connection(sock.getsockname()[:2], timeout=5)  # refused if the socket only were bound
        client.close()
    finally:
        sock.close()
