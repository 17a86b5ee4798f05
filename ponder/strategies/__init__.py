"""Test-time compute strategies over any backend: vote, rank, refine, search, run tools, route.

    from ponder.strategies import run_strategy, run_batch
    r = run_strategy("majority", engine, prompt, n=8, sampling=SamplingParams(temperature=0.8, seed=0))
    r.answer, r.tokens, r.trace["votes"]
    rs = run_batch("adaptive_majority", engine, prompts, n=16, task=task, examples=examples)

Every strategy is a short function ``(backend, prompt, *, n, sampling, budget, task, example,
scorer, **options) -> StrategyResult`` registered by name in ``STRATEGIES``; ``run_strategy``
checks the name and options and calls it. ``run_batch`` runs many prompts: the sampling
strategies (single, majority, weighted_majority, best_of_n, adaptive_majority) then share
``generate`` calls across prompts; the others run prompt by prompt. ``n=None`` means the
strategy's own default. See docs/strategies.md for each strategy, its source and trace fields.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from ponder.format import Prompt
from ponder.generate.types import Budget, SamplingParams
from ponder.strategies import voting
from ponder.strategies.base import Scorer, StrategyError, StrategyResult
from ponder.strategies.scorers import RewardModel, resolve_scorer

__all__ = [
    "STRATEGIES", "BATCHED", "StrategyResult", "StrategyError", "RewardModel", "Scorer", "run_strategy",
    "run_batch", "resolve_scorer", "strategy_options",
]  # fmt: skip


def _one(batch_fn: Callable[..., list[StrategyResult]]) -> Callable[..., StrategyResult]:
    """The one-prompt form of a batch strategy."""

    def fn(backend, prompt: str, *, example=None, **kw: Any) -> StrategyResult:
        return batch_fn(backend, [prompt], examples=[example], **kw)[0]

    fn.__doc__ = batch_fn.__doc__
    fn.__name__ = batch_fn.__name__.removesuffix("_batch")
    fn.__wrapped_batch__ = batch_fn  # type: ignore[attr-defined]
    return fn


#: Strategies whose batch form shares generate calls across prompts.
BATCHED: dict[str, Callable[..., list[StrategyResult]]] = {
    "single": voting.single_batch,
    "majority": voting.majority_batch,
    "weighted_majority": voting.weighted_majority_batch,
    "best_of_n": voting.best_of_n_batch,
    "adaptive_majority": voting.adaptive_majority_batch,
}

#: name -> strategy function (backend, prompt, *, n, sampling, budget, task, example, scorer, **options).
STRATEGIES: dict[str, Callable[..., StrategyResult]] = {name: _one(f) for name, f in BATCHED.items()}

_COMMON = ("n", "sampling", "budget", "task", "example", "examples", "scorer")


def _register_more() -> None:
    """The step-wise strategies (imported here: they use the helpers above)."""
    from ponder.strategies import refine, router, search, tools

    STRATEGIES.update({
        "refine": refine.refine, "beam": search.beam, "mcts": search.mcts, "tools": tools.tools,
        "router": router.router,
    })  # fmt: skip


def strategy_options(name: str) -> dict[str, Any]:
    """The strategy-specific options of ``name`` and their defaults (for help text and checks)."""
    fn = _lookup(name)
    target = getattr(fn, "__wrapped_batch__", fn)
    return {p.name: p.default for p in inspect.signature(target).parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name not in _COMMON}


def _lookup(name: str) -> Callable[..., StrategyResult]:
    if not isinstance(name, str) or name not in STRATEGIES:
        raise StrategyError(f"unknown strategy {name!r}; known strategies: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def _check(name: str, n: Any, sampling: Any, budget: Any, options: dict[str, Any]) -> dict[str, Any]:
    _lookup(name)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise StrategyError(f"n must be an int >= 1, got {n!r}")
    if sampling is not None and not isinstance(sampling, SamplingParams):
        raise StrategyError(f"sampling must be a SamplingParams, got {type(sampling).__name__}")
    if budget is not None and not isinstance(budget, Budget):
        raise StrategyError(f"budget must be a Budget, got {type(budget).__name__}")
    valid = strategy_options(name)
    fn = STRATEGIES[name]
    target = getattr(fn, "__wrapped_batch__", fn)
    passes_on = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())
    bad = [] if passes_on else [k for k in options if k not in valid]  # (router checks its inner strategy's)
    if bad:
        raise StrategyError(f"strategy {name!r} has no option {', '.join(map(repr, bad))}; "
                            f"its options: {', '.join(valid) or '(none)'}")
    kw = dict(options)
    if n is not None:
        kw["n"] = n
    return kw


def run_strategy(name: str, backend, prompt: Prompt | str, *, n: int | None = None, sampling: SamplingParams | None = None,
                 budget: Budget | None = None, task=None, example=None, scorer=None, **options: Any) -> StrategyResult:
    """Run strategy ``name`` on one prompt: a ``ponder.format.Prompt`` (``ponder.generate.prompt``),
    or a rendered string for the strategies that need no conversation.

    ``task``/``example`` give answer extraction and the verifier (feedback for refine, the
    "verifier" scorer); ``scorer`` ranks completions (best_of_n, weighted_majority, beam, mcts).
    """
    if not isinstance(prompt, (str, Prompt)):
        raise StrategyError(f"prompt must be a ponder.format.Prompt or a string, got {type(prompt).__name__}")
    kw = _check(name, n, sampling, budget, options)
    return STRATEGIES[name](backend, prompt, sampling=sampling, budget=budget, task=task, example=example,
                            scorer=scorer, **kw)


def run_batch(name: str, backend, prompts: Sequence[Prompt | str], *, n: int | None = None,
              sampling: SamplingParams | None = None, budget: Budget | None = None, task=None,
              examples: Sequence[Any] | None = None, scorer=None, chunk: int = 16, progress: bool = False,
              **options: Any) -> list[StrategyResult]:
    """Run strategy ``name`` on every prompt; results in prompt order.

    ``examples[i]`` goes with ``prompts[i]``. Sampling strategies send ``chunk`` prompts per
    ``generate`` call; ``progress`` shows a rich progress bar over prompts.
    """
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
        raise StrategyError(f"prompts must be a list of prompts, got {type(prompts).__name__}")
    if examples is not None and len(examples) != len(prompts):
        raise StrategyError(f"got {len(examples)} examples for {len(prompts)} prompts; give one per prompt")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise StrategyError(f"chunk must be an int >= 1, got {chunk!r}")
    kw = _check(name, n, sampling, budget, options)
    exs = list(examples) if examples is not None else [None] * len(prompts)
    out: list[StrategyResult] = []
    step = chunk if name in BATCHED else 1
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        job = bar.add_task(f"{name}", total=len(prompts))
        for s in range(0, len(prompts), step):
            ps, es = list(prompts[s:s + step]), exs[s:s + step]
            if name in BATCHED:
                out += BATCHED[name](backend, ps, sampling=sampling, budget=budget, task=task, examples=es,
                                     scorer=scorer, **kw)
            else:
                out.append(STRATEGIES[name](backend, ps[0], sampling=sampling, budget=budget, task=task,
                                            example=es[0], scorer=scorer, **kw))
            bar.advance(job, len(ps))
    return out


_register_more()
