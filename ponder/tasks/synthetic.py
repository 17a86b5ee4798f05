"""Synthetic tasks generated from a seed: multi-digit ``addition`` and ``multiplication``
(Countdown lives in ``countdown.py``; the splits and sampling all tasks share in ``toolkit.py``).

* **Splits and sampling** (``ponder.tasks.toolkit``): one problem in ten is a test problem, by
  a hash of its canonical key, so any train and test sets are disjoint. When the whole problem
  space is small (addition of 1- and 2-digit numbers: at most ``ENUMERATE_LIMIT`` ordered
  pairs) the split is enumerated and shuffled instead: the default size is then capped at what the split
  holds, and explicitly asking for more is an error.
* **Reference reasoning.** ``meta["solution"]`` is the chain of thought a model should write
  inside ``<think>``: short, regular lines meant as SFT targets for a tiny model.
  ``reference_completion(example)`` wraps it with the answer via ``format_completion``.
* **Scoring** depends only on the example (never on the task's options), so rewards can rebuild
  an example from dataset columns and call ``get_task(name).score``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Iterator

from ponder.config import option
from ponder.format import format_completion
from ponder.tasks.base import BaseTask, Example, TaskError, Verdict
from ponder.tasks.toolkit import build_options, check_split, sample_unique, split_of

MAX_DIGITS = 9  # column names below go up to "billions" (a 9-digit sum has 10 columns)
ENUMERATE_LIMIT = 100_000  # problem spaces up to this size are enumerated, not sampled
DEFAULT_SIZES = {"train": 10_000, "test": 500}


# --------------------------------------------------------------------------- scoring


_INT = re.compile(r"[+-]?\d+")
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+")
MAX_ANSWER_CHARS = 100  # int() of a 10k-digit string is slow and pointless


def normalise_integer(text: str) -> str | None:
    """``"1,234."`` → ``"1234"``; None when ``text`` is not an integer.

    Only two liberties are taken: well-formed thousands separators and a trailing full stop.
    """
    t = text.strip()
    t = t[:-1].rstrip() if t.endswith(".") else t
    if _GROUPED.fullmatch(t):
        t = t.replace(",", "")
    return t if _INT.fullmatch(t) else None


def check_integer(answer: str, example: Example) -> Verdict:
    """Exact integer comparison of an extracted answer with ``example["gold"]``.

    Values are compared as integers, so ``0525`` equals ``525``; ``525.0`` is not an integer.
    """
    gold = normalise_integer(str(example["gold"]))
    if gold is None:
        raise TaskError(f"example {example.get('id')!r}: gold {example['gold']!r} is not an integer")
    if len(answer) > MAX_ANSWER_CHARS:
        return Verdict(False, f"answer too long ({len(answer)} characters)", answer[:MAX_ANSWER_CHARS])
    value = normalise_integer(answer)
    if value is None:
        return Verdict(False, f"answer {answer!r} is not an integer", answer)
    if int(value) == int(gold):
        return Verdict(True, "equal", answer)
    return Verdict(False, f"got {int(value)}, expected {int(gold)}", answer)


def reference_completion(example: Example, template: str = "think") -> str:
    """The target completion of an example whose ``meta["solution"]`` is its reasoning (the
    arithmetic tasks): the reasoning in ``<think>``, then the gold answer; ``template`` is "think"
    or "r1-zero" (``ponder.format.format_completion``). Tasks with another kind of solution
    (Countdown) define their own ``reference_completion`` method: call the task's."""
    meta = example["meta"]
    if "solution" not in meta:
        raise TaskError(f"example {example.get('id')!r} has no meta['solution'] to build a reference from")
    return format_completion(meta["solution"], example["gold"], template)


# --------------------------------------------------------------------------- arithmetic

PLACES = (
    "units", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands",
    "millions", "ten-millions", "hundred-millions", "billions",
)  # fmt: skip


def addition_steps(a: int, b: int) -> str:
    """Column addition, right to left, one line per column, then the result.

    ``addition_steps(457, 68)``::

        units: 7+8=15, write 5 carry 1
        tens: 5+6+1=12, write 2 carry 1
        hundreds: 4+0+1=5, write 5
        so 457+68=525
    """
    xs, ys = str(a)[::-1], str(b)[::-1]
    lines, carry = [], 0
    for i in range(max(len(xs), len(ys))):
        x = int(xs[i]) if i < len(xs) else 0
        y = int(ys[i]) if i < len(ys) else 0
        s = x + y + carry
        added = f"{x}+{y}" + (f"+{carry}" if carry else "")
        lines.append(f"{PLACES[i]}: {added}={s}, write {s % 10}" + (" carry 1" if s >= 10 else ""))
        carry = s // 10
    if carry:
        lines.append(f"{PLACES[len(lines)]}: write 1")
    lines.append(f"so {a}+{b}={a + b}")
    return "\n".join(lines)


def multiplication_steps(a: int, b: int) -> str:
    """Long multiplication: one partial product per non-zero digit of ``b``, then a running sum.

    ``multiplication_steps(457, 68)``::

        457*8=3656
        457*60=27420
        3656+27420=31076
        so 457*68=31076
    """
    partials = [
        (f"{d}{'0' * i}", a * int(d) * 10**i) for i, d in enumerate(reversed(str(b))) if d != "0"
    ]
    if not partials:
        partials = [("0", 0)]
    lines = [f"{a}*{m}={p}" for m, p in partials]
    total = partials[0][1]
    for _, p in partials[1:]:
        lines.append(f"{total}+{p}={total + p}")
        total += p
    lines.append(f"so {a}*{b}={a * b}")
    return "\n".join(lines)


