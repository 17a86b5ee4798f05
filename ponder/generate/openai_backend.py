"""The ``openai`` backend: any OpenAI-compatible chat endpoint (vLLM, SGLang, Ollama, llama.cpp
server, ponder serve, hosted APIs) through the official ``openai`` client.

    backend = OpenAIBackend("qwen3-0.6b", "http://127.0.0.1:8000/v1", concurrency=8)
    groups = backend.generate(["What is 2+3?"], n=4, sampling=SamplingParams(temperature=0.7))

Requests run on ``AsyncOpenAI`` with at most ``concurrency`` in flight (a semaphore; ``generate``
keeps one client and one event-loop thread per backend, so connections are reused), and each is
retried on connection errors, timeouts, 408/409/429 and 5xx with exponential backoff
(``backoff * 2**attempt`` seconds, capped at ``max_backoff``, with jitter). A server that keeps
failing raises ``GenerationError`` naming the server, the model and the last error; a 4xx that
cannot succeed on retry (bad model name, bad key) raises at once.

Prompts are chat messages: a prompt string is one user message (the server applies the model's
chat template), a list of ``{"role", "content"}`` dicts is sent as is.

Reasoning is read from ``message.reasoning_content`` (vLLM/SGLang/DeepSeek), ``message.reasoning``
(Ollama/OpenRouter/vLLM ≥0.10) or ``<think>…</think>`` in the content, in that order; the
``Completion.text`` is always rebuilt as ``<think>R</think>A`` so it parses like a local one.

What is approximate on a remote server (the server, not ponder, runs the decode loop):

* ``Budget.effort`` is sent as ``reasoning_effort``; how many tokens that means is the server's choice.
* ``Budget.thinking_budget`` is sent as ``thinking: {type: enabled, budget_tokens: N}`` in the
  extra body (Anthropic-style; vLLM/SGLang builds with a thinking-budget processor honour it,
  others ignore unknown fields), and ``max_tokens`` becomes ``N + sampling.max_tokens`` so the
  total is bounded even when the server ignores the budget. There is no exact cut-off.
* ``Budget.min_thinking`` (s1 budget forcing) needs token-level control: rejected with an error,
  except on ``ponder serve`` (detected from ``GET /models``, or ``ponder_server=True``): it runs
  the budgets in its own LocalEngine, exactly, and there ``max_tokens`` is sent as the answer
  bound, as locally.
* ``token_ids`` are empty (servers do not return them). Token counts come from ``usage``
  (``completion_tokens``, ``completion_tokens_details.reasoning_tokens``); with several choices in
  one response the totals are shared out by character length, and with no usage at all they are
  estimated as characters / 4.
* ``logprobs`` are filled when the server returns them (usually for the content tokens only).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import random
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from ponder.format import THINK_CLOSE, THINK_OPEN, parse
from ponder.generate.backends import api_key_from
from ponder.generate.types import (
    DEFAULT_EFFORT_BUDGETS,
    Budget,
    Completion,
    GenerationError,
    SamplingParams,
)

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429})
CHARS_PER_TOKEN = 4  # the estimate when a server reports no usage


def estimate_tokens(text: str) -> int:
    """A rough token count for ``text`` (characters / 4, at least 1 for non-empty text)."""
    return 0 if not text else max(1, round(len(text) / CHARS_PER_TOKEN))


def to_messages(prompt: Any, index: int = 0) -> list[dict]:
    """Chat messages for one prompt: a string is one user message; a message list is checked."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and prompt:
        for m in prompt:
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise GenerationError(
                    f"prompts[{index}] must be a string or a list of {{'role', 'content'}} messages, got {m!r}"
                )
        return [dict(m) for m in prompt]
    raise GenerationError(f"prompts[{index}] must be a string or a non-empty message list, got {prompt!r}")


def _field(obj: Any, name: str) -> Any:
    """An attribute of an openai model object, including server-specific extra fields."""
    v = getattr(obj, name, None)
    if v is None:
        extra = getattr(obj, "model_extra", None) or {}
        v = extra.get(name)
    return v


def split_message(content: str | None, reasoning: str | None) -> tuple[str, str, bool]:
    """(reasoning, answer, think_closed) from a chat message's fields (see module docstring)."""
    content = content or ""
    if reasoning:  # the server separated the reasoning itself
        return reasoning.strip(), parse(content).answer if THINK_CLOSE in content else content.strip(), True
    p = parse(content)
    return p.reasoning, p.answer, p.think_closed


@dataclass
class _Choice:
    """One choice of a response, before token counts are shared out."""

    reasoning: str
    answer: str
    closed: bool
    finish: str
    logprobs: list[float]


