"""Sample-and-aggregate strategies: single, majority, weighted_majority, best_of_n, adaptive_majority.

Each is written for a batch of prompts (one ``generate`` call serves them all, which is what
makes evaluation fast) and wrapped for one prompt in ``ponder.strategies``. Voting pools
equivalent answers (``1/2`` and ``0.5`` with ``equal="math"``) through
``ponder.format.canonical_groups``; samples with no answer do not vote; ties go to
the answer that reached the top count first (as ``maj@k`` in evaluation).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from ponder.format import canonical_groups
from ponder.generate.types import Budget, Completion, SamplingParams
from ponder.strategies.base import (
    StrategyError,
    StrategyResult,
    answer_of,
    check_float,
    check_int,
    equality,
    payload,
    result,  # fmt: skip
    seeded,
    sigmoid,
)
from ponder.strategies.run import register_batched
from ponder.strategies.scorers import resolve_scorer, scores


def examples_for(prompts: Sequence[str], examples: Sequence[Any] | None) -> list[Any]:
    """One task example per prompt (None each when not given); another count is an error."""
    if examples is None:
        return [None] * len(prompts)
    if len(examples) != len(prompts):
        raise StrategyError(f"got {len(examples)} examples for {len(prompts)} prompts; give one per prompt")
    return list(examples)


def generate_groups(backend, prompts, n, sampling, budget, **kw) -> list[list[Completion]]:
    """``n`` completions per prompt; a backend that returns another shape is an error."""
    if not prompts:
        return []
    groups = backend.generate([payload(p) for p in prompts], n=n, sampling=sampling, budget=budget, **kw)
    if len(groups) != len(prompts) or any(len(g) != n for g in groups):
        raise StrategyError(f"backend returned {[len(g) for g in groups]} completions for {len(prompts)} "
                            f"prompts x n={n}")
    return groups


def vote(answers: list[str | None], weights: list[float] | None, equal) -> tuple[int | None, list[int | None], dict]:
    """Pool equivalent answers and pick the heaviest group.

    Returns (index of the first sample of the winning group or None, group key per sample,
    {representative answer: total weight}). Ties go to the group that reached the top first.
    """
    keys = canonical_groups(answers, equal)
    w = weights if weights is not None else [1.0] * len(answers)
    totals: dict[int, float] = {}
    best, best_w, first = None, -math.inf, {}
    for i, k in enumerate(keys):
        if k is None:
            continue
        first.setdefault(k, i)
        totals[k] = totals.get(k, 0.0) + w[i]
        if totals[k] > best_w:
            best, best_w = k, totals[k]
    votes = {answers[first[k]]: totals[k] for k in totals}
    return (first[best] if best is not None else None), keys, votes


def _aggregate(strategy: str, prompt: str, comps: list[Completion], task, example, equal,
               weights: list[float] | None = None, **trace: Any) -> StrategyResult:
    answers = [answer_of(c, task, example) for c in comps]
    chosen, keys, votes = vote(answers, weights, equal)
    return result(strategy, comps[chosen] if chosen is not None else (comps[0] if comps else None), comps,
                  answers[chosen] if chosen is not None else None, chosen=chosen if chosen is not None else 0,
                  answers=answers, keys=keys, votes=votes, **trace)  # fmt: skip


# --------------------------------------------------------------------------- batch strategies


@register_batched("single")
def single_batch(backend, prompts, *, n: int = 1, sampling: SamplingParams | None = None,
                 budget: Budget | None = None, task=None, examples=None, scorer=None) -> list[StrategyResult]:
    """One sample per prompt: the baseline."""
    if n != 1:
        raise StrategyError(f"strategy 'single' draws one sample (n=1), got n={n}; use majority or best_of_n")
    exs = examples_for(prompts, examples)
    out = []
    for p, g, ex in zip(prompts, generate_groups(backend, prompts, 1, sampling, budget), exs):
        out.append(result("single", g[0], g, answer_of(g[0], task, ex), chosen=0))
    return out


@register_batched("majority")
def majority_batch(backend, prompts, *, n: int = 8, sampling=None, budget=None, task=None, examples=None,
                   scorer=None, equal: str | Callable = "math") -> list[StrategyResult]:
    """Self-consistency: n samples, the most frequent (equivalence-pooled) answer wins."""
    if scorer is not None:
        raise StrategyError("majority does not use a scorer; use weighted_majority or best_of_n")
    eq = equality(equal)
    exs = examples_for(prompts, examples)
    groups = generate_groups(backend, prompts, n, sampling, budget)
    return [_aggregate("majority", p, g, task, ex, eq) for p, g, ex in zip(prompts, groups, exs)]


@register_batched("weighted_majority")
def weighted_majority_batch(backend, prompts, *, n: int = 8, sampling=None, budget=None, task=None,
                            examples=None, scorer=None, equal: str | Callable = "math") -> list[StrategyResult]:
    """Each sample votes with a weight: exp(mean log-prob) by default, else the scorer's score.

    Scores from a scorer are used as weights when all are >= 0, else squashed by a sigmoid.
    """
    eq = equality(equal)
    exs = examples_for(prompts, examples)
    groups = generate_groups(backend, prompts, n, sampling, budget)
    out = []
    for p, g, ex in zip(prompts, groups, exs):
        s = scores(resolve_scorer(scorer, task, ex), p, g)
        if scorer is None or scorer == "logprob":
            w = [math.exp(x) if x > -math.inf else 0.0 for x in s]  # geometric-mean token probability
        else:
            w = s if all(x >= 0 for x in s) else [sigmoid(x) for x in s]
        out.append(_aggregate("weighted_majority", p, g, task, ex, eq, w, vote_weights=w, scores=s))
    return out


@register_batched("best_of_n")
def best_of_n_batch(backend, prompts, *, n: int = 8, sampling=None, budget=None, task=None, examples=None,
                    scorer=None) -> list[StrategyResult]:
    """n samples, keep the one the scorer ranks highest (ties: the earliest)."""
    exs = examples_for(prompts, examples)
    groups = generate_groups(backend, prompts, n, sampling, budget)
    out = []
    for p, g, ex in zip(prompts, groups, exs):
        s = scores(resolve_scorer(scorer, task, ex), p, g)
        best = max(range(len(g)), key=lambda i: (s[i], -i))
        out.append(result("best_of_n", g[best], g, answer_of(g[best], task, ex), chosen=best, scores=s,
                          scorer=scorer if isinstance(scorer, str) or scorer is None else type(scorer).__name__))
    return out


def leader_confidence(lead: int, second: int) -> float:
    """P(the leader's true vote share exceeds the runner-up's) under a uniform prior.

    The Beta stopping rule of Adaptive-Consistency (Aggarwal et al. 2023): with v1, v2 votes,
    p ~ Beta(v1 + 1, v2 + 1) and the answer is P(p > 1/2). For integer parameters
    P(Beta(a, b) > 1/2) = P(Binomial(a + b - 1, 1/2) <= a - 1), computed exactly.
    """
    a, b = lead + 1, second + 1
    m = a + b - 1
    return sum(math.comb(m, j) for j in range(a)) / 2**m


@register_batched("adaptive_majority")
def adaptive_majority_batch(backend, prompts, *, n: int = 16, sampling=None, budget=None, task=None,
                            examples=None, scorer=None, equal: str | Callable = "math", batch: int = 4,
                            confidence: float | None = 0.95, min_samples: int | None = None) -> list[StrategyResult]:
    """Majority voting that samples ``batch`` at a time and stops a prompt once its vote is decided.

    Decided means either the leader cannot be overtaken by the samples left of ``n`` (exact:
    the result then equals majority@n on the same samples), or, when ``confidence`` is set,
    ``leader_confidence`` reaches it after at least ``min_samples`` votes (default: ``batch``).
    Undecided prompts of a batch are sampled together, one ``generate`` call per round.
    """
    if scorer is not None:
        raise StrategyError("adaptive_majority does not use a scorer")
    check_int("batch", batch)
    if confidence is not None:
        check_float("confidence", confidence, 0.5, 1.0)
    min_samples = batch if min_samples is None else check_int("min_samples", min_samples)
    eq = equality(equal)
    exs = examples_for(prompts, examples)
    comps: list[list[Completion]] = [[] for _ in prompts]
    answers: list[list[str | None]] = [[] for _ in prompts]
    why: list[str | None] = [None] * len(prompts)
    rounds = 0
    while True:
        active = [i for i in range(len(prompts)) if why[i] is None]
        if not active:
            break
        k = min(batch, n - len(comps[active[0]]))  # every active prompt has the same sample count
        groups = generate_groups(backend, [prompts[i] for i in active], k, seeded(sampling, rounds), budget)
        rounds += 1
        for i, g in zip(active, groups):
            comps[i] += g
            answers[i] += [answer_of(c, task, exs[i]) for c in g]
            counts = sorted((v for v in _counts(answers[i], eq).values()), reverse=True) + [0, 0]
            left = n - len(comps[i])
            if left == 0:
                why[i] = "budget"
            elif counts[0] - counts[1] >= left and counts[0] > 0:
                why[i] = "decided"  # ties go to the earlier leader, so >= suffices
            elif (confidence is not None and len(comps[i]) >= min_samples and counts[0] > 0
                  and leader_confidence(counts[0], counts[1]) >= confidence):
                why[i] = "confident"
    out = []
    for i, p in enumerate(prompts):
        used = sum(c.reasoning_tokens + c.answer_tokens for c in comps[i])
        full_est = round(used / len(comps[i]) * n)
        out.append(_aggregate("adaptive_majority", p, comps[i], task, exs[i], eq, samples_used=len(comps[i]), n=n,
                              stopped=why[i], tokens_full_estimate=full_est, tokens_saved=full_est - used))
    return out


def _counts(answers: list[str | None], eq) -> dict[int, int]:
    counts: dict[int, int] = {}
    for k in canonical_groups(answers, eq):
        if k is not None:
            counts[k] = counts.get(k, 0) + 1
    return counts