@dataclass
class ArithmeticOptions:
    """Options of ``addition`` and ``multiplication``."""

    digits: int | None = option(None, "Shorthand for min_digits = max_digits = digits.")
    min_digits: int = option(1, f"Fewest digits in an operand (difficulty, 1..{MAX_DIGITS}).")
    max_digits: int = option(3, f"Most digits in an operand (difficulty, 1..{MAX_DIGITS}).")
    n_train: int | None = option(None, "Number of train examples (default 10000, or all the split holds if fewer).")
    n_test: int | None = option(None, "Number of test examples (default 500, or all the split holds if fewer).")
    seed: int = option(0, "Sampling seed. The train/test partition does not depend on it.")

    def __post_init__(self) -> None:
        if self.digits is not None:
            self.min_digits = self.max_digits = self.digits
        if not 1 <= self.min_digits <= self.max_digits <= MAX_DIGITS:
            raise TaskError(
                f"digits must satisfy 1 <= min_digits <= max_digits <= {MAX_DIGITS}, "
                f"got {self.min_digits}..{self.max_digits}"
            )
        if (self.n_train or 0) < 0 or (self.n_test or 0) < 0:
            raise TaskError("n_train and n_test must be >= 0")


def _lowest(digits: int) -> int:
    """Smallest number with ``digits`` digits (0 counts as a 1-digit number)."""
    return 0 if digits == 1 else 10 ** (digits - 1)


class _ArithmeticTask(BaseTask):
    """Shared body of addition and multiplication: sampling, examples, scoring."""

    name = ""
    symbol = ""
    Options = ArithmeticOptions
    answer_fallback = "number"  # "57 + 68 = 125" states its answer after the last "="

    def __init__(self, **options: Any) -> None:
        self.options: ArithmeticOptions = build_options(ArithmeticOptions, options, self.name)

    def _apply(self, a: int, b: int) -> int:
        raise NotImplementedError

    def _steps(self, a: int, b: int) -> str:
        raise NotImplementedError

    def key(self, a: int, b: int) -> str:
        """Canonical problem key: commuted operands are the same problem."""
        lo, hi = sorted((a, b))
        return f"{self.name}:{lo},{hi}"

    def example(self, a: int, b: int) -> Example:
        """The example for ``a <op> b``."""
        return {
            "id": f"{self.name}/{a}{self.symbol}{b}",
            "prompt": f"What is {a} {self.symbol} {b}?",
            "gold": str(self._apply(a, b)),
            "meta": {
                "a": a,
                "b": b,
                "digits": max(len(str(a)), len(str(b))),
                "solution": self._steps(a, b),
            },
        }

    def _pairs(self, split: str, n: int | None, rng: random.Random) -> Iterator[tuple[int, int]]:
        """``n`` problems of ``split``; ``n=None``: the default size, capped at what the split holds."""
        lo, hi = self.options.min_digits, self.options.max_digits
        numbers = range(_lowest(lo), 10**hi)
        if len(numbers) ** 2 <= ENUMERATE_LIMIT:
            pairs = [(a, b) for a in numbers for b in numbers if split_of(self.key(a, b)) == split]
            rng.shuffle(pairs)
            # keep one orientation of each problem (3+5 and 5+3 are the same), chosen at random
            seen: set[str] = set()
            distinct = []
            for a, b in pairs:
                if self.key(a, b) not in seen:
                    seen.add(self.key(a, b))
                    distinct.append((a, b))
            pairs = distinct
            if n is None:
                n = min(DEFAULT_SIZES[split], len(pairs))
            if n > len(pairs):
                raise TaskError(
                    f"{self.name}: the {split} split of {lo}..{hi}-digit problems holds only "
                    f"{len(pairs)} problems, {n} requested"
                )
            yield from pairs[:n]
            return

        def draw(r: random.Random) -> tuple[str, tuple[int, int]]:
            # Digits first, then the number: each difficulty level is equally likely.
            da, db = r.randint(lo, hi), r.randint(lo, hi)
            a = r.randint(_lowest(da), 10**da - 1)
            b = r.randint(_lowest(db), 10**db - 1)
            return self.key(a, b), (a, b)

        yield from sample_unique(draw, split, DEFAULT_SIZES[split] if n is None else n, rng, self.name)

    def examples(self, split: str = "test") -> Iterator[Example]:
        """``n_train``/``n_test`` distinct problems of ``split``, in a seed-fixed order."""
        check_split(split, self.name)
        n = self.options.n_train if split == "train" else self.options.n_test
        rng = random.Random(f"{self.name}:{self.options.seed}:{split}")
        for a, b in self._pairs(split, n, rng):
            yield self.example(a, b)

    def check(self, answer: str, example: Example) -> Verdict:
        """Exact integer match of the final answer (``1,234`` and a trailing ``.`` tolerated)."""
        return check_integer(answer, example)

    def reference_completion(self, example: Example, template: str = "think") -> str:
        """The target completion: ``meta["solution"]`` as reasoning, then the gold answer."""
        return reference_completion(example, template)


class AdditionTask(_ArithmeticTask):
    """Multi-digit addition with column-by-column reasoning (difficulty = digits)."""

    name = "addition"
    symbol = "+"

    def _apply(self, a: int, b: int) -> int:
        return a + b

    def _steps(self, a: int, b: int) -> str:
        return addition_steps(a, b)


class MultiplicationTask(_ArithmeticTask):
    """Multi-digit multiplication with partial-product reasoning (difficulty = digits)."""

    name = "multiplication"
    symbol = "*"

    def _apply(self, a: int, b: int) -> int:
        return a * b

    def _steps(self, a: int, b: int) -> str:
        return multiplication_steps(a, b)
