"""The routing server: an OpenAI-compatible API that picks a backend per request with the router.

- ``POST /v1/chat/completions``: the router scores the last user message (``score="conversation"``:
  every message) and the request goes to the chosen model's backend, streamed when asked; the
  response's ``model`` field and its ``x-routertrain-model`` header name the chosen pool model.
- ``POST /v1/route``: ``{"queries": [...], "model": "router-0.1"}`` -> the decision and the
  probabilities per query, calling no backend.
- Each chat answer carries ``x-routertrain-routing-ms``: the time its routing took (micro-batch wait
  included), the router's own overhead before the backend is called.
- ``GET /health``: whether each backend can be reached (probed at most once a second); 503 when none can.
- ``GET /metrics`` (Prometheus text, ``prometheus_client``).

The request's ``model`` picks the routing setting: ``router`` (the router's calibrated default,
else cost weight 0), ``router-<w>`` (cost weight w, e.g. ``router-0.1``), ``router-mean-cost-<x>`` and
``router-max-share-<model>-<share>`` (targets solved on the server's calibration queries), or a pool
model's own name (no routing). Only models with a backend are chosen. A backend that cannot be
reached, times out or answers 5xx sends the request to the configured fallback model, else gives a
JSON error (502, or 504 on a timeout); its 4xx answers are passed on. Every backend call is bounded by
the backends file's ``timeout_s``. Bad requests (checked by the pydantic models of ``schema``) get a
4xx whose ``error.message`` is one line; a body over ``max_body`` bytes gets 413; a full routing queue
gets 503 with ``Retry-After``; a failed micro-batch fails its own requests (500) and no others.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache

import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from routertrain.hub.calibrate import CalibrationError, decisions, solve_max_share, solve_mean_cost
from routertrain.serving.backends import Backends
from routertrain.serving.batching import MicroBatcher, QueueFull
from routertrain.serving.metrics import Metrics
from routertrain.serving.schema import ChatRequest, RouteRequest, ValidationError, one_line

PREFIX = "router"
HEADER = "x-routertrain-model"
TIMING = "x-routertrain-routing-ms"  # this request's routing time: micro-batch wait + scoring
MAX_QUERIES = 1024  # per /v1/route request


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class ServeOptions:
    score: str = "last"  # "last": the last user message; "conversation": every message
    window_s: float = 0.0  # micro-batch collection window (0: score what is waiting at once)
    max_batch: int = 64  # queries per micro-batch
    max_queue: int = 1024  # requests waiting to be scored; more get 503
    max_body: int = 4 * 2**20  # request body bytes; more get 413
    health_ttl_s: float = 1.0  # /health probes the backends at most this often
    calibration_probs: np.ndarray | None = None  # the router's probabilities on calibration queries, for per-request targets


def error(status: int, message: str, kind: str = "invalid_request_error", headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status, headers=headers)


def message_text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    raise BadRequest("a message's content must be a string or a list of content parts ({\"type\": \"text\", \"text\": ...})")


def query_text(messages, score: str) -> str:
    """The text the router scores: the last user message, or the whole conversation."""
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("'messages' must be a non-empty list of {\"role\": ..., \"content\": ...} objects")
    if score == "conversation":
        text = "\n".join(message_text(m.get("content")) for m in messages)
    else:
        users = [m for m in messages if m["role"] == "user"]
        if not users:
            raise BadRequest("'messages' has no user message to route on; add one with role 'user'")
        text = message_text(users[-1].get("content"))
    if not text.strip():
        raise BadRequest("the message to route on is empty; send some text")
    return text


class Routing:
    """Turns a request's ``model`` into a decision rule over the models that have a backend."""

    def __init__(self, router, backends: Backends, calibration_probs: np.ndarray | None):
        self.router = router
        self.models = router.models
        self.available = np.array([m in backends.models for m in self.models])
        # per-request targets are solved over the served models only
        self.calibration_probs = None if calibration_probs is None else np.where(self.available, calibration_probs, -np.inf)
        self.setting = lru_cache(maxsize=256)(self._setting)

    def usage(self) -> str:
        return (f"use {PREFIX}, {PREFIX}-<cost weight> (e.g. {PREFIX}-0.1), {PREFIX}-mean-cost-<x>, {PREFIX}-max-share-<model>-<share>, "
                f"or a served model: {', '.join(m for m, ok in zip(self.models, self.available) if ok)}")

    def _setting(self, name: str | None):
        """(setting, forced model index or None) for a request's model name."""
        if name is None or name == PREFIX:
            return getattr(self.router.config, "calibration", None), None
        if not isinstance(name, str):
            raise BadRequest(f"'model' must be a string; {self.usage()}")
        if name in self.models:
            if not self.available[self.models.index(name)]:
                raise BadRequest(f"model {name!r} has no backend in this server; {self.usage()}")
            return None, self.models.index(name)
        rest = name[len(PREFIX) + 1:] if name.startswith(PREFIX + "-") else None
        try:
            if rest is not None and rest.startswith(("mean-cost-", "max-share-")):
                return self.target(rest), None
            weight = float(rest) if rest is not None else None
        except ValueError:
            weight = None
        if weight is None or not np.isfinite(weight) or weight < 0:
            raise BadRequest(f"unknown model {name!r}; {self.usage()}")
        if weight > 0 and self.router.costs is None:
            raise BadRequest(f"model {name!r} asks for a cost weight but this router has no model costs; use {PREFIX}")
        return {"cost_weight": weight}, None

    def target(self, rest: str) -> dict:
        if self.calibration_probs is None:
            raise BadRequest("per-request targets need calibration queries: start serve with --calibration-queries FILE, or use router-<cost weight>")
        kind, value = rest[:9], rest[10:]
        members, _, share = value.rpartition("-") if kind == "max-share" else ("", "", value)
        try:
            number = float(share)
        except ValueError:
            raise BadRequest(f"{PREFIX}-{rest}: the target must end in a number, e.g. {PREFIX}-mean-cost-0.3 or {PREFIX}-max-share-MODEL-0.2") from None
        try:
            if kind == "mean-cost":
                return solve_mean_cost(self.calibration_probs, self.models, self.router.costs, number, self.router.train_means)
            return solve_max_share(self.calibration_probs, self.models, [members], number, self.router.costs, self.router.train_means)
        except CalibrationError as err:
            raise BadRequest(str(err)) from None

    def decide(self, probs: np.ndarray, setting: dict | None) -> np.ndarray:
        masked = np.where(self.available, np.asarray(probs, dtype=np.float64), -np.inf)
        try:
            return decisions(masked, self.models, self.router.costs, setting, self.router.train_means)
        except ValueError as err:
            raise BadRequest(str(err)) from None


