"""The wire format of OpenAI-compatible endpoints, for ``OpenAIBackend``: messages, response fields,
finish reasons, usage and token counts, API keys, which errors to retry, a served model's tokenizer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ponder.format import parse
from ponder.generate.types import Completion, GenerationError, SamplingParams, estimate_tokens


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer of a served model, from a Hugging Face directory or a ``.gguf`` file (its
    tokenizer only: transformers reads it from the GGUF metadata, no weights are loaded)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    p = Path(path).expanduser()
    if not p.exists():
        raise GenerationError(f"--tokenizer {str(p)!r} does not exist (a tokenizer directory or a .gguf file)")
    try:
        if p.is_file():
            return AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name, local_files_only=True)
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds here
        raise GenerationError(f"--tokenizer {str(p)!r}: cannot load a tokenizer ({type(e).__name__}: {e})") from None


def api_key_from(kw_key: str | None) -> str:
    """The API key: the explicit one, else ``OPENAI_API_KEY``, else a placeholder for local servers."""
    return kw_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"


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


def field(obj: Any, name: str) -> Any:
    """An attribute of an openai model object, including server-specific extra fields."""
    v = getattr(obj, name, None)
    if v is None:
        extra = getattr(obj, "model_extra", None) or {}
        v = extra.get(name)
    return v


def reasoning_field(obj: Any) -> str | None:
    return field(obj, "reasoning_content") or field(obj, "reasoning")


def finish_of(choice: Any, sampling: SamplingParams) -> str:
    stop_reason = field(choice, "stop_reason")
    if choice.finish_reason == "length":
        return "length"
    if isinstance(stop_reason, str) or (choice.finish_reason == "stop" and sampling.stop and stop_reason is None):
        return "stop"  # vLLM names the matched stop string; else assume stop strings fired
    return "eos"


@dataclass
class Choice:
    """One choice of a response, before token counts are shared out."""

    text: str  # normal form (see the module docstring)
    prefilled: bool | None
    finish: str
    logprobs: list[float]


#: a usage total below this share of the choices' estimated tokens is not a total of all of them
PLAUSIBLE_SHARE = 0.7


def counted(raw: list[Choice], usage: Any, warn_once: Callable[[str, str], None]) -> list[Completion]:
    """Completions with token counts from ``usage`` (shared out over the choices by text length),
    or estimates marked ``estimated`` when the usage is missing or cannot be right (llama.cpp
    reports one choice's tokens for ``n=2``)."""
    parts = [parse(c.text, c.prefilled) for c in raw]
    est = [(estimate_tokens(p.reasoning), estimate_tokens(p.answer)) for p in parts]
    total = getattr(usage, "completion_tokens", None) if usage else None
    details = getattr(usage, "completion_tokens_details", None) if usage else None
    r_total = getattr(details, "reasoning_tokens", None) if details else None
    need = sum(r + a for r, a in est)
    plausible = bool(total) and (len(raw) == 1 or total >= PLAUSIBLE_SHARE * need)
    if total and not plausible:
        warn_once("usage", f"usage reports {total} completion tokens for {len(raw)} choices that need "
                           f"about {need}: token counts are estimated from the text")
    # ponder serve's usage.loop_breaks (its loop guard): a count per request, so per choice only for n=1
    breaks = (getattr(usage, "loop_breaks", None) or 0) if usage is not None and len(raw) == 1 else 0
    out = []
    weights = [max(1, r + a) for r, a in est]
    r_weights = [max(1, r) if p.reasoning else 0 for (r, _), p in zip(est, parts)]
    for i, (c, p) in enumerate(zip(raw, parts)):
        if plausible:
            tokens = total if len(raw) == 1 else round(total * weights[i] / sum(weights))
            if r_total is not None:
                rt = r_total if len(raw) == 1 else round(r_total * r_weights[i] / max(1, sum(r_weights)))
            else:
                rt = round(tokens * est[i][0] / max(1, sum(est[i])))
            rt = min(rt, tokens)
            at = tokens - rt
        else:
            rt, at = est[i]
        out.append(Completion(text=c.text, token_ids=[], reasoning=p.reasoning, answer=p.answer,
                              reasoning_tokens=rt, answer_tokens=at, finish_reason=c.finish,  # type: ignore[arg-type]
                              logprobs=c.logprobs, think_closed=p.think_closed, prefilled=c.prefilled,
                              estimated=not plausible, loop_breaks=int(breaks)))
    return out


#: statuses worth retrying besides 5xx (timeouts, conflicts, rate limits)
RETRY_STATUS = frozenset({408, 409, 429})


def status_of(e: Exception) -> int | None:
    """The HTTP status of an ``openai`` error (None: no response, e.g. a connection error)."""
    return getattr(e, "status_code", None)


def retryable(e: Exception) -> bool:
    """A failure a retry may fix: no connection, a timeout, 408/409/429 or a 5xx."""
    import openai

    if isinstance(e, (openai.APIConnectionError, openai.APITimeoutError)):
        return True
    s = status_of(e)
    return s is not None and (s in RETRY_STATUS or s >= 500)


def adapted(e: Exception) -> bool:
    """The request failed on a field that was then dropped: retry at once, without backoff."""
    return bool(getattr(e, "_ponder_adapted", False))
