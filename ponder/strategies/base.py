"""What every strategy shares: the result type, errors, answer extraction, voting keys, scorers.

A strategy is a short function over ``backend.generate`` (``ponder.generate.Backend``) plus a
verifier or a scorer. It returns a ``StrategyResult``: the chosen answer and completion text,
every completion it generated (``samples``), the tokens it spent in total, and a ``trace`` of
its decisions (votes, scores, rounds, tree, tool calls...).

Scorers rank completions: ``scorer(prompt, completion) -> float`` (higher is better). Besides a
callable, a scorer may be named: ``"logprob"`` (mean token log-prob: the model's confidence),
``"verifier"`` (the task's own check, 1.0 when correct; gold-free for code tests, an oracle
for math, which has only the gold answer to check against), or a path to a local checkpoint
used as an outcome reward model (``ponder.strategies.scorers.RewardModel``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ponder.format import THINK_CLOSE, Prompt, Thinking, ends_in_think, final_answer, parse, render
from ponder.generate.types import Budget, Completion, SamplingParams

Scorer = Callable[[str, Completion], float]
_PLAIN = Thinking("auto", "model", "a prompt shown to a scorer")


class StrategyError(ValueError):
    """Bad strategy input (unknown name or option, missing task/scorer); the message names it."""


@dataclass
class StrategyResult:
    """What a strategy returns.

    answer: the final extracted answer (None when no completion gave one).
    text: the final completion text (the chosen one; for votes, the first sample of the winner).
    reasoning, answer_text: the two parts of ``text``.
    samples: every completion generated, in order (for search strategies: every step).
    tokens, reasoning_tokens, answer_tokens: totals spent over all samples and rounds.
    trace: strategy-specific decisions (documented per strategy in docs/strategies.md); always
        has "strategy".
    """

    answer: str | None
    text: str
    reasoning: str
    answer_text: str = ""  # the answer part of ``text`` (what a chat reply shows)
    samples: list[Completion] = field(default_factory=list)
    tokens: int = 0
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    trace: dict[str, Any] = field(default_factory=dict)

    @property
    def completion(self) -> Completion | None:
        """The chosen completion when it is one of ``samples`` (``trace["chosen"]``)."""
        i = self.trace.get("chosen")
        return self.samples[i] if isinstance(i, int) and 0 <= i < len(self.samples) else None


def totals(samples: Sequence[Completion]) -> dict[str, int]:
    """Token totals over completions, as StrategyResult keyword arguments."""
    r = sum(c.reasoning_tokens for c in samples)
    a = sum(c.answer_tokens for c in samples)
    return {"tokens": r + a, "reasoning_tokens": r, "answer_tokens": a}


def result(strategy: str, final: Completion | None, samples: list[Completion], answer: str | None,
           **trace: Any) -> StrategyResult:
    """A StrategyResult whose text/reasoning come from ``final`` and totals from ``samples``."""
    return StrategyResult(
        answer=answer,
        text=final.text if final is not None else "",
        reasoning=final.reasoning if final is not None else "",
        answer_text=final.answer if final is not None else "",
        samples=list(samples),
        **totals(samples),
        trace={"strategy": strategy, **trace},
    )


# --------------------------------------------------------------------------- answers


def payload(prompt):
    """What ``backend.generate`` takes for a strategy's prompt: a ``ponder.format.Prompt``'s
    payload, or the string itself."""
    return prompt.payload if isinstance(prompt, Prompt) else prompt


def prompt_text(prompt) -> str:
    """A prompt as text for a scorer: the rendered string, or an endpoint's messages in ponder's
    plain layout (a reward model reads text)."""
    if isinstance(prompt, Prompt):
        return prompt.text if prompt.text is not None else render(prompt.messages, None, _PLAIN).text
    return prompt


def text_of(prompt) -> str:
    """The rendered prompt string (step-wise strategies continue it token by token: local only)."""
    p = payload(prompt)
    if not isinstance(p, str):
        raise StrategyError("this strategy continues the prompt text step by step, which needs a local model "
                            "(an endpoint renders its own prompts)")
    return p


def verdict(c: Completion, task, example):
    """The one judge's verdict on ``c`` (``ponder.tasks.judge``: the completion knows its start)."""
    from ponder.tasks import judge

    return judge(task, c, example)


def answer_of(c: Completion, task=None, example=None) -> str | None:
    """The completion's final answer: the judge's (with the task's extraction) when there is a
    task, else ``ponder.format.final_answer`` of its answer text."""
    if task is not None and example is not None:
        return verdict(c, task, example).answer
    if task is not None:
        return task.extract(c.answer_text())
    found = final_answer(c.answer_text())
    return found.value if found else None


