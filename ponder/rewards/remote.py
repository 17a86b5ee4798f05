"""A reward served over HTTP: name a URL in the rewards spec and the batch goes there.

    parse_reward_spec("accuracy=1, http://127.0.0.1:8100/score(timeout=30, name=judge)=0.5")

``RemoteReward(url)`` is called like every reward, ``(completions, **columns)``; it POSTs one JSON
body per batch::

    {"completions": [str, ...], "prompts": [...], <every JSON-able column as a list>}

and expects ``{"rewards": [float | null, ...]}`` (or the bare list) back, one value per completion.
Completions given as chat messages are sent as their text. A timeout or a 5xx is retried
``retries`` times with exponential backoff; an answer of the wrong length or type, a 4xx, or a
server that keeps failing raises ``RemoteRewardError`` naming the URL -- a training step must not
go on with rewards that silently went missing. The reward pickles (the URL and settings only),
so TRL's rollout worker can ship it.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ponder.rewards import _inputs as inp

#: keys TRL passes that are not data: never sent
_NOT_DATA = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})


class RemoteRewardError(ValueError):
    """The reward server failed or answered something that is not one reward per completion."""


class RemoteReward:
    """A reward function backed by an HTTP endpoint (see the module docstring)."""

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 2, backoff: float = 0.5,
                 name: str | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a remote reward needs an http(s) URL, got {url!r}")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("remote reward: timeout must be > 0, retries and backoff >= 0")
        self.url, self.timeout, self.retries, self.backoff = url, float(timeout), int(retries), float(backoff)
        self.__name__ = name or "remote"

    def __repr__(self) -> str:
        return f"RemoteReward({self.url!r}, name={self.__name__!r})"

    def _body(self, completions: list, kwargs: dict) -> dict:
        texts, _ = inp.read(completions, kwargs)
        body: dict[str, Any] = {"completions": texts}
        for k, v in kwargs.items():
            if k in _NOT_DATA or k == "completion_ids":
                continue
            try:
                json.dumps(v)
            except (TypeError, ValueError):
                continue  # not JSON-able: not something a remote scorer could read
            body[k] = v
        return body

    def __call__(self, completions: list, **kwargs: Any) -> list[float | None]:
        import httpx

        body = self._body(completions, kwargs)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                r = httpx.post(self.url, json=body, timeout=self.timeout)
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if r.status_code >= 500:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            if r.status_code >= 400:
                raise RemoteRewardError(f"reward server {self.url} refused the batch: HTTP {r.status_code}: "
                                        f"{r.text[:200]}")
            return self._values(r, len(completions))
        raise RemoteRewardError(f"reward server {self.url} kept failing ({self.retries + 1} attempts); last: {last}")

    def _values(self, r, n: int) -> list[float | None]:
        try:
            data = r.json()
        except ValueError:
            raise RemoteRewardError(f"reward server {self.url} answered non-JSON: {r.text[:100]!r}") from None
        values = data.get("rewards") if isinstance(data, dict) else data
        if not isinstance(values, list) or len(values) != n:
            raise RemoteRewardError(f"reward server {self.url} must answer {n} rewards (a list, or "
                                    f"{{\"rewards\": [...]}}), got {str(data)[:100]}")
        out: list[float | None] = []
        for v in values:
            if v is None:
                out.append(None)
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out.append(float(v))
            else:
                raise RemoteRewardError(f"reward server {self.url} answered {v!r}: rewards are numbers or null")
        return out
