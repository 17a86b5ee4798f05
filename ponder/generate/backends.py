"""Pick a generation backend from one string, the ``MODEL`` argument of every ponder command.

Two kinds of spec::

    runs/sft/final                         a local Hugging Face checkpoint dir -> LocalEngine
    openai:<model>@<base_url>              an OpenAI-compatible server        -> OpenAIBackend
    openai:qwen3-0.6b@http://127.0.0.1:8000/v1

The model name may itself contain ``@`` (the split is on the last ``@`` followed by ``http://`` or
``https://``); the base URL must start with ``http://`` or ``https://``. The API key comes from
``api_key=...`` or the ``OPENAI_API_KEY`` environment variable (local servers accept any key,
so a placeholder is used when neither is set).

``load_backend`` is what eval, serve, strategies and the CLI import; it never contacts a model
hub (a local spec must be an existing checkpoint directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ponder.generate.types import Backend, GenerationError

OPENAI_PREFIX = "openai:"


class ModelSpecError(GenerationError):
    """A ``MODEL`` string that names no usable backend; the message says what is wrong."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``MODEL`` string: ``kind`` "local" (``path``) or "openai" (``model`` at ``base_url``)."""

    kind: Literal["local", "openai"]
    path: Path | None = None
    model: str | None = None
    base_url: str | None = None

    def __str__(self) -> str:
        return str(self.path) if self.kind == "local" else f"{OPENAI_PREFIX}{self.model}@{self.base_url}"


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``spec`` (see module docstring). Does not touch the disk or the network."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"model spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if not spec.startswith(OPENAI_PREFIX):
        return ModelSpec(kind="local", path=Path(spec).expanduser())
    rest = spec[len(OPENAI_PREFIX):]
    at = max(rest.rfind("@http://"), rest.rfind("@https://"))
    if at < 0:
        raise ModelSpecError(
            f"openai model spec {spec!r} needs the form openai:<model>@<base_url> "
            "with a base_url starting with http:// or https:// (e.g. openai:qwen@http://127.0.0.1:8000/v1)"
        )
    model, base_url = rest[:at].strip(), rest[at + 1:].strip()
    if not model:
        raise ModelSpecError(f"openai model spec {spec!r} has an empty model name before '@'")
    if base_url.rstrip("/") in ("http:", "https:") or base_url.split("://", 1)[1].strip("/") == "":
        raise ModelSpecError(f"openai model spec {spec!r} has no host in its base_url")
    return ModelSpec(kind="openai", model=model, base_url=base_url.rstrip("/"))


def load_backend(spec: str | ModelSpec, **kw) -> Backend:
    """A ready backend for ``spec``; ``kw`` goes to ``LocalEngine.from_path`` or ``OpenAIBackend``.

    Errors (missing or malformed directory, bad openai spec, unreadable checkpoint) are
    ``ModelSpecError`` / ``ponder.models.build.ModelLoadError`` (ValueError subclasses) naming
    the problem. A local checkpoint is loaded by ``ponder.models.build.load`` (offline, float32).
    """
    ms = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    if ms.kind == "openai":
        from ponder.generate.openai_backend import OpenAIBackend

        return OpenAIBackend(model=ms.model, base_url=ms.base_url, **kw)
    if not ms.path.exists():
        raise ModelSpecError(
            f"model {str(ms.path)!r} does not exist (give a local checkpoint directory "
            "or openai:<model>@<base_url>)"
        )
    from ponder.generate.local import LocalEngine
    from ponder.models.build import load

    model, tokenizer = load(ms.path)  # checks the directory; ModelLoadError names the problem
    return LocalEngine(model, tokenizer, **kw)


def api_key_from(kw_key: str | None) -> str:
    """The API key: the explicit one, else ``OPENAI_API_KEY``, else a placeholder for local servers."""
    return kw_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"


# --------------------------------------------------------------------------- prompts & streaming


