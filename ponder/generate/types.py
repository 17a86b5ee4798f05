"""What every generation backend takes and returns: sampling parameters, thinking budgets, completions.

A backend turns prompts into completions::

    generate(prompts: list[str], n=1, sampling=None, budget=None) -> list[list[Completion]]

The result is grouped: ``result[i]`` holds the ``n`` samples of ``prompts[i]``, in sample order.
``LocalEngine`` (``ponder.generate.local``) is the fast CPU backend for transformers causal LMs;
any other backend (e.g. an OpenAI-compatible server) implements the same ``Backend`` protocol and
can reuse ``make_completion`` to fill in the reasoning/answer split and token counts.

Token accounting (the same in every backend):

* ``token_ids`` are every generated token, in order, including an EOS that ended the completion,
  forced tokens (a budget's ``</think>``, budget forcing's "Wait") and the tokens of a stop string.
  ``logprobs`` is aligned with ``token_ids``.
* ``text`` is the decoded ``token_ids`` minus the EOS token and cut just before a stop string.
* ``reasoning_tokens`` counts the tokens up to and including the one that completes ``</think>``
  (everything, if the think block never closes and the model was thinking); ``answer_tokens`` the
  rest, so ``reasoning_tokens + answer_tokens == len(token_ids)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping, Protocol, Sequence, runtime_checkable

from ponder.format import THINK_CLOSE, parse

FinishReason = Literal["stop", "length", "eos"]
Effort = Literal["low", "medium", "high"]

#: Thinking budgets (in tokens) for each effort level, sized for the project's tiny models.
#: A model can carry its own table as ``ponder_effort_budgets`` in its ``config.json``;
#: ``LocalEngine(effort_table=...)`` overrides both.
DEFAULT_EFFORT_BUDGETS: dict[str, int] = {"low": 64, "medium": 256, "high": 1024}

#: What a thinking-budget cut-off appends: the model sees its reasoning end and starts its answer.
DEFAULT_CLOSE_TEXT = "\n" + THINK_CLOSE + "\n"


class GenerationError(ValueError):
    """Bad generation input (parameters, prompts, budgets); the message names the problem."""


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each token.

    temperature: 0 means greedy (argmax); otherwise logits are divided by it before sampling.
    top_p: nucleus sampling, keep the smallest set of tokens whose probability reaches top_p (1 = off).
    top_k: keep the k most likely tokens (None or 0 = off).
    max_tokens: the most tokens generated per completion (with a thinking budget: per answer).
    stop: strings that end a completion; the text is cut before the first one (finish "stop").
    seed: makes sampling reproducible (same prompts, n and parameters give the same completions).
    ignore_eos: keep generating past EOS (benchmarks use it to make every length equal).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    max_tokens: int = 256
    stop: Sequence[str] = ()
    seed: int | None = None
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):  # a bare string is one stop string, not a set of characters
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        t = self.temperature
        if not isinstance(t, (int, float)) or math.isnan(t) or t < 0:
            raise GenerationError(f"temperature must be a number >= 0 (0 = greedy), got {t!r}")
        p = self.top_p
        if not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise GenerationError(f"top_p must be in (0, 1], got {p!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 0):
            raise GenerationError(f"top_k must be None, 0 (off) or a positive int, got {self.top_k!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise GenerationError(f"max_tokens must be an int >= 1, got {self.max_tokens!r}")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise GenerationError(f"stop strings must be non-empty strings, got {s!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise GenerationError(f"seed must be an int or None, got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        """True when every token is the argmax (temperature 0 or top_k 1)."""
        return self.temperature == 0 or self.top_k == 1


@dataclass(frozen=True)
class Budget:
    """How much the model may think, and how little.

    thinking_budget: the most reasoning tokens. When a completion inside ``<think>`` reaches it,
        ``close_text`` (default "\\n</think>\\n") is forced so the model answers; the forced
        tokens up to ``</think>`` count in the budget, so ``reasoning_tokens <= thinking_budget``.
        The answer then gets its own ``max_tokens``.
    effort: "low" | "medium" | "high", looked up in the model's effort table when
        ``thinking_budget`` is not given (giving both is an error).
    min_thinking: budget forcing (Muennighoff et al. 2025, "s1: Simple test-time scaling",
        arXiv:2501.19393, section 3.1): when the model tries to close ``</think>`` before this
        many reasoning tokens, the ``</think>`` is not emitted and ``wait_token`` is appended
        instead, at most ``max_waits`` times per completion.
    """

    thinking_budget: int | None = None
    effort: Effort | None = None
    min_thinking: int = 0
    wait_token: str = "Wait"
    max_waits: int = 1
    close_text: str = DEFAULT_CLOSE_TEXT

    def __post_init__(self) -> None:
        tb = self.thinking_budget
        if tb is not None and (not isinstance(tb, int) or tb < 0):
            raise GenerationError(f"thinking_budget must be None or an int >= 0, got {tb!r}")
        if self.effort is not None and self.effort not in ("low", "medium", "high"):
            raise GenerationError(f"effort must be 'low', 'medium' or 'high', got {self.effort!r}")
        if tb is not None and self.effort is not None:
            raise GenerationError("give thinking_budget or effort, not both")
        if not isinstance(self.min_thinking, int) or self.min_thinking < 0:
            raise GenerationError(f"min_thinking must be an int >= 0, got {self.min_thinking!r}")
        if not isinstance(self.max_waits, int) or self.max_waits < 0:
            raise GenerationError(f"max_waits must be an int >= 0, got {self.max_waits!r}")
        if not isinstance(self.wait_token, str) or not self.wait_token:
            raise GenerationError(f"wait_token must be a non-empty string, got {self.wait_token!r}")
        if THINK_CLOSE not in self.close_text:
            raise GenerationError(f"close_text must contain {THINK_CLOSE!r}, got {self.close_text!r}")
        if tb is not None and self.min_thinking > tb:
            raise GenerationError(
                f"min_thinking ({self.min_thinking}) exceeds thinking_budget ({tb}): "
                "the budget would cut the reasoning off before its minimum"
            )

    def resolve(self, effort_table: Mapping[str, int] | None = None) -> int | None:
        """The thinking budget in tokens: ``thinking_budget``, else ``effort`` via the table."""
        if self.thinking_budget is not None or self.effort is None:
            return self.thinking_budget
        table = DEFAULT_EFFORT_BUDGETS if effort_table is None else effort_table
        if self.effort not in table:
            raise GenerationError(f"effort {self.effort!r} is not in the effort table {dict(table)}")
        budget = table[self.effort]
        if self.min_thinking > budget:
            raise GenerationError(
                f"min_thinking ({self.min_thinking}) exceeds the {self.effort} budget ({budget})"
            )
        return budget

    @property
    def forcing(self) -> bool:
        """True when budget forcing (min_thinking with at least one wait) is on."""
        return self.min_thinking > 0 and self.max_waits > 0


@dataclass(frozen=True)
class Completion:
    """One generated completion (see the module docstring for the token accounting)."""

    text: str
    token_ids: list[int]
    reasoning: str
    answer: str
    reasoning_tokens: int
    answer_tokens: int
    finish_reason: FinishReason
    #: log p(token) under the model's raw distribution (before temperature, top-k and top-p),
    #: one per token id; forced tokens get the model's log-prob of the forced token.
    logprobs: list[float] = field(default_factory=list)
    think_closed: bool = False  # the completion contains </think>
    forced_close: bool = False  # the thinking budget cut the reasoning off
    waits: int = 0  # "Wait"s inserted by budget forcing

    @property
    def mean_logprob(self) -> float:
        """Mean log-prob per token (a confidence score; -inf for an empty completion)."""
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else float("-inf")


@runtime_checkable
class Backend(Protocol):
    """Anything that generates completions for prompts (local engine, OpenAI-compatible server…)."""

    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        sampling: SamplingParams | None = None,
        budget: Budget | None = None,
    ) -> list[list[Completion]]:
        """``n`` completions per prompt, grouped by prompt (``[]`` for no prompts)."""
        ...


def check_request(prompts: object, n: object) -> list[str]:
    """Validate the common arguments of ``Backend.generate``; returns the prompts as a list."""
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
        raise GenerationError(f"prompts must be a list of strings, got {type(prompts).__name__}")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise GenerationError(f"prompts[{i}] must be a string, got {type(p).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GenerationError(f"n must be an int >= 1, got {n!r}")
    return list(prompts)


def prefilled_think(prompt: str) -> bool:
    """True when the prompt ends inside an open think block (the chat template pre-filled ``<think>``)."""
    return prompt.rstrip().endswith("<think>")


def make_completion(
    token_ids: list[int],
    decode: Callable[[list[int]], str],
    finish_reason: FinishReason,
    logprobs: list[float],
    prefilled: bool,
    stop: Sequence[str] = (),
    eos_ids: frozenset[int] = frozenset(),
    forced_close: bool = False,
    waits: int = 0,
) -> Completion:
    """Build a ``Completion``: decode, cut at a stop string, split reasoning/answer, count tokens.

    ``decode`` maps token ids to text. The reasoning/answer split is ``ponder.format.parse`` of
    the text; the token split is the shortest prefix of ``token_ids`` whose decoding contains
    ``</think>`` (found by bisection, so it holds whatever tokens spell the tag).
    """
    body = token_ids[:-1] if finish_reason == "eos" and token_ids and token_ids[-1] in eos_ids else token_ids
    full = decode(body)
    text = full
    if finish_reason == "stop":
        cuts = [i for i in (full.find(s) for s in stop) if i >= 0]
        text = full[: min(cuts)] if cuts else full
    p = parse(text, prefilled_think=prefilled)
    if THINK_CLOSE in full:
        lo, hi = 1, len(body)  # the smallest k with THINK_CLOSE in decode(body[:k])
        while lo < hi:
            mid = (lo + hi) // 2
            if THINK_CLOSE in decode(body[:mid]):
                hi = mid
            else:
                lo = mid + 1
        n_reason = lo
    elif prefilled or "<think>" in full:
        n_reason = len(token_ids)  # still thinking when it stopped
    else:
        n_reason = 0
    return Completion(
        text=text,
        token_ids=list(token_ids),
        reasoning=p.reasoning,
        answer=p.answer,
        reasoning_tokens=n_reason,
        answer_tokens=len(token_ids) - n_reason,
        finish_reason=finish_reason,
        logprobs=list(logprobs),
        think_closed=p.think_closed,
        forced_close=forced_close,
        waits=waits,
    )
