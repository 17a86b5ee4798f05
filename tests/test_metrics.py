"""Metric known-answer tests: values computed by hand, not by the code under test."""

import math

import pytest

from ponder.evaluate.metrics import canonical_groups, maj_at_k, majority_answer, mean_ci, pass_at_k, wilson


@pytest.mark.parametrize(
    "n,c,k,want",
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (4, 1, 1, 0.25),  # pass@1 = c/n
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (10, 3, 8, 1.0),  # n - c < k: every 8-subset holds a correct one
        (100, 0, 10, 0.0),
    ],
)
def test_pass_at_k_known_values(n, c, k, want):
    assert math.isclose(pass_at_k(n, c, k), want, rel_tol=1e-12)


def test_pass_at_k_matches_binomial_form():
    for n in range(1, 12):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert math.isclose(pass_at_k(n, c, k), exact, abs_tol=1e-12)


@pytest.mark.parametrize("n,c,k", [(3, 4, 1), (3, 1, 4), (3, 1, 0), (3, -1, 1)])
def test_pass_at_k_rejects_bad_input(n, c, k):
    with pytest.raises(ValueError, match="pass@k"):
        pass_at_k(n, c, k)


def test_majority_ties_and_abstentions():
    assert majority_answer(["a", "b", "b", "a"]) == "b"  # b reaches 2 first
    assert majority_answer([None, None, "x"]) == "x"
    assert majority_answer([None, None]) is None


def test_maj_at_k():
    keys = [1, 2, 2, 1, 1]
    correct = [True, False, False, True, True]
    assert maj_at_k(keys, correct, 1) is True
    assert maj_at_k(keys, correct, 3) is False  # 2 wins 2-1
    assert maj_at_k(keys, correct, 5) is True  # 1 wins 3-2
    assert maj_at_k([None, None], [False, False], 2) is False
    with pytest.raises(ValueError):
        maj_at_k(keys, correct, 6)


def test_canonical_groups_uses_the_equivalence():
    eq = lambda a, b: float(eval(a)) == float(eval(b))  # test-only: trusted literals
    assert canonical_groups(["1/2", "0.5", "2", None, " "], eq) == [0, 0, 1, None, None]


def test_mean_ci():
    values = [0.75, 0.25] * 50  # fractional scores (c/n per problem): the normal interval of the mean
    mean, lo, hi = mean_ci(values)
    assert mean == 0.5
    half = 1.96 * math.sqrt(0.0625 * 100 / 99 / 100)
    assert math.isclose(hi - mean, half) and math.isclose(mean - lo, half)
    assert mean_ci([1.0, 0.5, 1.0, 0.5])[2] <= 1.0  # clipped to [0, 1]
    assert all(math.isnan(x) for x in mean_ci([]))


def test_binary_scores_get_the_wilson_interval():
    # Wilson score interval, 95%: 0/30 -> [0, 0.1135]; 15/30 -> [0.3315, 0.6685] (hand values)
    assert mean_ci([0.0] * 30) == pytest.approx((0.0, 0.0, 0.11352), abs=1e-4)
    assert mean_ci([1.0, 0.0] * 15) == pytest.approx((0.5, 0.33153, 0.66847), abs=1e-4)
    assert wilson(30, 30)[1] == pytest.approx(0.88648, abs=1e-4) and wilson(30, 30)[2] == 1.0
    # every problem at the same fraction (no spread): Wilson over the problems, never zero-width
    mean, lo, hi = mean_ci([0.5] * 10)
    assert lo < 0.5 < hi
