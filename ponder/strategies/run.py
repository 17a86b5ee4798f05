"""Run strategies by name: the ``STRATEGIES`` registry, ``run_strategy`` and ``run_batch``.

Every strategy module registers its strategies here (``@register_strategy("beam")``, or
``register_batched`` for the sampling strategies whose batch form shares ``generate`` calls);
``ponder.strategies`` imports them all. A strategy of your own needs no registration: name it by
dotted path (``mypkg.strategies:vote_twice``), a function ``(backend, prompt, *, n, sampling,
budget, task, example, scorer, **options) -> StrategyResult``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from ponder.format import Prompt
from ponder.generate.types import Budget, SamplingParams
from ponder.registry import Registry, RegistryError
from ponder.strategies.base import StrategyError, StrategyResult

#: name -> strategy function (backend, prompt, *, n, sampling, budget, task, example, scorer, **options).
STRATEGIES: Registry = Registry("strategy")
#: Strategies whose batch form shares generate calls across prompts.
BATCHED: dict[str, Callable[..., list[StrategyResult]]] = {}

_COMMON = ("n", "sampling", "budget", "task", "example", "examples", "scorer")


def register_strategy(name: str):
    """Decorator: register a one-prompt strategy under ``name``."""
    return STRATEGIES.register(name)


def register_batched(name: str):
    """Decorator: register a batch strategy (``(backend, prompts, *, examples, ...) -> list``) and
    its one-prompt form under ``name``."""

    def add(batch_fn: Callable[..., list[StrategyResult]]):
        BATCHED[name] = batch_fn

        def one(backend, prompt, *, example=None, **kw: Any) -> StrategyResult:
            return batch_fn(backend, [prompt], examples=[example], **kw)[0]

        one.__doc__ = batch_fn.__doc__
        one.__name__ = name
        one.__wrapped_batch__ = batch_fn  # type: ignore[attr-defined]
        STRATEGIES.register(name, one)
        return batch_fn

    return add


def _lookup(name: str) -> Callable[..., StrategyResult]:
    if not isinstance(name, str):
        raise StrategyError(f"unknown strategy {name!r}")
    try:
        return STRATEGIES.get(name)
    except RegistryError as e:
        raise StrategyError(str(e).replace("known:", "known strategies:")) from None


def strategy_options(name: str) -> dict[str, Any]:
    """The strategy-specific options of ``name`` and their defaults (for help text and checks)."""
    fn = _lookup(name)
    target = getattr(fn, "__wrapped_batch__", fn)
    return {p.name: p.default for p in inspect.signature(target).parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name not in _COMMON}


def _check(name: str, n: Any, sampling: Any, budget: Any, options: dict[str, Any]) -> dict[str, Any]:
    fn = _lookup(name)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise StrategyError(f"n must be an int >= 1, got {n!r}")
    if sampling is not None and not isinstance(sampling, SamplingParams):
        raise StrategyError(f"sampling must be a SamplingParams, got {type(sampling).__name__}")
    if budget is not None and not isinstance(budget, Budget):
        raise StrategyError(f"budget must be a Budget, got {type(budget).__name__}")
    valid = strategy_options(name)
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


def run_strategy(name: str, backend, prompt: Prompt | str, *, n: int | None = None,
                 sampling: SamplingParams | None = None, budget: Budget | None = None, task=None, example=None,
                 scorer=None, **options: Any) -> StrategyResult:
    """Run strategy ``name`` on one prompt: a ``ponder.format.Prompt`` (``ponder.generate.prompt``),
    or a rendered string for the strategies that need no conversation.

    ``task``/``example`` give answer extraction and the verifier (feedback for refine, the
    "verifier" scorer); ``scorer`` ranks completions (best_of_n, weighted_majority, beam, mcts).
    """
    if not isinstance(prompt, (str, Prompt)):
        raise StrategyError(f"prompt must be a ponder.format.Prompt or a string, got {type(prompt).__name__}")
    kw = _check(name, n, sampling, budget, options)
    return _lookup(name)(backend, prompt, sampling=sampling, budget=budget, task=task, example=example,
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
    fn = _lookup(name)
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        job = bar.add_task(f"{name}", total=len(prompts))
        for s in range(0, len(prompts), step):
            ps, es = list(prompts[s:s + step]), exs[s:s + step]
            if name in BATCHED:
                out += BATCHED[name](backend, ps, sampling=sampling, budget=budget, task=task, examples=es,
                                     scorer=scorer, **kw)
            else:
                out.append(fn(backend, ps[0], sampling=sampling, budget=budget, task=task, example=es[0],
                              scorer=scorer, **kw))
            bar.advance(job, len(ps))
    return out
