"""The server's counters and routing-latency histogram, rendered in the Prometheus text format (0.0.4)."""

from __future__ import annotations

import bisect
import threading
from collections import Counter

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def labels_text(labels: tuple) -> str:
    escaped = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"' for k, v in labels)
    return "{" + ",".join(escaped) + "}" if labels else ""


class Metrics:
    """Thread-safe counters keyed by (name, labels) and one latency histogram."""

    HELP = {
        "routertrain_requests_total": ("counter", "Requests answered, by endpoint, chosen model and HTTP status."),
        "routertrain_backend_errors_total": ("counter", "Failed backend calls, by model."),
        "routertrain_fallbacks_total": ("counter", "Requests sent to the fallback model after their backend failed, by failed model."),
        "routertrain_bad_requests_total": ("counter", "Requests refused with a 4xx before routing, by endpoint."),
        "routertrain_batches_total": ("counter", "Micro-batches scored by the router."),
        "routertrain_batched_queries_total": ("counter", "Queries scored in micro-batches."),
    }

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0

    def inc(self, name: str, amount: float = 1, **labels) -> None:
        with self.lock:
            self.counts[(name, tuple(sorted(labels.items())))] += amount

    def observe_routing(self, seconds: float) -> None:
        with self.lock:
            self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum += seconds

    def render(self) -> str:
        with self.lock:
            counts, buckets, total = dict(self.counts), list(self.buckets), self.latency_sum
        lines = []
        for name, (kind, text) in self.HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            rows = sorted((labels, value) for (n, labels), value in counts.items() if n == name)
            lines += [f"{name}{labels_text(labels)} {value:g}" for labels, value in rows] or ([f"{name} 0"] if name.startswith("routertrain_batch") else [])
        name = "routertrain_routing_seconds"
        lines += [f"# HELP {name} Time from a request's arrival to its routing decision (micro-batch wait included).", f"# TYPE {name} histogram"]
        running = 0
        for bound, count in zip((*BUCKETS, "+Inf"), buckets):
            running += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {running}')
        lines += [f"{name}_sum {total:.6f}", f"{name}_count {running}"]
        return "\n".join(lines) + "\n"
