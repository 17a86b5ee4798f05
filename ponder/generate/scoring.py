"""Sample and score: the one loop from task examples to judged completions.

    for group in sample_and_score(backend, task, examples, n=4, sampling=sp):
        group[j].completion, group[j].verdict.correct, group[j].prompt.text

Each example's question is rendered for the backend (``ponder.generate.prompt``: the model's
template and thinking decision), generated in batches of ``batch`` examples, and every completion
judged by ``ponder.tasks.judge``. Evaluation, the demo's stage evaluation, budget sweeps,
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


@dataclass(frozen=True)
class Scored:
    """One judged sample: the example, its sample index, the prompt, the completion, the verdict."""

    example: dict
    sample: int
    prompt: Prompt
    completion: Completion
    verdict: Any  # ponder.tasks.Verdict
    seed: int | None = None


def sample_and_score(backend: Backend, task, examples: Iterable[dict], *, n: int = 1,
                     sampling: SamplingParams | None = None, budget: Budget | None = None,
                     system: str | None = None, batch: int = 16, template: str = "auto",
                     seed_of: Callable[[int, Sequence[dict]], int | None] | None = None) -> Iterator[list[Scored]]:
    """Yield, per example in order, its ``n`` judged samples (see the module docstring)."""
    from ponder.tasks import judge

    sampling = sampling or SamplingParams()
    per_call = batch if backend.capabilities.local else 1
    exs = list(examples)
    for b, start in enumerate(range(0, len(exs), per_call)):
        chunk = exs[start:start + per_call]
        prompts = [prompt(backend, ex["prompt"], system) for ex in chunk]
        seed = seed_of(b, chunk) if seed_of is not None else (
            None if sampling.seed is None else sampling.seed + b)
        groups = backend.generate([p.payload for p in prompts], n=n, sampling=replace(sampling, seed=seed),
                                  budget=budget)
        if len(groups) != len(chunk) or any(len(g) != n for g in groups):
            raise GenerationError(f"backend returned {[len(g) for g in groups]} completions for {len(chunk)} "
                                  f"prompts x n={n}")
        for ex, p, group in zip(chunk, prompts, groups):
            yield [Scored(ex, j, p, c, judge(task, c, ex, template=template), seed) for j, c in enumerate(group)]
