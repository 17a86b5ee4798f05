"""The ``openai`` backend: any OpenAI-compatible chat endpoint (vLLM, SGLang, Ollama, llama.cpp
server, ponder serve, hosted APIs) through the official ``openai`` client.

    backend = OpenAIBackend("qwen3-0.6b", "http://127.0.0.1:8000/v1", concurrency=8)
    groups = backend.generate(["What is 2+3?"], n=4, sampling=SamplingParams(temperature=0.7))

Requests run on ``AsyncOpenAI`` with at most ``concurrency`` in flight (a semaphore; ``generate``
keeps one client and one event-loop thread per backend, so connections are reused), and each is
retried on connection errors, timeouts, 408/409/429 and 5xx with exponential backoff
(``backoff * 2**attempt`` seconds, capped at ``max_backoff``, with jitter). A server that keeps
failing raises ``GenerationError`` naming the server, the model and the last error; a 4xx that
cannot succeed on retry (bad model name, bad key) raises at once -- a 404 says whether the base
URL lacks ``/v1``, and a model id the server does not list is warned about once.

Prompts are chat messages (``ponder.format.render`` gives them for an endpoint: ``Prompt.payload``);
a bare string is one user message.

**Reasoning.** Read from ``message.reasoning_content`` (vLLM/SGLang/DeepSeek, llama.cpp with
``--reasoning-format``) or ``message.reasoning`` (Ollama/OpenRouter/vLLM >= 0.10) when the server
separates it; otherwise the content is split by ``ponder.format.parse`` from the start the
thinking mode gives (``auto``: the server's template is unknown, a ``</think>`` decides; ``on``:
the template opened the think block; ``off``: plain). Streaming uses the same splitter, so a
streamed completion splits exactly as the non-streamed one. A completion whose reasoning came
separated is stored in the normal form ``R</think>A`` with ``prefilled=True``.

**What a remote server decides** (the server, not ponder, runs the decode loop):

* ``Budget.thinking_budget`` is sent in every field the known servers read --
  ``thinking_token_budget`` (vLLM), ``thinking_budget_tokens`` (llama.cpp's server) and
  Anthropic-style ``thinking: {type: enabled, budget_tokens}`` -- and ``max_tokens`` becomes
  ``budget + sampling.max_tokens`` so the total is bounded even when the server ignores it. A
  field the server rejects is dropped (once, with a warning); a completion whose reasoning runs
  past the budget shows the server ignored it, and ``budget_honoured`` turns False (warned once).
* ``Budget.effort`` is sent as ``reasoning_effort``; how many tokens that means is the server's.
* ``Budget.min_thinking`` (s1 budget forcing) runs on ``ponder serve`` (detected from
  ``GET /models``, or ``ponder_server=True``), which runs budgets exactly in its own engine, and
  in raw-completions mode (below); a generic chat endpoint refuses it.
* Thinking ``off`` also sends ``chat_template_kwargs: {enable_thinking: false}`` (Qwen3-style
  templates on vLLM/SGLang/llama.cpp) and ``reasoning_effort: "none"`` where nothing else is asked.
* Seeds: with a seed and ``n > 1``, every sample is its own request with its own derived seed
  (``seed + sample index``), because servers give the choices of one request one seed.
* ``token_ids`` are empty. Token counts come from ``usage``; with several choices the totals are
  shared out by text length. Usage that cannot be right (a total below what the choices' texts
  need: llama.cpp reports one choice for ``n=2``) or no usage at all is replaced by
  ``estimate_tokens`` and the completion is marked ``estimated``.
* ``logprobs`` are filled when the server returns them (usually for the content tokens only).
* **Raw-completions mode** (``tokenizer=``, ``--tokenizer``: the served model's tokenizer
  directory or GGUF file): ponder renders the prompt and generates through ``/v1/completions`` in
  segments, so budgets are exact and budget forcing works (``ponder.generate.openai_raw``).
* ``extra_body`` is merged into every request (``--extra-body``): server-specific sampling such
  as llama.cpp's ``repeat_penalty``/``min_p``/``top_k`` (its server defaults differ from greedy
  decoding elsewhere: ``{"repeat_penalty": 1, "top_k": 0, "min_p": 0}`` neutralises them).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import random
import threading
import weakref
from dataclasses import replace
from typing import Any, Awaitable, Callable, Iterator, Mapping, Sequence

from ponder.format import THINK_CLOSE, ReasoningSplitter, decide_thinking, ends_in_think
from ponder.generate.openai_raw import raw_run
from ponder.generate.openai_wire import (
    Choice,
    adapted,
    api_key_from,
    counted,
    finish_of,
    load_tokenizer,
    reasoning_field,
    retryable,
    status_of,
    to_messages,
)
from ponder.generate.types import (
    DEFAULT_EFFORT_BUDGETS,
    Budget,
    Capabilities,
    Completion,
    GenerationError,
    SamplingParams,
    estimate_tokens,
)

log = logging.getLogger(__name__)

#: the fields a thinking budget is sent in, for the servers that read each
BUDGET_FIELDS = ("thinking_token_budget", "thinking_budget_tokens", "thinking")
#: fields ponder adds that a strict server may reject; each is dropped (once) when it is
OPTIONAL_FIELDS = (*BUDGET_FIELDS, "chat_template_kwargs")
#: reasoning this far past the budget (tokens) means the server ignored it
BUDGET_SLACK = 16
NO_LOOP_GUARD = ("loop_guard watches every token as it is decoded, which an endpoint does not let a client do "
                 "(raw completions generate in segments): use a local checkpoint or a `ponder serve` endpoint")


class OpenAIBackend:
    """``Backend`` over an OpenAI-compatible ``/chat/completions`` endpoint (see module docstring).

    model, base_url: what to call (``base_url`` usually ends in ``/v1``).
    api_key: else ``OPENAI_API_KEY``, else a placeholder (local servers ignore it).
    thinking: the thinking mode, auto|on|off (how content without a reasoning field is split).
    concurrency: most requests in flight at once. max_retries: retries after the first attempt.
    backoff, max_backoff: seconds before retry k is ``min(max_backoff, backoff * 2**k)`` (+ jitter).
    timeout: seconds per request (a reasoning model on a CPU can need many minutes).
    logprobs: ask for token log-probs (dropped, once, if the server rejects them).
    use_n: send ``n`` in one request; when the server returns fewer choices the rest are fetched
    with separate requests and later calls send n requests directly.
    effort_table: effort -> thinking tokens, only for the ``max_tokens`` bound of an effort request.
    extra_body: merged into every request body (server-specific options).
    ponder_server: the server is ``ponder serve``, which runs budgets exactly: ``max_tokens`` is
    sent as the answer bound (not budget + answer) and ``min_thinking`` goes through its
    ``ponder`` extension. None (default): detected once, before the first request, from
    ``GET /models`` (``owned_by: "ponder"``); a server without that route counts as generic.
    tokenizer: the served model's tokenizer (a directory, a ``.gguf`` file, or a loaded
    tokenizer): raw-completions mode (see the module docstring).
    """

    max_positions = None  # the server's context length is not known to the client
    eos_ids: frozenset = frozenset()

    def __init__(self, model: str, base_url: str, api_key: str | None = None, *, thinking: str = "auto",
                 concurrency: int = 8, max_retries: int = 3, backoff: float = 0.5, max_backoff: float = 8.0,
                 timeout: float = 600.0, logprobs: bool = True, use_n: bool = True,
                 effort_table: Mapping[str, int] | None = None, extra_body: Mapping[str, Any] | None = None,
                 ponder_server: bool | None = None, tokenizer: Any = None):
        if not isinstance(concurrency, int) or concurrency < 1:
            raise GenerationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise GenerationError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if backoff < 0 or max_backoff < 0 or timeout <= 0:
            raise GenerationError("backoff and max_backoff must be >= 0 and timeout > 0")
        if extra_body is not None and not isinstance(extra_body, Mapping):
            raise GenerationError(f"extra_body must be a JSON object, got {type(extra_body).__name__}")
        self.model, self.base_url = model, base_url.rstrip("/")
        self.name = f"openai:{model}@{self.base_url}"
        self.api_key = api_key_from(api_key)
        self.tokenizer = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else tokenizer
        self.raw = self.tokenizer is not None  # raw-completions mode: ponder renders, /v1/completions
        self.thinking = (decide_thinking(thinking, self.tokenizer) if self.raw
                         else decide_thinking(thinking, remote=True))
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff, self.max_backoff, self.timeout = backoff, max_backoff, timeout
        self.logprobs, self.use_n = logprobs, use_n
        self.effort_table = dict(effort_table or DEFAULT_EFFORT_BUDGETS)
        self.extra_body = dict(extra_body or {})
        self.ponder_server = ponder_server  # None: asked of the server's /models on first use
        self.rejected: set[str] = set()  # optional fields this server refused (never sent again)
        self.budget_honoured: bool | None = None  # None: not seen yet; False: a completion overran it
        self.requests = 0  # HTTP attempts made (for tests and benchmarks)
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # generate()'s loop thread, started on first use
        self._client = None
        self._thread: threading.Thread | None = None
        self._sem: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def capabilities(self) -> Capabilities:
        """What this endpoint can do; budget forcing only on ``ponder serve``, which is asked of
        the server's ``GET /models`` the first time (``detect``)."""
        if self.raw:
            return Capabilities(local=False, token_level=False, streaming=False, concurrent=True,
                                logprobs=False, retries=True, budgets="exact", forcing=True, loop_guard=False)
        if self.ponder_server is None:
            self.detect()
        return Capabilities(local=False, token_level=False, streaming=True, concurrent=True,
                            logprobs=self.logprobs, retries=True, budgets="server",
                            forcing=bool(self.ponder_server), loop_guard=bool(self.ponder_server))

    def detect(self) -> None:
        """Ask ``GET /models`` (once) whether the server is ``ponder serve`` and lists the model."""
        if self.ponder_server is not None:
            return
        from openai import OpenAI

        client = OpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=min(self.timeout, 10.0))
        try:
            self._listed(client.models.list())
        except Exception as e:  # noqa: BLE001 - no /models route (or no server yet): a generic server
            log.info("could not list models at %s (%s); treating it as a generic server", self.base_url,
                     self.describe(e))
            self.ponder_server = False
        finally:
            client.close()

    def count_tokens(self, text: str) -> int:
        if self.raw:
            return len(self.tokenizer.encode(text, add_special_tokens=False))
        return estimate_tokens(text)

    def decode(self, ids: list[int]) -> str:
        if self.raw:
            return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        raise GenerationError("an endpoint returns text, not token ids: there is nothing to decode")

    def refresh_weights(self) -> None:
        """Nothing to do: the server holds the weights."""

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` at WARNING the first time ``key`` comes up (per backend)."""
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s: %s", self.base_url, message)

    # ------------------------------------------------------------------ request building

    def request_kwargs(self, sampling: SamplingParams, budget: Budget, n: int = 1) -> dict:
        """The ``chat.completions.create`` arguments for these parameters (without messages)."""
        extra = dict(self.extra_body)
        kw: dict[str, Any] = {"model": self.model, "n": n, "temperature": sampling.temperature,
                              "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}
        if budget.forcing and not self.raw:
            if not self.ponder_server:  # False, or None before detection (generic until known)
                raise GenerationError(
                    "--min-thinking (s1 budget forcing) rewrites the reasoning token by token, which a generic "
                    "server does not allow: use a local checkpoint or GGUF file, or a `ponder serve` endpoint"
                )
            extra["ponder"] = {"strategy": "single", "n": 1, "min_thinking": budget.min_thinking}
        if budget.loop_guard:
            if not self.ponder_server:
                raise GenerationError(NO_LOOP_GUARD)
            extra.setdefault("ponder", {})["loop_guard"] = budget.loop_guard
        # a generic server's max_tokens bounds reasoning + answer; ponder serve's bounds the answer
        # when a budget is given (as the local engine does), so it gets max_tokens unchanged
        if sampling.top_k:
            extra["top_k"] = sampling.top_k  # vLLM/SGLang/llama.cpp extension
        if sampling.stop:
            kw["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            kw["seed"] = sampling.seed
        if sampling.ignore_eos:
            extra["ignore_eos"] = True
        tb = budget.resolve(self.effort_table)
        if budget.effort is not None:
            kw["reasoning_effort"] = budget.effort
        elif budget.thinking_budget is not None:
            if self.ponder_server:
                extra["thinking"] = {"type": "enabled", "budget_tokens": tb}
            else:
                for name in BUDGET_FIELDS:
                    extra[name] = {"type": "enabled", "budget_tokens": tb} if name == "thinking" else tb
        if tb is not None and not self.ponder_server:
            kw["max_tokens"] = sampling.max_tokens + tb
        if self.thinking.mode == "off":
            if not self.ponder_server:
                extra.setdefault("chat_template_kwargs", {"enable_thinking": False})
            elif budget.effort is None and budget.thinking_budget is None:
                kw["reasoning_effort"] = "none"
        for name in self.rejected:
            extra.pop(name, None)
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
        kept for the backend's life: connections are reused across calls, and ``concurrency``
        bounds the requests in flight over all calls, including calls made at once from several
        threads. Safe to call from any thread, also from inside a running event loop (it blocks
        that caller until done).
        """
        msgs, n, sampling, budget = self._check(prompts, n, sampling, budget)
        if not msgs:
            return []
        loop = self._background_loop()
        return asyncio.run_coroutine_threadsafe(self._on_own_loop(msgs, n, sampling, budget), loop).result()

    def _check(self, prompts, n, sampling, budget):
        if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
            raise GenerationError(f"prompts must be a list of strings or message lists, got {type(prompts).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise GenerationError(f"n must be an int >= 1, got {n!r}")
        sampling = sampling if sampling is not None else SamplingParams()
        budget = budget if budget is not None else Budget()
        if not isinstance(sampling, SamplingParams) or not isinstance(budget, Budget):
            raise GenerationError("sampling must be a SamplingParams and budget a Budget")
        if self.raw:
            if budget.loop_guard:
                raise GenerationError(NO_LOOP_GUARD)
            for i, p in enumerate(prompts):
                if not isinstance(p, str):
                    raise GenerationError(f"prompts[{i}]: with a tokenizer the backend takes rendered prompt strings "
                                          "(ponder.generate.prompt renders them)")
            return list(prompts), n, sampling, budget
        msgs = [to_messages(p, i) for i, p in enumerate(prompts)]
        if msgs and not ((budget.forcing or budget.loop_guard) and self.ponder_server is None):
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

    def _new_client(self, sync: bool = False):
        from openai import AsyncOpenAI, OpenAI

        cls = OpenAI if sync else AsyncOpenAI
        return cls(api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout)

    async def _on_own_loop(self, msgs, n, sampling, budget) -> list[list[Completion]]:
        if self._client is None:  # created on the loop it will be used on
            self._client = self._new_client()
            self._sem = asyncio.Semaphore(self.concurrency)
        await self._detect(self._client)
        return list(await asyncio.gather(*(self._one_prompt(self._client, self._sem, m, n, sampling, budget)
                                           for m in msgs)))

    def _listed(self, models: Any) -> None:
        """Learn from ``GET /models``: is it ponder serve, and does it list our model."""
        data = list(getattr(models, "data", None) or [])
        self.ponder_server = any(getattr(m, "owned_by", None) == "ponder" for m in data)
        ids = [getattr(m, "id", None) for m in data]
        if ids and self.model not in ids and self.model != "auto":
            self.warn_once("model-id", f"the server does not list model {self.model!r} (it lists "
                                       f"{', '.join(map(str, ids[:5]))}); requests may fail or use another model")

    async def _detect(self, client) -> None:
        """Set ``ponder_server`` (and check the model id) from ``GET /models``, once."""
        if self.ponder_server is not None:
            return
        try:
            self._listed(await client.models.list())
        except Exception as e:  # noqa: BLE001 - no /models route: generic; unreachable: ask again next call
            log.info("could not list models at %s (%s); treating it as a generic server", self.base_url,
                     self.describe(e))
            if not retryable(e):
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
        if self.raw:  # every sample is its own segmented run, with its own seed
            seeds = [None if sampling.seed is None else sampling.seed + i for i in range(n)]
            return list(await asyncio.gather(*(raw_run(self, client, sem, messages, replace(sampling, seed=s), budget)
                                               for s in seeds)))
        choices: list[Completion] = []
        # ponder serve's extension (forcing) returns one choice per request, and a seeded request's
        # choices would share one seed: ask n times
        one_each = (budget.forcing and self.ponder_server) or (sampling.seed is not None and n > 1)
        if (self.use_n and not one_each) or n == 1:
            choices = await self._request(client, sem, messages, n, sampling, budget)
            if len(choices) < n and n > 1:
                log.info("server %s returned %d of n=%d choices; sending one request per sample",
                         self.base_url, len(choices), n)
                self.use_n = False
        missing = n - len(choices)
        if missing > 0:
            seeds = [None if sampling.seed is None else sampling.seed + len(choices) + i for i in range(missing)]
            extra = await asyncio.gather(*(
                self._request(client, sem, messages, 1, replace(sampling, seed=s), budget) for s in seeds))
            choices += [c for group in extra for c in group[:1]]
        return choices[:n]

    async def _request(self, client, sem, messages, n, sampling, budget) -> list[Completion]:
        kw = self.request_kwargs(sampling, budget, n)

        async def call():
            async with sem:
                return await client.chat.completions.create(messages=messages, **kw)

        resp = await self._with_retries_async(call, kw)
        return self._completions(resp, sampling, budget)

    # ------------------------------------------------------------------ retries

    def _adapt(self, e: Exception, kw: dict) -> bool:
        """Drop a field the server rejected (logprobs, a budget field); True when retrying may help."""
        status, msg = status_of(e), str(e).lower()
        if status not in (400, 422):
            return False
        if kw.get("logprobs") and "logprob" in msg:
            log.info("server %s rejects logprobs; asking without them", self.base_url)
            self.logprobs = False
            kw.pop("logprobs")
            return True
        extra = kw.get("extra_body") or {}
        for name in [f for f in OPTIONAL_FIELDS if f in extra and f in msg]:
            self.rejected.add(name)
            extra.pop(name)
            self.warn_once(f"field-{name}", f"the server rejects the field {name!r}; requests go on without it")
            return True
        return False

    async def _with_retries_async(self, call: Callable[[], Awaitable], kw: dict):
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt and not (last is not None and adapted(last)):
                await asyncio.sleep(self._delay(attempt))
            with self._lock:
                self.requests += 1
            try:
                return await call()
            except Exception as e:  # noqa: BLE001 - classified below
                last = self._classify(e, kw, attempt)
        raise self._gave_up(last)

    def _with_retries(self, call: Callable[[], Any], kw: dict):
        """The same retries for a blocking call (opening a stream): run in a worker thread from
        the backend's loop, so there is one retry loop."""
        async def in_thread():
            return await asyncio.to_thread(call)

        return asyncio.run_coroutine_threadsafe(self._with_retries_async(in_thread, kw), self._background_loop()).result()

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)

    def _classify(self, e: Exception, kw: dict, attempt: int) -> Exception:
        """Return ``e`` when a retry may help (marked when a field was dropped), else raise."""
        if self._adapt(e, kw):
            e._ponder_adapted = True  # type: ignore[attr-defined]  # retry at once, no backoff
            return e
        if not retryable(e):
            raise GenerationError(f"server {self.base_url} refused the request for model {self.model!r}: "
                                  f"{self.describe(e)}") from e
        log.info("request to %s failed (attempt %d): %s", self.base_url, attempt + 1, self.describe(e))
        return e

    def _gave_up(self, last: Exception | None) -> GenerationError:
        return GenerationError(f"server {self.base_url} kept failing for model {self.model!r}: "
                               f"{self.max_retries + 1} attempts, last error: {self.describe(last)}")

    def describe(self, e: Exception | None) -> str:
        """One line for an error, with a hint where the fix is known (a 404 without ``/v1``)."""
        if e is None:
            return "no error recorded"
        s = status_of(e)
        msg = (str(e).strip() or type(e).__name__).splitlines()[0]
        text = f"HTTP {s}: {msg}" if s is not None else f"{type(e).__name__}: {msg}"
        if s == 404 and not self.base_url.rstrip("/").endswith("/v1"):
            text += f" -- OpenAI-compatible servers usually serve under /v1: try {self.base_url}/v1"
        return text

    # ------------------------------------------------------------------ responses

    def _split(self, content: str | None, reasoning: str | None) -> tuple[str, bool | None]:
        """The normal form of a message: ``(text, prefilled)``."""
        content = content or ""
        if reasoning:  # the server separated the reasoning itself
            return (f"{reasoning}{THINK_CLOSE}{content}" if content.strip() else reasoning), True
        return content, self.thinking.parse_start == "inside" if self.thinking.parse_start != "unknown" else None

    def _completions(self, resp, sampling: SamplingParams, budget: Budget | None = None) -> list[Completion]:
        raw: list[Choice] = []
        for ch in sorted(resp.choices or [], key=lambda c: c.index or 0):
            msg = ch.message
            text, pre = self._split(msg.content, reasoning_field(msg))
            lps = []
            if ch.logprobs is not None and getattr(ch.logprobs, "content", None):
                lps = [float(t.logprob) for t in ch.logprobs.content]
            raw.append(Choice(text, pre, finish_of(ch, sampling), lps))
        usage = getattr(resp, "usage", None)
        out = counted(raw, usage, self.warn_once)
        prompt_tokens = getattr(usage, "prompt_tokens", None) if usage else None
        if prompt_tokens is not None:
            out = [replace(c, prompt_tokens=prompt_tokens) for c in out]
        if budget is not None:
            self._check_budget(out, budget)
        return out

    def _check_budget(self, out: list[Completion], budget: Budget) -> None:
        tb = budget.thinking_budget
        if tb is None or self.ponder_server:
            return
        over = [c.reasoning_tokens for c in out if c.reasoning_tokens > tb + BUDGET_SLACK]
        if over:
            self.budget_honoured = False
            self.warn_once("budget", f"the server ignored the thinking budget ({tb} tokens; a completion reasoned for "
                                     f"{max(over)}): only max_tokens bounds the reasoning on this endpoint")
        elif self.budget_honoured is None:
            self.budget_honoured = True

    # ------------------------------------------------------------------ streaming

    def stream(self, prompt: Any, sampling: SamplingParams | None = None,
               budget: Budget | None = None) -> Iterator[tuple[str, Any]]:
        """Stream one completion: yields ``("reasoning", delta)`` and ``("answer", delta)`` as
        they arrive, then ``("done", Completion)``; the deltas concatenate exactly to the
        completion's ``reasoning`` and ``answer`` (one ``ponder.format.ReasoningSplitter``
        splits both). Failures before the first chunk are retried like ``generate``; a failure
        mid-stream raises ``GenerationError``."""
        sampling = sampling if sampling is not None else SamplingParams()
        budget = budget if budget is not None else Budget()
        if self.raw:  # segmented generation: the completion arrives whole, split by the one parser
            c = self.generate([prompt], 1, sampling, budget)[0][0]
            split = ReasoningSplitter(ends_in_think(prompt))
            yield from split.feed(c.text)
            yield from split.finish()
            yield "done", c
            return
        messages = to_messages(prompt)
        self.detect()
        client = self._new_client(sync=True)
        kw = self.request_kwargs(sampling, budget, 1)
        kw.pop("logprobs", None)
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True}
        stream = self._with_retries(lambda: client.chat.completions.create(messages=messages, **kw), kw)
        content_split = ReasoningSplitter(self.thinking.parse_start)
        separated = ReasoningSplitter("inside")  # the server's reasoning field, then "</think>" + content
        reasoning_text, content_text, finish, usage = [], [], "eos", None
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for ch in chunk.choices or []:
                    d = ch.delta
                    r = reasoning_field(d)
                    if r:
                        reasoning_text.append(r)
                        yield from separated.feed(r)
                    if d.content:
                        if reasoning_text:  # the reasoning came separated: content is the answer
                            if not content_text:
                                yield from separated.feed(THINK_CLOSE)
                            yield from separated.feed(d.content)
                        else:
                            yield from content_split.feed(d.content)
                        content_text.append(d.content)
                    if ch.finish_reason:
                        finish = finish_of(ch, sampling)
        except Exception as e:  # noqa: BLE001
            raise GenerationError(f"stream from {self.base_url} broke off: {self.describe(e)}") from e
        finally:
            client.close()
        yield from (separated if reasoning_text else content_split).finish()
        text, pre = self._split("".join(content_text), "".join(reasoning_text))
        yield "done", counted([Choice(text, pre, finish, [])], usage, self.warn_once)[0]


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


__all__: Sequence[str] = ("OpenAIBackend", "api_key_from", "to_messages")
