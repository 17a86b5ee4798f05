"""The server's options: one typed dataclass, the CLI flags and the YAML recipe of ``ponder serve``."""

from __future__ import annotations

from dataclasses import dataclass

from ponder.config import ConfigError, check_range, option

REASONING_MODES = ("full", "summary", "hidden")


@dataclass(frozen=True)
class ServeConfig:
    """How ``ponder serve`` runs (limits apply per request unless said otherwise)."""

    host: str = option("127.0.0.1", "address to listen on (127.0.0.1: this machine only)")
    port: int = option(8000, "TCP port to listen on (0: any free port)")
    api_key: str | None = option(None, "when set, every /v1 and /metrics request needs 'Authorization: Bearer KEY'")
    reasoning: str = option(
        "full", "what the response shows of the reasoning: full (the text), summary (a short extract), "
        "hidden (nothing, only the reasoning token count, like o1)"
    )
    model_name: str | None = option(None, "the model id reported by /v1/models (default: the model path's name)")
    default_effort: str | None = option(
        None, "thinking effort when a request gives neither reasoning_effort nor thinking (low|medium|high; None: no budget)"
    )
    default_max_tokens: int = option(256, "max_tokens when a request gives none (capped by the context left)")
    max_tokens_limit: int = option(4096, "largest max_tokens / budget_tokens a request may ask for")
    max_n: int = option(16, "largest n (choices per request) and largest ponder.n (strategy samples)")
    max_body_bytes: int = option(1_000_000, "largest request body in bytes (413 above it)")
    max_messages: int = option(256, "most messages in one request")
    max_concurrent: int = option(256, "requests admitted at once (queued or running); more get 429")
    batch_window_ms: float = option(5.0, "how long the batcher waits for more requests before it starts a batch")
    max_batch_rows: int = option(64, "most completion rows (requests x n) generated in one batch")
    continuous_batching: bool = option(
        True, "local models: requests join the running decode batch at the next token and leave when done "
        "(false: dynamic batching, a batch runs to its end)"
    )
    log_requests: bool = option(True, "write one JSON line per request (id, status, token counts, latency) to stderr")
    efforts: dict = option(
        {}, "what each effort level runs, e.g. {medium: {strategy: majority, n: 4, thinking_budget: 64}} "
        "(strategy: a ponder.strategies name or single; n: its samples; thinking_budget: tokens or null for none); "
        "a level not listed uses the model's effort table. `ponder tune` writes this mapping"
    )

    def __post_init__(self) -> None:
        if self.reasoning not in REASONING_MODES:
            raise ConfigError(f"reasoning must be one of {', '.join(REASONING_MODES)}, got {self.reasoning!r}")
        if self.default_effort is not None and self.default_effort not in ("low", "medium", "high"):
            raise ConfigError(f"default_effort must be low, medium, high or None, got {self.default_effort!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        check_range(self, ("default_max_tokens", "max_tokens_limit", "max_n", "max_body_bytes", "max_messages",
                           "max_concurrent", "max_batch_rows"), 1)
        check_range(self, ("batch_window_ms",), 0)
        for level, entry in self.efforts.items():
            check_effort(level, entry, self.max_n)
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key must not be blank (omit it to serve without a key)")


EFFORT_KEYS = ("strategy", "n", "thinking_budget")


def check_effort(level, entry, max_n: int = 16) -> None:
    """One ``efforts`` entry: a known level mapped to {strategy, n, thinking_budget}."""
    where = f"efforts.{level}"
    if level not in ("low", "medium", "high"):
        raise ConfigError(f"efforts: levels are low, medium and high, got {level!r}")
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(EFFORT_KEYS)}, got {entry!r}")
    bad = sorted(set(entry) - set(EFFORT_KEYS))
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(bad)}; valid: {', '.join(EFFORT_KEYS)}")
    strategy, n, tb = entry.get("strategy", "single"), entry.get("n", 1), entry.get("thinking_budget")
    if not isinstance(strategy, str) or not strategy:
        raise ConfigError(f"{where}.strategy must be a strategy name, got {strategy!r}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_n:
        raise ConfigError(f"{where}.n must be an int in 1..{max_n} (max_n), got {n!r}")
    if strategy == "single" and n != 1:
        raise ConfigError(f"{where}: strategy single draws one sample, got n={n}")
    if tb is not None and (isinstance(tb, bool) or not isinstance(tb, int) or tb < 0):
        raise ConfigError(f"{where}.thinking_budget must be null or an int >= 0, got {tb!r}")
