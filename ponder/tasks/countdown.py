"""Countdown: combine the given numbers with + - * / to reach a target (the TinyZero task).

Rules. By default every given number must be used **exactly once** (TinyZero's rule, the
usual RL benchmark); with ``use_all=false`` each number may be used **at most once**
(the TV game's rule). The rule is stored in each example's ``meta["use_all"]`` so scoring
follows the example, not the task's options. Any valid equation is correct, not just the
reference one; fractional intermediate values are allowed as long as the result is exact
(``8/3*3`` reaches 8).

Generation. Draw 3–4 numbers in 1..``max_number``, combine them at random into an expression
tree whose intermediate values are positive integers (``-`` only from the larger number,
``/`` only when exact), and take its value as the target if it lies in 1..``max_target``.
So a solution always exists: ``meta["solution"]``, written with minimal parentheses.

Scoring. The final answer (``ponder.format.final_answer``, else the last line of the
answer part, since equations are often longer than a "short bare answer") may be an
expression (``(25-5)*4``) or an equation with one side a number (``(25-5)*4 = 80``,
``80 = (25-5)*4``). It goes through ``ponder.tasks.safe_eval`` (a whitelist over integers,
+ - * /, unary minus and parentheses, exact fractions, 200-character cap) -- model text is
never passed to ``eval``. The numbers used are then checked as a multiset against the given
numbers. ``×``, ``÷``, ``−``, ``\\times``, ``\\div`` and ``\\cdot`` are read as operators.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

from ponder.config import option
from ponder.format import final_answer, format_completion
from ponder.tasks import safe_eval
from ponder.tasks.base import BaseTask, Example, TaskError, Verdict
from ponder.tasks.toolkit import build_options, check_split, sample_unique

# Precedence for printing: a child needs parentheses when it binds less tightly than its
# position requires. Exact arithmetic makes a*(b/c) == a*b/c and a+(b-c) == a+b-c, so only
# the right side of - and / (and sums under * or /) need them.
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_OPERATOR_SPELLINGS = {
    "\\times": "*", "\\cdot": "*", "\\div": "/", "×": "*", "·": "*", "÷": "/", "−": "-",
    "\\left(": "(", "\\right)": ")", "\\(": "", "\\)": "", "$": "",
}  # fmt: skip


@dataclass
class CountdownOptions:
    """Options of ``countdown``."""

    min_numbers: int = option(3, "Fewest given numbers (difficulty).")
    max_numbers: int = option(4, "Most given numbers (difficulty).")
    max_number: int = option(99, "Given numbers are drawn from 1..max_number.")
    max_target: int = option(100, "Targets lie in 1..max_target.")
    use_all: bool = option(True, "True: every number exactly once (TinyZero). False: each at most once.")
    n_train: int = option(10_000, "Number of train examples.")
    n_test: int = option(500, "Number of test examples.")
    seed: int = option(0, "Sampling seed. The train/test partition does not depend on it.")

    def __post_init__(self) -> None:
        if not 2 <= self.min_numbers <= self.max_numbers <= 8:
            raise TaskError(f"need 2 <= min_numbers <= max_numbers <= 8, got {self.min_numbers}..{self.max_numbers}")
        if self.max_number < 2 or self.max_target < 1:
            raise TaskError("max_number must be >= 2 and max_target >= 1")
        if self.n_train < 0 or self.n_test < 0:
            raise TaskError("n_train and n_test must be >= 0")


def _wrap(text: str, prec: int, need: int) -> str:
    return f"({text})" if prec < need else text


def random_expression(values: list[int], rng: random.Random) -> tuple[int, str]:
    """Combine ``values`` at random into one expression; returns (value, text).

    Every intermediate value is a positive integer, as in the game.
    """
    items = [(v, str(v), 3) for v in values]  # (value, text, precedence of its top operator)
    while len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        (a, ta, pa), (b, tb, pb) = items[i], items[j]
        if a < b:  # larger first, so "-" stays positive and "/" can be exact
            (a, ta, pa), (b, tb, pb) = (b, tb, pb), (a, ta, pa)
        ops = ["+", "*"] + (["-"] if a != b else []) + (["/"] if b > 1 and a % b == 0 else [])
        op = rng.choice(ops)
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]
        p = _PREC[op]
        left = _wrap(ta, pa, p)
        right = _wrap(tb, pb, p + 1 if op in "-/" else p)
        items = [it for k, it in enumerate(items) if k not in (i, j)] + [(value, f"{left}{op}{right}", p)]
    value, text, _ = items[0]
    return value, text


def countdown_reasoning(solution: str, target: int) -> str:
    """Reference reasoning: the goal, the construction's steps, the found equation.

    ``countdown_reasoning("(25-5)*4", 80)``::

        target 80
        25-5=20
        20*4=80
        found (25-5)*4=80
    """
    lines = [f"target {target}"] + safe_eval.steps(safe_eval.parse_expression(solution))
    lines.append(f"found {solution}={target}")
    return "\n".join(lines)


def _normalise(text: str) -> str:
    for spelling, op in _OPERATOR_SPELLINGS.items():
        text = text.replace(spelling, op)
    text = text.strip()
    return text[:-1].rstrip() if text.endswith(".") else text


def _times(k: int) -> str:
    return {1: "once", 2: "twice"}.get(k, f"{k} times")


def score_equation(answer: str, numbers: list[int], target: int, use_all: bool = True) -> Verdict:
    """Check one Countdown answer (an expression or ``expression = number``)."""
    text = _normalise(answer)
    sides = text.split("=")
    if len(sides) > 2:
        return Verdict(False, "not a single equation (write one expression, e.g. (25-5)*4 = 80)", answer)
    try:
        nodes = [safe_eval.parse_expression(s) for s in sides]
    except safe_eval.ExpressionError as e:
        return Verdict(False, str(e), answer)
    stated: ast.expr | None = None
    expr = nodes[0]
    if len(nodes) == 2:
        lhs, rhs = nodes
        if safe_eval.is_number(lhs) and not safe_eval.is_number(rhs):
            expr, stated = rhs, lhs
        elif safe_eval.is_number(rhs):
            expr, stated = lhs, rhs
        else:
            return Verdict(False, "both sides of '=' are expressions; write expression = number", answer)
    used, given = Counter(safe_eval.numbers_in(expr)), Counter(numbers)
    details: dict[str, Any] = {"numbers_used": safe_eval.numbers_in(expr)}
    extra = used - given
    if extra:
        n = next(iter(extra))  # report the first offending number, in the order written
        if n not in given:
            return Verdict(False, f"uses {n} which is not available", answer, details)
        return Verdict(False, f"uses {n} {_times(used[n])} but it is given {_times(given[n])}", answer, details)
    missing = sorted((given - used).elements())
    if use_all and missing:
        unused = ", ".join(map(str, missing))
        return Verdict(False, f"does not use {unused} (every number must be used exactly once)", answer, details)
    try:
        value = safe_eval.evaluate_node(expr)
    except safe_eval.ExpressionError as e:
        return Verdict(False, str(e), answer, details)
    details["value"] = safe_eval.fmt(value)
    if value != target:
        return Verdict(False, f"evaluates to {safe_eval.fmt(value)}, not {target}", answer, details)
    if stated is not None:
        claim = safe_eval.evaluate_node(stated)
        if claim != value:
            reason = f"states {safe_eval.fmt(claim)} but the expression evaluates to {target}"
            return Verdict(False, reason, answer, details)
    return Verdict(True, f"reaches {target}", answer, details)


class CountdownTask(BaseTask):
    """Reach a target from 3–4 numbers with + - * / (TinyZero's Countdown)."""

    name = "countdown"
    Options = CountdownOptions
    nothing_found = "no equation found"

    def __init__(self, **options: Any) -> None:
        self.options: CountdownOptions = build_options(CountdownOptions, options, self.name)

    @staticmethod
    def key(numbers: list[int], target: int) -> str:
        """Canonical problem key: the multiset of numbers and the target."""
        return f"countdown:{','.join(map(str, sorted(numbers)))}={target}"

    def example(self, numbers: list[int], target: int, solution: str, use_all: bool) -> Example:
        """The example for ``numbers`` → ``target`` (numbers shown in the given order)."""
        rule = "each number exactly once" if use_all else "each number at most once"
        return {
            "id": f"countdown/{'-'.join(map(str, sorted(numbers)))}/{target}",
            "prompt": (
                f"Using the numbers {numbers}, create an equation that equals {target}. "
                f"You can use +, -, *, / and parentheses, using {rule}."
            ),
            "gold": str(target),
            "meta": {
                "numbers": list(numbers),
                "target": target,
                "solution": solution,
                "use_all": use_all,
                "difficulty": len(numbers),
            },
        }

    def _draw(self, rng: random.Random) -> tuple[str, tuple[list[int], int, str]] | None:
        o = self.options
        numbers = [rng.randint(1, o.max_number) for _ in range(rng.randint(o.min_numbers, o.max_numbers))]
        chosen = numbers if o.use_all else rng.sample(numbers, rng.randint(2, len(numbers)))
        target, solution = random_expression(chosen, rng)
        if not 1 <= target <= o.max_target:
            return None
        return self.key(numbers, target), (numbers, target, solution)

    def examples(self, split: str = "test") -> Iterator[Example]:
        """``n_train``/``n_test`` distinct problems of ``split``, in a seed-fixed order."""
        check_split(split, self.name)
        n = self.options.n_train if split == "train" else self.options.n_test
        rng = random.Random(f"{self.name}:{self.options.seed}:{split}")
        for numbers, target, solution in sample_unique(self._draw, split, n, rng, self.name):
            yield self.example(numbers, target, solution, self.options.use_all)

    def extract(self, answer_text: str) -> str | None:
        """The stated final answer, else the last line (equations are longer than bare answers)."""
        found = final_answer(answer_text)
        if found is not None and found.rule != "bare":
            return found.value
        lines = [ln for ln in answer_text.splitlines() if ln.strip()]
        return lines[-1].strip() if lines else None

    def check(self, answer: str, example: Example) -> Verdict:
        """Any equation over the given numbers that reaches the target is correct."""
        meta = example.get("meta") or {}
        numbers = meta.get("numbers")
        where = f"countdown example {example.get('id')!r}"
        if not isinstance(numbers, list) or not all(isinstance(n, int) for n in numbers):
            raise TaskError(f"{where}: meta['numbers'] must be a list of integers")
        try:
            target = int(example["gold"])
        except (TypeError, ValueError):
            raise TaskError(f"{where}: gold {example['gold']!r} is not an integer") from None
        return score_equation(answer, numbers, target, bool(meta.get("use_all", True)))

    def reference_completion(self, example: Example, template: str = "think") -> str:
        """Construction steps as reasoning, then ``solution = target`` as the answer."""
        meta = example["meta"]
        reasoning = countdown_reasoning(meta["solution"], int(example["gold"]))
        return format_completion(reasoning, f"{meta['solution']} = {example['gold']}", template)