def prompt_for(backend: Backend, question: str, template: str = "think", system: str | None = None,
               prefill_think: bool = True):
    """The prompt a backend should get for a bare ``question``.

    A local engine gets ``ponder.format.build_prompt`` with its tokenizer (the chat template the
    pipeline trains with, ``<think>`` pre-filled), so a tiny ponder model sees its training format.
    ``system=None`` means no system turn, as ponder's models are trained (``train.common.prompt_for``)
    and as DeepSeek advises for R1: a system prompt the model never saw derails a tiny model
    (measured on the demo's final model: 92.5% -> 0% greedy on 2-digit addition).
    A remote server applies its own chat template: it gets the question as one user message, or
    ``[system, user]`` messages when ``system`` is given.
    """
    from ponder.format import build_prompt

    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is not None:
        return build_prompt(question, template, system or "", tokenizer=tokenizer, prefill_think=prefill_think)
    if system:
        return [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return question


class ThinkSplitter:
    """Splits streamed text into ``("reasoning", s)`` / ``("answer", s)`` pieces at the think tags.

    Tags may arrive split across deltas: the tail that could still become a tag is held back until
    the next ``feed`` (or ``flush``), so the pieces never depend on how the text was chunked.
    ``prefilled``: the prompt ended in ``<think>``, so the text starts inside the reasoning.
    Otherwise a think block is recognised only when the text starts with ``<think>`` (after
    whitespace), as models write it; other text is the answer. (``parse``, which sees the whole
    text, also accepts odder shapes; the final Completion is authoritative.)
    """

    def __init__(self, prefilled: bool = False):
        from ponder.format import THINK_CLOSE, THINK_OPEN

        self.open, self.close = THINK_OPEN, THINK_CLOSE
        self.state = "think" if prefilled else "pre"
        self.buf = ""
        self.closed = False
        self.started = False

    def _held(self, tag: str) -> int:
        """Length of the longest buffer suffix that is a proper prefix of ``tag``."""
        for k in range(min(len(tag) - 1, len(self.buf)), 0, -1):
            if self.buf.endswith(tag[:k]):
                return k
        return 0

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.started = self.started or bool(text)
        self.buf += text
        out: list[tuple[str, str]] = []
        while self.buf:
            if self.state == "answer":
                out.append(("answer", self.buf))
                self.buf = ""
            elif self.state == "pre":  # a think block counts when the text starts with <think>
                head = self.buf.lstrip()
                if head.startswith(self.open):
                    self.state, self.buf = "think", head[len(self.open):]
                elif head and not self.open.startswith(head):
                    self.state = "answer"  # plain text, no think block
                else:
                    break  # only whitespace, or a beginning of <think>: wait for more
            else:  # think
                at = self.buf.find(self.close)
                if at >= 0:
                    if at:
                        out.append(("reasoning", self.buf[:at]))
                    self.state, self.closed, self.buf = "answer", True, self.buf[at + len(self.close):]
                    continue
                keep = self._held(self.close)
                if len(self.buf) > keep:
                    out.append(("reasoning", self.buf[: len(self.buf) - keep]))
                self.buf = self.buf[len(self.buf) - keep:]
                break
        return out

    def flush(self) -> list[tuple[str, str]]:
        """Whatever is still held back, once the stream has ended."""
        rest, self.buf = self.buf, ""
        if not rest or self.state == "pre" and not rest.strip():
            return []
        return [("reasoning" if self.state == "think" else "answer", rest)]


def stream(backend: Backend, prompt, sampling=None, budget=None):
    """Stream one completion from any backend: yields ``("reasoning", delta)``, ``("answer",
    delta)`` and finally ``("done", Completion)``.

    The openai backend streams from the server; a local engine generates in a worker thread and
    its ``on_token`` hook feeds the deltas (true token streaming); any other backend generates the
    whole completion and then yields it in two pieces.
    """
    if hasattr(backend, "stream"):
        yield from backend.stream(prompt, sampling, budget)
        return
    if not hasattr(backend, "tokenizer") or not isinstance(prompt, str):
        c = backend.generate([prompt], 1, sampling, budget)[0][0]
        if c.reasoning:
            yield "reasoning", c.reasoning
        if c.answer:
            yield "answer", c.answer
        yield "done", c
        return
    yield from _stream_local(backend, prompt, sampling, budget)


def _stream_local(engine, prompt: str, sampling, budget):
    import queue
    import threading

    from ponder.generate.types import prefilled_think

    q: queue.Queue = queue.Queue()
    eos = getattr(engine, "eos_ids", frozenset())
    state = {"text": ""}
    gone = threading.Event()  # the consumer stopped reading (Ctrl-C, closed generator)

    def on_token(row: int, ids: list[int]) -> bool | None:
        if gone.is_set():
            return True  # stop the row: the engine returns at once, ready for the next call
        body = ids[:-1] if ids and ids[-1] in eos else ids
        text = engine._decode(body)
        if text.endswith("\ufffd") or not text.startswith(state["text"]):
            return  # an incomplete UTF-8 piece, or a taken-back tag: wait for the next token
        delta, state["text"] = text[len(state["text"]):], text
        if delta:
            q.put(("delta", delta))

    def work() -> None:
        try:
            q.put(("result", engine.generate([prompt], 1, sampling, budget, on_token=on_token)[0][0]))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            q.put(("error", e))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    split = ThinkSplitter(prefilled=prefilled_think(prompt))
    try:
        while True:
            kind, item = q.get()
            if kind == "delta":
                yield from split.feed(item)
            elif kind == "error":
                raise item
            else:
                # the stop-string cut happens at the end: the streamed text may run a little past it
                yield from split.flush()
                yield "done", item
                return
    finally:
        gone.set()  # on an early exit the worker stops at its next token; the engine is not
        t.join()    # re-entrant, so wait for it before anyone can call it again
