"""Sample and score: the one loop from task examples to judged completions.

    for group in sample_and_score(backend, task, examples, n=4, sampling=sp):
        group[j].completion, group[j].verdict.correct, group[j].prompt.text

Each example's question is rendered for the backend (``ponder.generate.prompt``: the model's
template and thinking decision), generated in batches of ``batch`` examples, and every completion
judged by ``ponder.tasks.judge`` (``score_batch``: one call). Evaluation (which schedules
batches concurrently, with retries), the demo's stage evaluation, budget sweeps,
rejection sampling and the router report all go through it, so they render, split and judge
alike. ``seed_of(batch_index, examples) -> int`` sets each call's seed (default: the sampling's
seed plus the batch index); against an endpoint every example is its own call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Sequence

from ponder.format import Prompt
from ponder.generate.backends import prompt
from ponder.generate.types import Backend, Budget, Completion, GenerationError, SamplingParams


class BatchShapeError(GenerationError):
    """A backend returned other than ``n`` completions per prompt (a bug in the backend, not a
    failed request: no retry helps)."""


@dataclass(frozen=True)
class Scored:
    """One judged sample: the example, its sample index, the prompt (a ``Prompt``, or the text a
    caller sent instead), the completion, the verdict."""

    example: dict
    sample: int
    prompt: Prompt | str
    completion: Completion
    verdict: Any  # ponder.tasks.Verdict
    seed: int | None = None


def score_batch(backend: Backend, task, examples: Sequence[dict], *, n: int = 1,
                sampling: SamplingParams | None = None, budget: Budget | None = None, system: str | None = None,
                template: str = "auto", prompts: Sequence[Any] | None = None, samples: Sequence[int] | None = None,
                generate: Callable[..., list[list[Completion]]] | None = None) -> list[list[Scored]]:
    """One generate call for ``examples``: rendered, generated, judged -- the unit every loop
    schedules (``sample_and_score`` in batches; ``ponder eval`` concurrently, with retries).

    prompts: what to send instead of rendering each example's question (already rendered text or
    ``Prompt`` objects). samples: the sample indices the ``n`` completions stand for (default
    ``0..n-1``; a resumed eval asks only for the missing ones). generate: called as
    ``generate(payloads, n, sampling, budget)`` instead of ``backend.generate`` (retries)."""
    from ponder.tasks import judge

    sampling = sampling or SamplingParams()
    rendered = list(prompts) if prompts is not None else [prompt(backend, ex["prompt"], system) for ex in examples]
    idx = list(samples) if samples is not None else list(range(n))
    payloads = [p.payload if isinstance(p, Prompt) else p for p in rendered]
    groups = (generate or backend.generate)(payloads, len(idx), sampling, budget)
    if len(groups) != len(examples) or any(len(g) != len(idx) for g in groups):
        raise BatchShapeError(f"backend returned {[len(g) for g in groups]} completions for {len(examples)} "
                              f"prompts x n={len(idx)}")
    return [[Scored(ex, j, p, c, judge(task, c, ex, template=template), sampling.seed) for j, c in zip(idx, group)]
            for ex, p, group in zip(examples, rendered, groups)]


def sample_and_score(backend: Backend, task, examples: Iterable[dict], *, n: int = 1,
                     sampling: SamplingParams | None = None, budget: Budget | None = None,
                     system: str | None = None, batch: int = 16, template: str = "auto",
                     seed_of: Callable[[int, Sequence[dict]], int | None] | None = None,
                     prompts: Sequence[Any] | None = None) -> Iterator[list[Scored]]:
    """Yield, per example in order, its ``n`` judged samples (see the module docstring);
    ``prompts``: one per example, sent instead of its rendered question (``score_batch``)."""
    sampling = sampling or SamplingParams()
    per_call = batch if backend.capabilities.local else 1
    exs = list(examples)
    if prompts is not None and len(prompts) != len(exs):
        raise GenerationError(f"{len(prompts)} prompts for {len(exs)} examples")
    for b, start in enumerate(range(0, len(exs), per_call)):
        chunk = exs[start:start + per_call]
        seed = seed_of(b, chunk) if seed_of is not None else (
            None if sampling.seed is None else sampling.seed + b)
        yield from score_batch(backend, task, chunk, n=n, sampling=replace(sampling, seed=seed), budget=budget,
                               system=system, template=template,
                               prompts=None if prompts is None else prompts[start:start + per_call])
