"""Raw-completions mode of ``OpenAIBackend``: the prompt rendered by ponder, the completion
generated through ``/v1/completions`` in segments, so thinking budgets are exact and budget
forcing works on any server with that route (llama.cpp, vLLM, SGLang). Token counts come from the
local tokenizer (the text re-encoded).

The reasoning runs to ``</think>`` (a stop string) or to the thinking budget; an early close is
replaced by the wait token while the reasoning is shorter than ``min_thinking``; a budget reached
appends ``close_text``; then the answer gets its own ``max_tokens`` (without a budget
``max_tokens`` bounds the whole completion, as in the local engine). A "stop" finish of a
reasoning segment is read as the ``</think>`` stop string: servers report an EOS the same way,
and reading it as the close of the reasoning is what budget forcing does anyway.
"""

from __future__ import annotations

from typing import Any

from ponder.format import THINK_CLOSE, ends_in_think, parse
from ponder.generate.types import Budget, Completion, GenerationError, SamplingParams, make_completion


async def segment(backend, client, sem, prompt: str, sampling: SamplingParams, max_tokens: int,
                  stop: list[str]) -> tuple[str, str]:
    """One ``/v1/completions`` request: ``(text, finish)`` with finish "length" or "stop"."""
    kw: dict[str, Any] = {"model": backend.model, "prompt": prompt, "max_tokens": max_tokens,
                          "temperature": sampling.temperature, "top_p": sampling.top_p}
    if stop:
        kw["stop"] = stop
    if sampling.seed is not None:
        kw["seed"] = sampling.seed
    extra = {**({"top_k": sampling.top_k} if sampling.top_k else {}), **backend.extra_body}
    extra.pop("chat_template_kwargs", None)
    if extra:
        kw["extra_body"] = extra

    async def call():
        async with sem:
            return await client.completions.create(**kw)

    resp = await backend._with_retries_async(call, kw)
    ch = (resp.choices or [None])[0]
    if ch is None:
        raise GenerationError(f"server {backend.base_url} returned no choice for a completion request")
    return ch.text or "", "length" if ch.finish_reason == "length" else "stop"


async def raw_run(backend, client, sem, prompt: str, sampling: SamplingParams, budget: Budget) -> Completion:
    """One completion generated in segments (see the module docstring)."""
    tb = budget.resolve(backend.effort_table)
    inside = ends_in_think(prompt)
    count = backend.count_tokens
    text, waits, forced = "", 0, False
    stops = list(sampling.stop)
    if inside or tb is not None or budget.forcing:
        while True:  # the reasoning, up to </think> or the budget
            thought = count(text)
            room = sampling.max_tokens - thought if tb is None else tb - thought
            if room <= 0:
                if tb is None:
                    return _completion(backend, prompt, text, "length", forced, waits)
                text += budget.close_text
                forced = True
                break
            seg, how = await segment(backend, client, sem, prompt + text, sampling, room, [THINK_CLOSE])
            text += seg
            if not inside:  # a plain start: the segment was an answer unless the model opened <think>
                if not parse(text, False).thinking:
                    return _completion(backend, prompt, text, "eos" if how == "stop" else "length", forced, waits)
                inside = True
            if how == "stop":
                if budget.forcing and waits < budget.max_waits and count(text) < budget.min_thinking:
                    text += budget.wait_token
                    waits += 1
                    continue
                text += THINK_CLOSE
                break
            if tb is None:  # no budget: the token limit cut the reasoning
                return _completion(backend, prompt, text, "length", forced, waits)
    room = sampling.max_tokens if tb is not None else sampling.max_tokens - count(text)
    if room <= 0:
        return _completion(backend, prompt, text, "length", forced, waits)
    seg, how = await segment(backend, client, sem, prompt + text, sampling, room, stops)
    text += seg
    # a server reports an EOS and a stop string alike: with stop strings asked for, "stop"
    finish = "length" if how == "length" else ("stop" if stops else "eos")
    return _completion(backend, prompt, text, finish, forced, waits)


def _completion(backend, prompt: str, text: str, finish: str, forced: bool, waits: int) -> Completion:
    """The completion of a segmented run: token ids are the text re-encoded by the tokenizer."""
    ids = backend.tokenizer.encode(text, add_special_tokens=False)
    return make_completion(ids, backend.decode, finish, [], ends_in_think(prompt), (), frozenset(),  # type: ignore[arg-type]
                           forced_close=forced, waits=waits)
