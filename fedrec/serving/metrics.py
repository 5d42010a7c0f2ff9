"""Prometheus text exposition of request counts and latencies per endpoint, without a
client library: a counter and a fixed-bucket histogram per (method, route template).
Labels use the route template (``/items/{item_id}/similar``), never the requested path,
so item ids never become label values; unmatched paths count under "unmatched"."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**values: str) -> str:
    escaped = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'
               for k, v in values.items())
    return "{" + ",".join(escaped) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.events: dict[tuple[str, str], int] = defaultdict(int)  # (name, label value): fallbacks, reloads
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            key = (method, route)
            self.sums[key] += seconds
            self.counts[key] += 1
            counts = self.buckets[key]
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1

    def count(self, name: str, label: str) -> None:
        with self._lock:
            self.events[(name, label)] += 1

    def render(self, info: dict[str, str]) -> str:
        """The exposition text; ``info``: labels of the release being served."""
        with self._lock:
            lines = ["# HELP fedrec_serving_requests_total HTTP requests answered, by endpoint and status.",
                     "# TYPE fedrec_serving_requests_total counter"]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f"fedrec_serving_requests_total{_labels(method=method, endpoint=route, status=str(status))} {n}")
            lines += ["# HELP fedrec_serving_request_duration_seconds Time to answer a request, by endpoint.",
                      "# TYPE fedrec_serving_request_duration_seconds histogram"]
            for (method, route), counts in sorted(self.buckets.items()):
                for bound, n in zip(BUCKETS, counts):
                    labels = _labels(method=method, endpoint=route, le=repr(bound))
                    lines.append(f"fedrec_serving_request_duration_seconds_bucket{labels} {n}")
                total = self.counts[(method, route)]
                lines.append(f"fedrec_serving_request_duration_seconds_bucket{_labels(method=method, endpoint=route, le='+Inf')} {total}")
                lines.append(f"fedrec_serving_request_duration_seconds_sum{_labels(method=method, endpoint=route)} {self.sums[(method, route)]!r}")
                lines.append(f"fedrec_serving_request_duration_seconds_count{_labels(method=method, endpoint=route)} {total}")
            names = {
                "fallbacks": ("fedrec_serving_fallbacks_total", "Answers from the popularity or attribute fallback, by endpoint.", "endpoint"),
                "reloads": ("fedrec_serving_reloads_total", "Release reloads, by outcome.", "outcome"),
            }
            for key, (metric, text, label) in names.items():
                lines += [f"# HELP {metric} {text}", f"# TYPE {metric} counter"]
                for (name, value), n in sorted(self.events.items()):
                    if name == key:
                        lines.append(f"{metric}{_labels(**{label: value})} {n}")
            lines += ["# HELP fedrec_serving_release_info The release being served.", "# TYPE fedrec_serving_release_info gauge",
                      f"fedrec_serving_release_info{_labels(**info)} 1",
                      "# HELP fedrec_serving_start_time_seconds When the server started (Unix time).",
                      "# TYPE fedrec_serving_start_time_seconds gauge", f"fedrec_serving_start_time_seconds {self.started!r}"]
        return "\n".join(lines) + "\n"
