"""The server's counters and routing-latency histogram, kept and rendered by ``prometheus_client``
(one registry per application, so several servers in one process do not share counts)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# name (without _total) -> (help, label names; sorted, as the exposition lists them)
COUNTERS = {
    "routertrain_requests": ("Requests answered, by endpoint, chosen model and HTTP status.", ("endpoint", "model", "status")),
    "routertrain_backend_errors": ("Failed backend calls, by model.", ("model",)),
    "routertrain_fallbacks": ("Requests sent to the fallback model after their backend failed, by failed model.", ("model",)),
    "routertrain_bad_requests": ("Requests refused with a 4xx before routing, by endpoint.", ("endpoint",)),
    "routertrain_overloaded": ("Requests refused with 503 because the routing queue was full.", ()),
    "routertrain_batch_errors": ("Micro-batches whose scoring failed (their requests got a 500).", ()),
    "routertrain_batches": ("Micro-batches scored by the router.", ()),
    "routertrain_batched_queries": ("Queries scored in micro-batches.", ()),
}


class Metrics:
    """Thread-safe counters and the routing-time histogram of one server."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.counters = {name: Counter(name, text, labels, registry=self.registry) for name, (text, labels) in COUNTERS.items()}
        self.routing = Histogram("routertrain_routing_seconds", "Time from a request's arrival to its routing decision (micro-batch wait included).",
                                 buckets=BUCKETS, registry=self.registry)

    def inc(self, name: str, amount: float = 1, **labels) -> None:
        """Add ``amount`` to counter ``name`` (with or without its ``_total`` suffix)."""
        counter = self.counters[name.removesuffix("_total")]
        (counter.labels(**{k: str(v) for k, v in labels.items()}) if labels else counter).inc(amount)

    def observe_routing(self, seconds: float) -> None:
        self.routing.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
