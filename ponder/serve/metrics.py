"""Server counters in the Prometheus text exposition format (version 0.0.4), and JSON-lines logs.

No client library: a handful of counters and gauges behind one lock, rendered by ``render``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

#: (metric name after ponder_prefix_cache_, type, help, key of LocalEngine.prefix_cache_stats());
#: hit rate = hits_total / lookups_total, token reuse = reused / (reused + prefilled)
PREFIX_METRICS = (
    ("lookups_total", "counter", "Prompts looked up in the prefix cache.", "lookups"),
    ("hits_total", "counter", "Prompts that reused at least one cached token.", "hits"),
    ("tokens_reused_total", "counter", "Prompt tokens whose KV came from the cache (not prefilled).",
     "tokens_reused"),
    ("tokens_prefilled_total", "counter", "Prompt tokens prefilled by the model.", "tokens_prefilled"),
    ("bytes", "gauge", "Bytes of cached KV held now.", "bytes"),
    ("budget_bytes", "gauge", "The cache's byte budget (LRU eviction above it).", "budget_bytes"),
    ("blocks", "gauge", "Cached KV blocks held now.", "blocks"),
    ("evictions_total", "counter", "Blocks evicted to stay within the budget.", "evictions"),
    ("invalidations_total", "counter", "Times the cache was emptied because the weights changed.",
     "invalidations"),
)


class Stats:
    """Counters shared by the request handlers and the batcher thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}  # (endpoint, status) -> count
        self.prompt_tokens = self.completion_tokens = self.reasoning_tokens = 0
        self.latency_sum, self.latency_count = 0.0, 0
        self.batches = self.batch_requests = self.batch_rows = 0
        self.batch_seconds = 0.0
        self.decode_steps = self.decode_rows = 0
        self.in_flight = 0
        self.disconnects = 0
        self.started = time.time()

    def request(self, endpoint: str, status: int, seconds: float, prompt: int = 0, completion: int = 0,
                reasoning: int = 0) -> None:
        with self._lock:
            key = (endpoint, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.reasoning_tokens += reasoning
            self.latency_sum += seconds
            self.latency_count += 1

    def batch(self, requests: int, rows: int, seconds: float) -> None:
        with self._lock:
            self.batches += 1
            self.batch_requests += requests
            self.batch_rows += rows
            self.batch_seconds += seconds

    def joined(self, requests: int, rows: int, fresh: bool) -> None:
        """Continuous batching: requests joined a decode batch (``fresh``: one that was empty)."""
        with self._lock:
            self.batches += fresh
            self.batch_requests += requests
            self.batch_rows += rows

    def decode_step(self, rows: int, seconds: float) -> None:
        """One decode step of ``rows`` rows (continuous batching)."""
        with self._lock:
            self.decode_steps += 1
            self.decode_rows += rows

    def busy(self, seconds: float) -> None:
        """Time the continuous batcher spent admitting and stepping."""
        with self._lock:
            self.batch_seconds += seconds

    def admit(self, limit: int) -> bool:
        """Take a request slot; False when ``limit`` requests are already in flight."""
        with self._lock:
            if self.in_flight >= limit:
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def disconnected(self) -> None:
        with self._lock:
            self.disconnects += 1

    def render(self, queued: int, prefix_cache: dict[str, int] | None = None) -> str:
        """The metrics page (``text/plain; version=0.0.4``). ``prefix_cache``: the engine's prefix
        cache counters (``LocalEngine.prefix_cache_stats``; None: no such cache, no lines)."""
        with self._lock:
            lines = []

            def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
                lines.append(f"# HELP {name} {help_}")
                lines.append(f"# TYPE {name} {kind}")
                lines.extend(f"{name}{labels} {value}" for labels, value in samples)

            metric("ponder_requests_total", "counter", "HTTP requests by endpoint and status code.",
                   [(f'{{endpoint="{e}",code="{s}"}}', v) for (e, s), v in sorted(self.requests.items())]
                   or [('{endpoint="/v1/chat/completions",code="200"}', 0)])
            metric("ponder_prompt_tokens_total", "counter", "Prompt tokens of completed requests.",
                   [("", self.prompt_tokens)])
            metric("ponder_completion_tokens_total", "counter",
                   "Generated tokens (reasoning + answer, every sample of a strategy).", [("", self.completion_tokens)])
            metric("ponder_reasoning_tokens_total", "counter", "Generated reasoning tokens.",
                   [("", self.reasoning_tokens)])
            metric("ponder_request_seconds", "summary", "Request latency (to the last byte).",
                   [("_sum", round(self.latency_sum, 6)), ("_count", self.latency_count)])
            metric("ponder_batches_total", "counter", "Batches: generate calls (dynamic batching), or decode batches started empty "
                   "(continuous batching: requests join them until the last row leaves).", [("", self.batches)])
            metric("ponder_batch_requests_total", "counter", "Requests served by those calls (requests per batch = "
                   "this / ponder_batches_total).", [("", self.batch_requests)])
            metric("ponder_batch_rows_total", "counter", "Completion rows generated in batches.",
                   [("", self.batch_rows)])
            metric("ponder_batch_seconds_total", "counter", "Time spent generating (inside generate, or prefilling and stepping).",
                   [("", round(self.batch_seconds, 6))])
            metric("ponder_decode_steps_total", "counter", "Decode steps of the continuous batcher.",
                   [("", self.decode_steps)])
            metric("ponder_decode_rows_total", "counter", "Rows decoded over those steps (mean rows per step = "
                   "this / ponder_decode_steps_total).", [("", self.decode_rows)])
            metric("ponder_requests_in_flight", "gauge", "Requests admitted and not yet finished.",
                   [("", self.in_flight)])
            metric("ponder_requests_queued", "gauge", "Generation jobs waiting for the batcher.", [("", queued)])
            metric("ponder_stream_disconnects_total", "counter", "Streams whose client went away before the end.",
                   [("", self.disconnects)])
            if prefix_cache is not None:
                pc = prefix_cache
                for name, kind, help_, key in PREFIX_METRICS:
                    metric(f"ponder_prefix_cache_{name}", kind, help_, [("", pc[key])])
            metric("ponder_uptime_seconds", "gauge", "Seconds since the server started.",
                   [("", round(time.time() - self.started, 3))])
        return "\n".join(lines) + "\n"


class JsonLines(logging.Formatter):
    """One JSON object per log record: time, level, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "msg": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        return json.dumps(out, ensure_ascii=False, default=str)


def request_logger(stream=None) -> logging.Logger:
    """The ``ponder.serve.requests`` logger writing JSON lines to ``stream`` (stderr). It is shared
    by every app in the process; ``ServeConfig.log_requests`` decides per app whether to log."""
    logger = logging.getLogger("ponder.serve.requests")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)
    return logger