def equality(equal: str | Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    """The answer equivalence used to pool votes.

    "math": ``math_equal`` (its fast path, then math-verify for pairs the fast path cannot
    decide: ~50 ms each after a ~1 s worker start); "math-fast": the fast path only (numbers,
    fractions, LaTeX values; undecided pairs count as different — for noisy answers where
    math-verify calls would dominate); "exact": equal strings; or a callable (a, b) -> bool.
    """
    if callable(equal):
        return equal
    if equal == "exact":
        return lambda a, b: a.strip() == b.strip()
    if equal in ("math", "math-fast"):
        from ponder.verify.math import math_equal_reason

        fallback = equal == "math"
        # symmetric enough for voting: both sides are model answers, neither is a gold
        return lambda a, b: math_equal_reason(a, b, timeout=2.0, fallback=fallback).equal
    raise StrategyError(f"equal must be 'math', 'math-fast', 'exact' or a callable (a, b) -> bool, got {equal!r}")


# --------------------------------------------------------------------------- sampling helpers


def seeded(sampling: SamplingParams | None, offset: int) -> SamplingParams | None:
    """``sampling`` with its seed moved by ``offset``, so repeated calls draw new samples.

    A seeded backend returns the same completions for the same request; strategies that call
    it several times (adaptive batches, refine rounds, search steps) shift the seed per call.
    """
    if sampling is None or sampling.seed is None or offset == 0:
        return sampling
    return replace(sampling, seed=(sampling.seed + 1_000_003 * offset) % (2**63))


def with_stop(sampling: SamplingParams | None, stop: Sequence[str], max_tokens: int | None = None,
              offset: int = 0) -> SamplingParams:
    """``sampling`` (or the default) with extra stop strings and, optionally, a token limit."""
    sp = seeded(sampling, offset) or SamplingParams()
    kw: dict[str, Any] = {"stop": tuple(dict.fromkeys([*sp.stop, *stop]))}
    if max_tokens is not None:
        kw["max_tokens"] = max_tokens
    return replace(sp, **kw)


def relabel(prompt: str, so_far: str, c: Completion, decode=None) -> Completion:
    """Fix the reasoning/answer split of a piece generated on ``prompt + so_far``.

    The backend only knows a think block is open when the prompt *ends* in ``<think>``; a
    continuation written mid-reasoning would count as answer tokens. Inside an open block the
    piece is reasoning up to its own ``</think>`` (the backend located that token already).
    """
    head = parse(so_far, ends_in_think(prompt))
    inside = head.thinking and not head.think_closed
    if not inside or ends_in_think(prompt + so_far):
        return c
    pr = parse(c.text, True)
    n = c.reasoning_tokens if pr.think_closed and c.think_closed else (
        len(c.token_ids) if not pr.think_closed else _close_at(c, decode))
    return replace(c, reasoning=pr.reasoning, answer=pr.answer, reasoning_tokens=n, think_closed=pr.think_closed,
                   answer_tokens=len(c.token_ids) - n, prefilled=True)


def _close_at(c: Completion, decode=None) -> int:
    """Tokens of ``c`` up to the one completing the ``</think>`` its text holds: the shortest
    prefix whose decoding contains it (``decode``: the backend's), else estimated by characters."""
    ids = c.token_ids
    if not ids:
        return 0
    if decode is None:
        cut = c.text.find(THINK_CLOSE) + len(THINK_CLOSE)
        return max(1, round(len(ids) * cut / max(1, len(c.text))))
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if THINK_CLOSE in decode(ids[:mid]) else (mid + 1, hi)
    return lo


def join(prompt: str, parts: Sequence[Completion], suffixes: Sequence[str] = ()) -> Completion:
    """One Completion made of consecutive generated pieces (search steps, tool segments).

    ``suffixes[i]`` is text appended after piece i that the backend cut off (a stop string) or
    that ponder inserted (tool output); it joins the text but has no tokens. Token counts are
    the pieces' sums (pieces are ``relabel``-ed when generated).
    """
    text = "".join(p.text + (suffixes[i] if i < len(suffixes) else "") for i, p in enumerate(parts))
    pre = ends_in_think(prompt)
    pr = parse(text, pre)
    r = sum(p.reasoning_tokens for p in parts)
    a = sum(p.answer_tokens for p in parts)
    return Completion(
        text=text, token_ids=[t for p in parts for t in p.token_ids], reasoning=pr.reasoning, answer=pr.answer,
        reasoning_tokens=r, answer_tokens=a, finish_reason=parts[-1].finish_reason if parts else "length",
        logprobs=[x for p in parts for x in p.logprobs], think_closed=pr.think_closed,
        forced_close=any(p.forced_close for p in parts), waits=sum(p.waits for p in parts), prefilled=pre,
        estimated=any(p.estimated for p in parts),
    )  # fmt: skip


# --------------------------------------------------------------------------- checks


def check_int(name: str, value: Any, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise StrategyError(f"{name} must be an int >= {lo}, got {value!r}")
    return value


def check_float(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise StrategyError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def no_budget(name: str, budget: Budget | None) -> None:
    """Step-wise strategies call the backend many times; a per-call thinking budget would
    restart at every step, so they refuse one rather than silently mis-apply it."""
    if budget is not None and (budget.thinking_budget is not None or budget.effort is not None or budget.forcing):
        raise StrategyError(f"strategy {name!r} generates step by step and does not take a thinking budget "
                            "(limit it with its max_steps/max_calls options instead)")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
