"""Metrics for sampled reasoning: pass@1 with a 95% interval, unbiased pass@k, maj@k.

Notation: a problem has n samples of which c are correct.

* pass@1 = mean over problems of c/n (the expected accuracy of one sample at this temperature).
* pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1):
  1 - C(n-c, k) / C(n, k), the unbiased estimate of "at least one of k samples is correct",
  computed as a stable product. Requires k <= n.
* maj@k: the answer voted most often among the first k samples is correct (ties broken by the
  earliest sample to reach the top count, so the result is deterministic). Samples with no
  answer do not vote; a problem where no sample answers counts as wrong.
* 95% interval: the mean of per-problem scores ± 1.96 · sd/√m over m problems (normal
  approximation; the per-problem score is c/n for pass@1, so sampling noise within a problem is
  averaged first, as in the R1 paper's reporting).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence

from ponder.format import canonical_groups  # noqa: F401  (maj@k pools answers as the strategies do)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples, c correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i): avoids huge binomials
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_answer(answers: Sequence[Hashable | None]) -> Hashable | None:
    """Most frequent non-None answer; ties go to the one that reached the top count first."""
    counts: Counter = Counter()
    best, best_count = None, 0
    for a in answers:
        if a is None:
            continue
        counts[a] += 1
        if counts[a] > best_count:
            best, best_count = a, counts[a]
    return best


def maj_at_k(keys: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> bool:
    """Is the majority answer among the first k samples correct?

    ``keys`` are canonical answer keys (equal answers share a key — see ``canonical_groups``),
    ``correct[i]`` is the verdict of sample i.
    """
    if not 1 <= k <= len(keys):
        raise ValueError(f"maj@k needs 1 <= k <= {len(keys)}, got k={k}")
    winner = majority_answer(keys[:k])
    if winner is None:
        return False
    return next(ok for key, ok in zip(keys[:k], correct[:k]) if key == winner)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """(k/n, low, high): the Wilson score interval of a proportion (95% by default).

    Unlike the normal interval it is never empty at 0/n or n/n: 0/30 gives [0, 0.114]."""
    if n <= 0:
        return (float("nan"),) * 3
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high) with a 95% interval, clipped to [0, 1].

    0/1 values (one sample per problem, maj@k) get the Wilson interval; fractional values (the
    per-problem c/n of pass@1 with n > 1 samples) the normal interval of their mean -- or, when
    every value is the same (a variance of zero, say all 0), Wilson's over the problems, so a
    run that got nothing right is not reported as [0, 0]."""
    m = len(values)
    if m == 0:
        return (float("nan"),) * 3
    mean = sum(values) / m
    if all(v in (0.0, 1.0) for v in values) or len(set(values)) == 1:
        _, lo, hi = wilson(round(mean * m), m)
        return mean, min(lo, mean), max(hi, mean)
    var = sum((v - mean) ** 2 for v in values) / (m - 1)
    half = 1.96 * math.sqrt(var / m)
    return mean, max(0.0, mean - half), min(1.0, mean + half)