class OpenAIBackend:
    """``Backend`` over an OpenAI-compatible ``/chat/completions`` endpoint (see module docstring).

    model, base_url: what to call (``base_url`` usually ends in ``/v1``).
    api_key: else ``OPENAI_API_KEY``, else a placeholder (local servers ignore it).
    concurrency: most requests in flight at once. max_retries: retries after the first attempt.
    backoff, max_backoff: seconds before retry k is ``min(max_backoff, backoff * 2**k)`` (+ jitter).
    timeout: seconds per request. logprobs: ask for token log-probs (dropped, once, if the server
    rejects them). use_n: send ``n`` in one request; when the server returns fewer choices the
    rest are fetched with separate requests and later calls send n requests directly.
    effort_table: effort -> thinking tokens, only for the ``max_tokens`` bound of an effort request.
    extra_body: merged into every request body (server-specific options).
    ponder_server: the server is ``ponder serve``, which runs budgets exactly: ``max_tokens`` is
    sent as the answer bound (not budget + answer) and ``min_thinking`` goes through its
    ``ponder`` extension (with the server's wait token and max_waits). None (default): detected
    once, before the first request, from ``GET /models`` (``owned_by: "ponder"``); a server
    without that route counts as generic.
    """

    def __init__(self, model: str, base_url: str, api_key: str | None = None, *, concurrency: int = 8,
                 max_retries: int = 3, backoff: float = 0.5, max_backoff: float = 8.0, timeout: float = 120.0,
                 logprobs: bool = True, use_n: bool = True, effort_table: Mapping[str, int] | None = None,
                 extra_body: Mapping[str, Any] | None = None, ponder_server: bool | None = None):
        if not isinstance(concurrency, int) or concurrency < 1:
            raise GenerationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise GenerationError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if backoff < 0 or max_backoff < 0 or timeout <= 0:
            raise GenerationError("backoff and max_backoff must be >= 0 and timeout > 0")
        self.model, self.base_url = model, base_url.rstrip("/")
        self.api_key = api_key_from(api_key)
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff, self.max_backoff, self.timeout = backoff, max_backoff, timeout
        self.logprobs, self.use_n = logprobs, use_n
        self.effort_table = dict(effort_table or DEFAULT_EFFORT_BUDGETS)
        self.extra_body = dict(extra_body or {})
        self.ponder_server = ponder_server  # None: asked of the server's /models on first use
        self.requests = 0  # HTTP attempts made (for tests and benchmarks)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # generate()'s loop thread, started on first use
        self._client = None
        self._thread: threading.Thread | None = None
        self._sem: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ request building

    def request_kwargs(self, sampling: SamplingParams, budget: Budget, n: int = 1) -> dict:
        """The ``chat.completions.create`` arguments for these parameters (without messages)."""
        extra = dict(self.extra_body)
        if budget.forcing:
            if not self.ponder_server:  # False, or None before detection (generic until known)
                raise GenerationError(
                    "min_thinking (s1 budget forcing) needs token-level control of the decode loop; "
                    "the openai backend cannot do it on a generic server: use a local model, or "
                    "`ponder serve` with OpenAIBackend(..., ponder_server=True)"
                )
            extra["ponder"] = {"strategy": "single", "n": 1, "min_thinking": budget.min_thinking}
        kw: dict[str, Any] = {"model": self.model, "n": n, "temperature": sampling.temperature,
                              "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}
        # a generic server's max_tokens bounds reasoning + answer; ponder serve's bounds the answer
        # when a budget is given (as the local engine does), so it gets max_tokens unchanged
        tb_extra = 0 if self.ponder_server else None
        if sampling.top_k:
            extra["top_k"] = sampling.top_k  # vLLM/SGLang/llama.cpp extension
        if sampling.stop:
            kw["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            kw["seed"] = sampling.seed
        if sampling.ignore_eos:
            extra["ignore_eos"] = True
        if budget.effort is not None:
            kw["reasoning_effort"] = budget.effort
            kw["max_tokens"] = sampling.max_tokens + (tb_extra if tb_extra is not None
                                                      else budget.resolve(self.effort_table))
        elif budget.thinking_budget is not None:
            extra["thinking"] = {"type": "enabled", "budget_tokens": budget.thinking_budget}
            kw["max_tokens"] = sampling.max_tokens + (tb_extra if tb_extra is not None else budget.thinking_budget)
        if self.logprobs and "ponder" not in extra:  # ponder serve returns none with its strategies
            kw["logprobs"] = True
        if extra:
            kw["extra_body"] = extra
        return kw

    # ------------------------------------------------------------------ generate

    def generate(self, prompts: list, n: int = 1, sampling: SamplingParams | None = None,
                 budget: Budget | None = None) -> list[list[Completion]]:
        """``n`` completions per prompt, grouped by prompt (the ``Backend`` protocol).

        Runs on the backend's own event loop in a daemon thread, with one ``AsyncOpenAI`` client
        kept for the backend's life: connections are reused across calls (building a client
        and its connection pool is not free), and ``concurrency`` bounds the requests in flight over all
        calls, including calls made at once from several threads. Safe to call from any thread,
        also from inside a running event loop (it blocks that caller until done).
        """
        msgs, n, sampling, budget = self._check(prompts, n, sampling, budget)
        if not msgs:
            return []
        loop = self._background_loop()
        return asyncio.run_coroutine_threadsafe(self._on_own_loop(msgs, n, sampling, budget), loop).result()

    async def agenerate(self, prompts: list, n: int = 1, sampling: SamplingParams | None = None,
                        budget: Budget | None = None) -> list[list[Completion]]:
        """The async form of ``generate`` for callers already inside an event loop: runs on the
        caller's loop with a client of its own for the call (clients are bound to one loop)."""
        msgs, n, sampling, budget = self._check(prompts, n, sampling, budget)
        if not msgs:
            return []
        from openai import AsyncOpenAI

        sem = asyncio.Semaphore(self.concurrency)
        async with AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0,
                               timeout=self.timeout) as client:
            await self._detect(client)
            return list(await asyncio.gather(*(self._one_prompt(client, sem, m, n, sampling, budget)
                                               for m in msgs)))

    def _check(self, prompts, n, sampling, budget):
        if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
            raise GenerationError(f"prompts must be a list of strings or message lists, got {type(prompts).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise GenerationError(f"n must be an int >= 1, got {n!r}")
        sampling = sampling if sampling is not None else SamplingParams()
        budget = budget if budget is not None else Budget()
        if not isinstance(sampling, SamplingParams) or not isinstance(budget, Budget):
            raise GenerationError("sampling must be a SamplingParams and budget a Budget")
        msgs = [to_messages(p, i) for i, p in enumerate(prompts)]
        if msgs and not (budget.forcing and self.ponder_server is None):
            self.request_kwargs(sampling, budget)  # validate before any request (forcing: after detection)
        return msgs, n, sampling, budget

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=_run_loop, args=(loop,), name=f"ponder-openai-{self.model}",
                                                daemon=True)
                self._thread.start()
                self._loop = loop
                _LIVE.add(self)  # closed at exit if the caller did not
            return self._loop

    async def _on_own_loop(self, msgs, n, sampling, budget) -> list[list[Completion]]:
        if self._client is None:  # created on the loop it will be used on
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0,
                                       timeout=self.timeout)
            self._sem = asyncio.Semaphore(self.concurrency)
        await self._detect(self._client)
        return list(await asyncio.gather(*(self._one_prompt(self._client, self._sem, m, n, sampling, budget)
                                           for m in msgs)))

    async def _detect(self, client) -> None:
        """Set ``ponder_server`` from ``GET /models`` when it was left to detection (once)."""
        if self.ponder_server is not None:
            return
        try:
            models = await client.models.list()
            self.ponder_server = any(getattr(m, "owned_by", None) == "ponder" for m in models.data)
        except Exception as e:  # noqa: BLE001 - no /models route: generic; unreachable: ask again next call
            log.info("could not list models at %s (%s); treating it as a generic server", self.base_url, _describe(e))
            if not _retryable(e):
                self.ponder_server = False

    def close(self) -> None:
        """Close the kept client and stop the backend's loop thread (a later call starts anew)."""
        with self._lock:
            loop, client, self._loop, self._client = self._loop, self._client, None, None
            thread, self._thread = self._thread, None
        if loop is None:
            return
        if client is not None:
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)  # the thread closes the loop once it has stopped

    def __enter__(self) -> "OpenAIBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def _one_prompt(self, client, sem, messages, n, sampling, budget) -> list[Completion]:
        choices: list[Completion] = []
        # ponder serve's extension (forcing) returns one choice per request: ask n times
        one_each = budget.forcing and self.ponder_server
        if (self.use_n and not one_each) or n == 1:
            choices = await self._request(client, sem, messages, n, sampling, budget)
            if len(choices) < n and n > 1 and not one_each:
                log.info("server %s returned %d of n=%d choices; sending one request per sample",
                         self.base_url, len(choices), n)
                self.use_n = False
        missing = n - len(choices)
        if missing > 0:
            # one request per sample; distinct seeds keep seeded samples from being identical
            seeds = [None if sampling.seed is None else sampling.seed + len(choices) + i for i in range(missing)]
            extra = await asyncio.gather(*(
                self._request(client, sem, messages, 1, _reseed(sampling, s), budget) for s in seeds))
            choices += [c for group in extra for c in group[:1]]
        return choices[:n]

    async def _request(self, client, sem, messages, n, sampling, budget) -> list[Completion]:
        kw = self.request_kwargs(sampling, budget, n)
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            async with sem:
                with self._lock:
                    self.requests += 1
                try:
                    resp = await client.chat.completions.create(messages=messages, **kw)
                except Exception as e:  # noqa: BLE001 - classified below
                    if _logprobs_rejected(e) and kw.get("logprobs"):
                        log.info("server %s rejects logprobs; asking without them", self.base_url)
                        self.logprobs = False
                        kw.pop("logprobs")
                        last = e
                        continue
                    if not _retryable(e):
                        raise GenerationError(
                            f"server {self.base_url} refused the request for model {self.model!r}: {_describe(e)}"
                        ) from e
                    last = e
                    log.info("request to %s failed (attempt %d): %s", self.base_url, attempt + 1, _describe(e))
                    continue
            return self._completions(resp, sampling)
        raise GenerationError(
            f"server {self.base_url} kept failing for model {self.model!r}: "
            f"{self.max_retries + 1} attempts, last error: {_describe(last)}"
        )

    def _completions(self, resp, sampling: SamplingParams) -> list[Completion]:
        raw: list[_Choice] = []
        for ch in sorted(resp.choices or [], key=lambda c: c.index or 0):
            msg = ch.message
            reasoning = _field(msg, "reasoning_content") or _field(msg, "reasoning")
            r, a, closed = split_message(msg.content, reasoning)
            lps = []
            if ch.logprobs is not None and getattr(ch.logprobs, "content", None):
                lps = [float(t.logprob) for t in ch.logprobs.content]
            stop_reason = _field(ch, "stop_reason")
            if ch.finish_reason == "length":
                finish = "length"
            elif isinstance(stop_reason, str) or (ch.finish_reason == "stop" and sampling.stop
                                                  and stop_reason is None):
                finish = "stop"  # vLLM names the matched stop string; else assume stop strings fired
            else:
                finish = "eos"
            raw.append(_Choice(r, a, closed, finish, lps))
        usage = getattr(resp, "usage", None)
        total = getattr(usage, "completion_tokens", None) if usage else None
        details = getattr(usage, "completion_tokens_details", None) if usage else None
        r_total = getattr(details, "reasoning_tokens", None) if details else None
        r_chars = [len(c.reasoning) for c in raw]
        a_chars = [len(c.answer) for c in raw]
        out = []
        for i, c in enumerate(raw):
            if total is not None and total > 0:
                share = (r_chars[i] + a_chars[i]) / max(1, sum(r_chars) + sum(a_chars))
                tokens = round(total * share) if len(raw) > 1 else total
                if r_total is not None:
                    rt = round(r_total * r_chars[i] / max(1, sum(r_chars))) if len(raw) > 1 else r_total
                else:  # split this choice's tokens by characters
                    rt = round(tokens * r_chars[i] / max(1, r_chars[i] + a_chars[i]))
                rt = min(rt, tokens)
                at = tokens - rt
            else:
                rt, at = estimate_tokens(c.reasoning), estimate_tokens(c.answer)
            text = (f"{THINK_OPEN}{c.reasoning}{THINK_CLOSE}{c.answer}" if c.closed
                    else (f"{THINK_OPEN}{c.reasoning}" if c.reasoning else c.answer))
            out.append(Completion(text=text, token_ids=[], reasoning=c.reasoning, answer=c.answer,
                                  reasoning_tokens=rt, answer_tokens=at, finish_reason=c.finish,
                                  logprobs=c.logprobs, think_closed=c.closed))
        return out

    # ------------------------------------------------------------------ streaming

    def stream(self, prompt: Any, sampling: SamplingParams | None = None,
               budget: Budget | None = None) -> Iterator[tuple[str, Any]]:
        """Stream one completion: yields ``("reasoning", delta)`` and ``("answer", delta)`` as
        they arrive, then ``("done", Completion)``. Connection failures before the first chunk
        are retried like ``generate``; a failure mid-stream raises ``GenerationError``."""
        import time

        from openai import OpenAI

        from ponder.generate.backends import ThinkSplitter

        sampling = sampling if sampling is not None else SamplingParams()
        budget = budget if budget is not None else Budget()
        messages = to_messages(prompt)
        client = OpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout)
        if self.ponder_server is None:
            try:
                self.ponder_server = any(getattr(m, "owned_by", None) == "ponder" for m in client.models.list().data)
            except Exception as e:  # noqa: BLE001 - see _detect
                if not _retryable(e):
                    self.ponder_server = False
        kw = self.request_kwargs(sampling, budget, 1)
        kw.pop("logprobs", None)
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True}
        stream, last = None, None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
            with self._lock:
                self.requests += 1
            try:
                stream = client.chat.completions.create(messages=messages, **kw)
                break
            except Exception as e:  # noqa: BLE001
                if not _retryable(e):
                    raise GenerationError(f"server {self.base_url} refused the request for model "
                                          f"{self.model!r}: {_describe(e)}") from e
                last = e
        if stream is None:
            raise GenerationError(f"server {self.base_url} kept failing for model {self.model!r}: "
                                  f"{self.max_retries + 1} attempts, last error: {_describe(last)}")
        split = ThinkSplitter(prefilled=False)
        reasoning, answer, finish, usage = [], [], "eos", None
        separated = False  # the server sends reasoning in its own field, content is the answer
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for ch in chunk.choices or []:
                    d = ch.delta
                    r = _field(d, "reasoning_content") or _field(d, "reasoning")
                    events = [("reasoning", r)] if r else []
                    separated = separated or bool(r)
                    if d.content:
                        events += [("answer", d.content)] if separated else split.feed(d.content)
                    for kind, text in events:
                        (reasoning if kind == "reasoning" else answer).append(text)
                        yield kind, text
                    if ch.finish_reason:
                        finish = "length" if ch.finish_reason == "length" else (
                            "stop" if isinstance(_field(ch, "stop_reason"), str) else "eos")
            for kind, text in split.flush():
                (reasoning if kind == "reasoning" else answer).append(text)
                yield kind, text
        except Exception as e:  # noqa: BLE001
            raise GenerationError(f"stream from {self.base_url} broke off: {_describe(e)}") from e
        finally:
            client.close()
        closed = split.closed or (separated and bool(answer))
        r_text, a_text = "".join(reasoning).strip(), "".join(answer).strip()
        total = getattr(usage, "completion_tokens", None) if usage else None
        details = getattr(usage, "completion_tokens_details", None) if usage else None
        rt = getattr(details, "reasoning_tokens", None) if details else None
        if total:
            if rt is None:
                rt = round(total * len(r_text) / max(1, len(r_text) + len(a_text)))
            rt = min(rt, total)
            at = total - rt
        else:
            rt, at = estimate_tokens(r_text), estimate_tokens(a_text)
        text = f"{THINK_OPEN}{r_text}{THINK_CLOSE}{a_text}" if closed else (
            f"{THINK_OPEN}{r_text}" if r_text else a_text)
        yield "done", Completion(text=text, token_ids=[], reasoning=r_text, answer=a_text,
                                 reasoning_tokens=rt, answer_tokens=at, finish_reason=finish,
                                 think_closed=closed)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()