async def read_json(request: Request, limit: int, schema) -> dict:
    """The request's JSON object, at most ``limit`` bytes, checked against the pydantic ``schema``."""
    too_large = BadRequest(f"the request body is over {limit} bytes; send a smaller request", status=413)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():  # a body without (or lying about) its length is cut at the limit too
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON; send a JSON object with Content-Type: application/json") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        schema.model_validate(body)
    except ValidationError as err:
        raise BadRequest(one_line(err)) from None
    return body


async def probe(client: httpx.AsyncClient, base_url: str, timeout: float) -> bool:
    """Whether a backend answers HTTP at all (any status: reachable) within ``timeout`` seconds."""
    try:
        response = await asyncio.wait_for(client.get(f"{base_url}/models"), timeout)
    except (httpx.HTTPError, asyncio.TimeoutError, OSError):
        return False
    await response.aclose()
    return True


def create_app(router, backends: Backends, options: ServeOptions | None = None, pool=None) -> FastAPI:
    """The FastAPI application for ``router`` in front of ``backends``; ``pool``: the one-thread executor
    that loaded the router (``batching.scoring_thread``), which then scores every batch."""
    options = options or ServeOptions()
    metrics = Metrics()
    routing = Routing(router, backends, options.calibration_probs)

    def on_batch(size: int) -> None:
        metrics.inc("routertrain_batches_total")
        metrics.inc("routertrain_batched_queries_total", size)

    batcher = MicroBatcher(router.predict, options.window_s, options.max_batch, on_batch, options.max_queue, pool)
    state: dict = {"health": (float("-inf"), {})}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        state["client"] = httpx.AsyncClient(
            timeout=httpx.Timeout(backends.timeout_s, connect=min(10.0, backends.timeout_s)),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        )
        yield
        await state["client"].aclose()
        await batcher.close()

    app = FastAPI(title="routertrain router", lifespan=lifespan)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        metrics.inc("routertrain_bad_requests_total", endpoint=request.url.path)
        return error(exc.status, str(exc))

    @app.exception_handler(QueueFull)
    async def overloaded(request: Request, exc: QueueFull):
        metrics.inc("routertrain_overloaded_total")
        return error(503, f"{exc}; retry after a second", kind="overloaded", headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):  # whatever slipped through: still one line of JSON
        return error(500, f"internal error ({type(exc).__name__}); see the server log", kind="server_error")

    async def score(queries: list[str]) -> np.ndarray:
        """The router's probabilities for ``queries`` from the micro-batcher; a failed batch is a one-line 500."""
        try:
            return await batcher.submit(queries)
        except QueueFull:
            raise
        except Exception as err:
            metrics.inc("routertrain_batch_errors_total")
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise BadRequest(f"the router failed on this batch ({type(err).__name__}: {detail}); try again", status=500) from None

    async def route_one(text: str, setting, forced) -> tuple[str, float]:
        """(chosen model, seconds spent routing: micro-batch wait and scoring)."""
        start = time.perf_counter()
        if forced is not None:
            return routing.models[forced], 0.0
        probs = await score([text])
        index = int(routing.decide(probs, setting)[0])
        spent = time.perf_counter() - start
        metrics.observe_routing(spent)
        return routing.models[index], spent

    async def reachable() -> dict[str, bool]:
        """Each backend's reachability, probed at most once per ``health_ttl_s``."""
        checked, known = state["health"]
        if time.monotonic() - checked >= options.health_ttl_s:
            timeout = min(2.0, backends.timeout_s)
            results = await asyncio.gather(*(probe(state["client"], b.base_url, timeout) for b in backends.models.values()))
            known = dict(zip(backends.models, results))
            state["health"] = (time.monotonic(), known)
        return known

    @app.get("/health")
    async def health():
        served = [m for m, ok in zip(routing.models, routing.available) if ok]
        up = await reachable()
        body = {"status": "ok" if any(up.values()) else "unavailable", "router": str(router.folder), "models": served, "reachable": up,
                "fallback": backends.fallback, "calibration": getattr(router.config, "calibration", None) is not None}
        return JSONResponse(body, status_code=200 if any(up.values()) else 503)

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/v1/route")
    async def route(request: Request):
        body = await read_json(request, options.max_body, RouteRequest)
        queries = body.get("queries", [body["query"]] if "query" in body else None)
        if not isinstance(queries, list) or not queries or not all(isinstance(q, str) and q.strip() for q in queries):
            raise BadRequest("'queries' must be a non-empty list of non-empty strings")
        if len(queries) > MAX_QUERIES:
            raise BadRequest(f"{len(queries)} queries in one request; send at most {MAX_QUERIES} per request", status=413)
        setting, forced = routing.setting(body.get("model"))
        start = time.perf_counter()
        probs = await score(queries)
        chosen = np.full(len(queries), forced) if forced is not None else routing.decide(probs, setting)
        metrics.observe_routing(time.perf_counter() - start)
        for index in chosen:
            metrics.inc("routertrain_requests_total", endpoint="route", model=routing.models[index], status=200)
        return {"decisions": [
            {"query": q, "model": routing.models[c], "probabilities": {m: round(float(p), 6) for m, p in zip(routing.models, row)}}
            for q, c, row in zip(queries, chosen, probs)
        ]}

    async def send(model: str, body: dict, stream: bool) -> httpx.Response:
        backend = backends.models[model]
        payload = {**body, "model": backend.model}
        client: httpx.AsyncClient = state["client"]
        request = client.build_request("POST", f"{backend.base_url}/chat/completions", json=payload, headers=backend.headers())
        try:  # the whole call up to the answer's headers (a stream's chunks are bounded by the client's read timeout)
            return await asyncio.wait_for(client.send(request, stream=stream), backends.timeout_s)
        except asyncio.TimeoutError:
            raise httpx.TimeoutException(f"no answer within {backends.timeout_s:g}s") from None

    async def call(model: str, body: dict, stream: bool) -> tuple[str, httpx.Response | JSONResponse, str | None]:
        """(model that answered, its response or our error, the model that failed first if a fallback answered)."""
        failed = None
        for attempt in (model, backends.fallback):
            if attempt is None or attempt == failed:
                break
            try:
                response = await send(attempt, body, stream)
            except httpx.TimeoutException:
                problem, status = f"backend for {attempt} timed out after {backends.timeout_s:g}s", 504
            except httpx.HTTPError as err:
                problem, status = f"backend for {attempt} could not be reached ({type(err).__name__})", 502
            else:
                if response.status_code < 500:
                    return attempt, response, failed
                await response.aclose()
                problem, status = f"backend for {attempt} answered HTTP {response.status_code}", 502
            metrics.inc("routertrain_backend_errors_total", model=attempt)
            if failed is None and backends.fallback and attempt != backends.fallback:
                metrics.inc("routertrain_fallbacks_total", model=attempt)
            failed = failed or attempt
        return model, error(status, f"{problem}; try again later or configure a fallback model", kind="backend_error", headers={HEADER: model}), None

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await read_json(request, options.max_body, ChatRequest)
        text = query_text(body.get("messages"), options.score)
        stream = bool(body.get("stream"))  # the schema allows true, false or null
        setting, forced = routing.setting(body.get("model"))
        chosen, spent = await route_one(text, setting, forced)
        answered, response, failed = await call(chosen, body, stream)
        if isinstance(response, JSONResponse):
            metrics.inc("routertrain_requests_total", endpoint="chat", model=chosen, status=response.status_code)
            return response
        headers = {HEADER: answered, TIMING: f"{spent * 1000:.3f}", **({"x-routertrain-fallback-from": failed} if failed else {})}
        metrics.inc("routertrain_requests_total", endpoint="chat", model=answered, status=response.status_code)
        if response.status_code >= 400:  # the backend refused the request itself: pass its status on
            await response.aread()
            await response.aclose()
            detail = response.text.strip().splitlines()[0][:300] if response.text.strip() else "no message"
            return error(response.status_code, f"backend for {answered} refused the request (HTTP {response.status_code}): {detail}", headers=headers)
        if not stream:
            await response.aread()
            await response.aclose()
            try:
                data = response.json()
            except ValueError:
                metrics.inc("routertrain_backend_errors_total", model=answered)
                return error(502, f"backend for {answered} answered with something other than JSON", kind="backend_error", headers=headers)
            if isinstance(data, dict):
                data["model"] = answered
            return JSONResponse(data, headers=headers)
        return StreamingResponse(relay(response, answered), media_type="text/event-stream", headers=headers)

    async def relay(response: httpx.Response, answered: str):
        """The backend's server-sent events, each chunk's ``model`` renamed to the pool model."""
        try:
            async for line in response.aiter_lines():
                if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                    try:
                        chunk = json.loads(line[5:])
                        if isinstance(chunk, dict):  # every chunk names the pool model, as a non-streamed answer does
                            chunk["model"] = answered
                        line = "data: " + json.dumps(chunk)
                    except ValueError:
                        pass
                yield line + "\n"
        except httpx.HTTPError as err:
            metrics.inc("routertrain_backend_errors_total", model=answered)
            message = {"error": {"message": f"backend for {answered} broke off the stream ({type(err).__name__})", "type": "backend_error", "code": 502}}
            yield f"data: {json.dumps(message)}\n\n"
        finally:
            await response.aclose()

    return app
