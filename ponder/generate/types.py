"""What every generation backend takes and returns: sampling parameters, thinking budgets,
completions, and the ``Backend`` protocol with its declared capabilities.

A backend turns prompts into completions::

    generate(prompts, n=1, sampling=None, budget=None) -> list[list[Completion]]

The result is grouped: ``result[i]`` holds the ``n`` samples of ``prompts[i]``, in sample order.
A prompt is what ``ponder.format.render`` made for the backend (``Prompt.payload``): a string for
a local model, chat messages for an endpoint. ``LocalEngine`` (``ponder.generate.local``) is the
fast CPU backend for transformers causal LMs; ``OpenAIBackend`` talks to any OpenAI-compatible
server. Both implement ``Backend`` and say what they can do in ``Capabilities`` -- callers read
those, never probe attributes.

Token accounting (the same in every backend):

* ``token_ids`` are every generated token, in order, including an EOS that ended the completion,
  forced tokens (a budget's ``</think>``, budget forcing's "Wait") and the tokens of a stop string.
  ``logprobs`` is aligned with ``token_ids``.
* ``text`` is the decoded ``token_ids`` minus the EOS token and cut just before a stop string.
* ``reasoning_tokens`` counts the tokens up to and including the one that completes ``</think>``
  (everything, if the think block never closes and the model was thinking); ``answer_tokens`` the
  rest, so ``reasoning_tokens + answer_tokens == len(token_ids)``. A backend that cannot count
  (a server that reports no usage) estimates and says so (``Completion.estimated``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Mapping, Protocol, Sequence, runtime_checkable

from ponder.format import THINK_CLOSE, THINK_OPEN, Parsed, Thinking, parse, start_of

FinishReason = Literal["stop", "length", "eos"]
Effort = Literal["low", "medium", "high"]

#: Thinking budgets (in tokens) for each effort level, sized for the project's tiny models.
#: A model can carry its own table as ``ponder_effort_budgets`` in its ``config.json``;
#: ``LocalEngine(effort_table=...)`` overrides both; other models get ``effort_table_for``.
DEFAULT_EFFORT_BUDGETS: dict[str, int] = {"low": 64, "medium": 256, "high": 1024}


def effort_table_for(context_length: int | None, n_params: int | None = None) -> dict[str, int]:
    """The effort table for a model: ponder's tiny models (< 50M parameters or a context of at
    most 2,048 tokens) keep ``DEFAULT_EFFORT_BUDGETS``; larger ones think in proportion to their
    context: low 1/16, medium 1/4, high 1/2 of it (SmolLM2's 8,192: 512 / 2,048 / 4,096),
    capped at 32,768 tokens, so "high" still leaves room for the prompt and the answer."""
    if not context_length or context_length <= 2048 or (n_params is not None and n_params < 50_000_000):
        return dict(DEFAULT_EFFORT_BUDGETS)
    return {"low": min(context_length // 16, 4096), "medium": min(context_length // 4, 16384),
            "high": min(context_length // 2, 32768)}

#: What a thinking-budget cut-off appends: the model sees its reasoning end and starts its answer.
DEFAULT_CLOSE_TEXT = "\n" + THINK_CLOSE + "\n"


#: what the loop guard does on a loop (None: no guard)
LOOP_ACTIONS = (None, "close", "stop")


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

    thinking_budget: the most reasoning tokens the model writes. When a completion inside
        ``<think>`` has written that many, ``close_text`` (default "\\n</think>\\n") is forced so
        the model answers. The forced tokens are counted in ``reasoning_tokens`` but not in the
        budget, whatever their real length in the tokenizer (``</think>`` is one token in
        ponder's tokenizers and reasoning models, three in SmolLM2's), so
        ``reasoning_tokens <= thinking_budget + len(close_text tokens)``. The answer then gets
        its own ``max_tokens``.
    effort: "low" | "medium" | "high", looked up in the model's effort table when
        ``thinking_budget`` is not given (giving both is an error).
    min_thinking: budget forcing (Muennighoff et al. 2025, "s1: Simple test-time scaling",
        arXiv:2501.19393, section 3.1): when the model tries to close ``</think>`` before this
        many reasoning tokens, the ``</think>`` is not emitted and ``wait_token`` is appended
        instead, at most ``max_waits`` times per completion.
    loop_guard: the reasoning-loop breaker (``ponder.format.loops``): while decoding, a cycle of
        up to 64 tokens repeated back to back over at least ``loop_span`` tokens and
        ``loop_repeats`` cycles is a loop. ``"close"``: inside the think block, force
        ``close_text`` and let the model answer (a loop in the answer stops it); ``"stop"``: end
        the completion there (finish "stop"). Each break counts in ``Completion.loop_breaks``.
        None: off. Engines with token-level control run it (local models, ``ponder serve``).
    """

    thinking_budget: int | None = None
    effort: Effort | None = None
    min_thinking: int = 0
    wait_token: str = "Wait"
    max_waits: int = 1
    close_text: str = DEFAULT_CLOSE_TEXT
    loop_guard: str | None = None
    loop_span: int = 24
    loop_repeats: int = 3

    def __post_init__(self) -> None:
        if self.loop_guard not in LOOP_ACTIONS:
            raise GenerationError(f"loop_guard must be close, stop or None, got {self.loop_guard!r}")
        if self.loop_span < 2 or self.loop_repeats < 2:
            raise GenerationError(f"loop_span and loop_repeats must be >= 2, got {self.loop_span}, {self.loop_repeats}")
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
    """One generated completion (see the module docstring for the token accounting).

    ``text`` is exactly what the model wrote after its prompt; ``prefilled`` says whether that
    prompt opened the think block (True), did not (False), or whether nobody can tell (None: an
    endpoint's own chat template). ``full_text`` puts a pre-filled ``<think>`` back in front, for
    records a reader parses on its own; the split (``reasoning``/``answer``) is
    ``ponder.format.parse(text, prefilled)`` and no consumer re-adds tags.
    """

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
    think_closed: bool = False  # a </think> ended the reasoning
    forced_close: bool = False  # the thinking budget cut the reasoning off
    waits: int = 0  # "Wait"s inserted by budget forcing
    loop_breaks: int = 0  # loops the loop guard broke (Budget.loop_guard)
    prefilled: bool | None = False  # the prompt ended in <think> (None: unknown, a server's template)
    estimated: bool = False  # token counts are estimates (the server reported no usable usage)
    prompt_tokens: int | None = None  # the prompt's tokens as an endpoint counted them

    @property
    def mean_logprob(self) -> float:
        """Mean log-prob per token (a confidence score; -inf for an empty completion)."""
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else float("-inf")

    @property
    def parsed(self) -> Parsed:
        """``ponder.format.parse`` of the text from where it started."""
        return parse(self.text, start_of(self.prefilled))

    @property
    def full_text(self) -> str:
        """The text with a pre-filled ``<think>`` put back in front (parses with start "plain")."""
        return THINK_OPEN + self.text if self.prefilled else self.text

    def answer_text(self) -> str:
        """The text the final answer is read from (``ponder.format.Parsed.answer_text``)."""
        return self.parsed.answer_text(self.finish_reason)

    @property
    def unclosed(self) -> bool:
        """The completion was thinking and never closed ``</think>``."""
        p = self.parsed
        return p.thinking and not p.think_closed


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared by the backend (callers never probe attributes).

    local: runs in this process (one batch at a time, no network, no retries).
    token_level: decodes token by token under ponder's control: exact thinking budgets, budget
        forcing, exact stop strings, token ids.
    streaming: ``stream`` yields deltas as they are generated (else it yields the whole
        completion at the end).
    concurrent: accepts several ``generate`` calls at once (a server), so callers may run
        requests in parallel threads.
    logprobs: completions carry per-token log-probs.
    retries: the backend retries failed requests itself (callers must not add their own).
    budgets: how a thinking budget is honoured: "exact" (token level), "server" (sent in the
        fields known servers read; the server may ignore it) or "none".
    forcing: budget forcing (``min_thinking``) is available.
    loop_guard: the reasoning-loop breaker (``Budget.loop_guard``) is available.
    continuous: rows can join a running decode batch (``ponder.generate.continuous``: LocalEngine's
        own KV cache and weights; not its subclasses that decode elsewhere, nor wrappers).
    stop_hook: ``generate`` takes ``stop_row(row, logprobs) -> bool``, called after each token,
        which stops a row early (``deepconf``'s online mode; others cut the finished trace).
    """

    local: bool
    token_level: bool
    streaming: bool
    concurrent: bool
    logprobs: bool
    retries: bool = False
    budgets: Literal["exact", "server", "none"] = "exact"
    forcing: bool = True
    loop_guard: bool = True
    continuous: bool = False
    stop_hook: bool = False


@runtime_checkable
class Backend(Protocol):
    """Anything that generates completions (``LocalEngine``, ``OpenAIBackend``, …).

    Attributes every backend has: ``capabilities``; ``thinking`` (the model's thinking decision,
    ``ponder.format.decide_thinking``); ``tokenizer`` (None for an endpoint); ``effort_table``
    (effort level -> thinking tokens); ``name`` (for records); ``max_positions`` (the context
    length, None when unknown); ``eos_ids`` (token ids that end a completion, empty without
    token ids); ``budget_honoured`` (True where
    budgets are exact, None until a server's completions showed whether it honours them, False
    once one overran its budget).
    """

    capabilities: Capabilities
    thinking: Thinking
    tokenizer: object
    effort_table: Mapping[str, int]
    name: str
    max_positions: int | None
    eos_ids: frozenset
    budget_honoured: bool | None

    def generate(self, prompts: list, n: int = 1, sampling: SamplingParams | None = None,
                 budget: Budget | None = None) -> list[list[Completion]]:
        """``n`` completions per prompt, grouped by prompt (``[]`` for no prompts)."""
        ...

    def stream(self, prompt, sampling: SamplingParams | None = None,
               budget: Budget | None = None) -> Iterator[tuple[str, object]]:
        """One completion as ``("reasoning", delta)`` / ``("answer", delta)`` events, then
        ``("done", Completion)``; the deltas concatenate to the completion's split."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for this model (an estimate where the backend has no tokenizer)."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Token ids -> text (backends without token ids never return any to decode)."""
        ...

    def refresh_weights(self) -> None:
        """Re-read the model's weights after they changed in place (training); a no-op for
        backends that do not hold weights."""
        ...


def check_request(prompts: object, n: object, *, messages: bool = False) -> list:
    """Validate the common arguments of ``Backend.generate``; returns the prompts as a list.

    ``messages``: chat-message lists are accepted too (endpoints)."""
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
        raise GenerationError(f"prompts must be a list of strings (or chat messages for an endpoint), got {type(prompts).__name__}")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) and not (messages and isinstance(p, (list, tuple))):
            raise GenerationError(f"prompts[{i}] must be a string, got {type(p).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GenerationError(f"n must be an int >= 1, got {n!r}")
    return list(prompts)


def check_generate(prompts: object, n: object, sampling: object, budget: object
                   ) -> tuple[list, SamplingParams, Budget]:
    """``check_request`` plus the sampling and budget the request runs with (the defaults for None)."""
    prompts = check_request(prompts, n)
    sampling = sampling if sampling is not None else SamplingParams()
    budget = budget if budget is not None else Budget()
    if not isinstance(sampling, SamplingParams) or not isinstance(budget, Budget):
        raise GenerationError("sampling must be a SamplingParams and budget a Budget")
    return prompts, sampling, budget


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token count: one per digit and punctuation mark, one per word of up to
    six letters and one per four letters beyond (BPE vocabularies split digits and long words;
    within ~30% of SmolLM2's and Qwen's tokenizers on English and arithmetic)."""
    n = 0
    for m in _PIECE.finditer(text or ""):
        s = m.group(0)
        n += 1 if not s[0].isalpha() or len(s) <= 6 else 1 + (len(s) - 3) // 4
    return n


_PIECE = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")


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
    loop_breaks: int = 0,
) -> Completion:
    """Build a ``Completion``: decode, cut at a stop string, split reasoning/answer, count tokens.

    ``decode`` maps token ids to text. The reasoning/answer split is ``ponder.format.parse`` of
    the text; the token split is the shortest prefix of ``token_ids`` whose decoding contains
    the closing ``</think>`` (found by bisection, so it holds whatever tokens spell the tag).
    """
    body = token_ids[:-1] if finish_reason == "eos" and token_ids and token_ids[-1] in eos_ids else token_ids
    full = decode(body)
    text = full
    if finish_reason == "stop":
        cuts = [i for i in (full.find(s) for s in stop) if i >= 0]
        text = full[: min(cuts)] if cuts else full
    p = parse(text, start_of(prefilled))
    if p.think_closed:
        lo, hi = 1, len(body)  # the smallest k with the reasoning closed in decode(body[:k])
        while lo < hi:
            mid = (lo + hi) // 2
            if parse(decode(body[:mid]), start_of(prefilled)).think_closed:
                hi = mid
            else:
                lo = mid + 1
        n_reason = lo
    elif p.thinking:
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
        loop_breaks=loop_breaks,
        prefilled=prefilled,
    )