_LIVE: "weakref.WeakSet[OpenAIBackend]" = weakref.WeakSet()


@atexit.register
def _close_live() -> None:
    """Close kept clients at interpreter exit (no unclosed-connection warnings, clean sockets)."""
    for b in list(_LIVE):
        try:
            b.close()
        except Exception:  # noqa: BLE001 - best effort while the interpreter shuts down
            pass


def _reseed(sp: SamplingParams, seed: int | None) -> SamplingParams:
    from dataclasses import replace

    return replace(sp, seed=seed)


def _status(e: Exception) -> int | None:
    return getattr(e, "status_code", None)


def _retryable(e: Exception) -> bool:
    import openai

    if isinstance(e, (openai.APIConnectionError, openai.APITimeoutError)):
        return True
    s = _status(e)
    return s is not None and (s in RETRY_STATUS or s >= 500)


def _logprobs_rejected(e: Exception) -> bool:
    return _status(e) in (400, 422) and "logprob" in str(e).lower()


def _describe(e: Exception | None) -> str:
    if e is None:
        return "no error recorded"
    s = _status(e)
    msg = str(e).strip() or type(e).__name__
    return f"HTTP {s}: {msg}" if s is not None else f"{type(e).__name__}: {msg}"


__all__: Sequence[str] = ("OpenAIBackend", "estimate_tokens", "split_message", "to_messages")
