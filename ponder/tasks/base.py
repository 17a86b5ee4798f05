"""What a task is: data plus a verifier, and the one judge of a completion.

A task yields examples ``{id, prompt, gold, meta}`` and declares how an answer is checked:
``extract(answer_text) -> str | None`` (the final answer of an answer part; by default the rules
of ``ponder.format.final_answer`` with the task's ``answer_fallback``) and
``check(answer, example) -> Verdict`` (the answer against the gold). ``judge(task, completion,
example)`` puts the two behind the format contract -- parse, answer part, guards -- and is the
one definition of "correct": the ``accuracy`` reward, evaluation, rejection sampling and the
strategies all call it (``Task.score`` is the same judge).

``prompt`` is the bare question (no chat template): ``ponder.format.render`` wraps it for a
model. ``gold`` is a string (for Countdown: the target number; the numbers are in ``meta``).
``meta`` holds whatever the verifier or breakdowns need (difficulty, subject, level, reference
solution, tests) and must be JSON-serialisable so examples survive a round trip through JSONL
and through TRL's dataset columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, TypedDict

from ponder.format import ANSWER_OPEN, canonical, final_answer, parse, statements
from ponder.format.parse import Start


class Example(TypedDict):
    id: str
    prompt: str
    gold: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """The result of checking one completion.

    correct: the final answer is right.
    reason: why, in a few words ("equal", "no answer found", "uses 7 which is not available", …).
    answer: the extracted final answer (None when none was found).
    details: extra facts (the extraction rule, whether the think block closed, …).
    """

    correct: bool
    reason: str
    answer: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class TaskError(ValueError):
    """Bad task input (missing file, malformed line, unknown field): the message names it."""


class Task(Protocol):
    """The protocol every task implements (``BaseTask`` supplies the defaults)."""

    name: str
    answer_fallback: str | None  # ponder.format.FALLBACKS name used when no statement is found
    needs_subprocess: bool  # its check waits on a subprocess: batches are judged in threads

    def examples(self, split: str = "test") -> Iterator[Example]:
        """Examples of ``split`` ("train" or "test"), in a fixed order."""
        ...

    def extract(self, answer_text: str) -> str | None:
        """The final answer of an answer part (never the reasoning), or None."""
        ...

    def check(self, answer: str, example: Example) -> Verdict:
        """``answer`` (already extracted) against the example's gold."""
        ...

    def score(self, completion: Any, example: Example) -> Verdict:
        """``judge(self, completion, example)``."""
        ...


class BaseTask:
    """Defaults for a task: extraction by ``ponder.format.final_answer`` with the task's
    ``answer_fallback``, the same-form conflict guard on, no subprocess, and ``score`` = judge."""

    name = ""
    answer_fallback: str | None = None
    needs_subprocess = False
    conflict_guard = True  # several disagreeing statements of one form make the answer wrong
    nothing_found = "no answer found"  # the verdict's reason when extract finds nothing

    def extract(self, answer_text: str) -> str | None:
        found = final_answer(answer_text, self.answer_fallback)
        return found.value if found else None

    def check(self, answer: str, example: Example) -> Verdict:  # pragma: no cover - abstract
        raise NotImplementedError

    def gold_verifiable(self, gold: str) -> bool:
        """Whether ``check`` can read this gold at all (rewards give None where it cannot)."""
        return True

    def reference_completion(self, example: Example, template: str = "think") -> str:
        """A correct completion for ``example`` (pretraining and SFT data); tasks with reference
        reasoning override it."""
        raise TaskError(f"task {self.name!r} has no reference completions")

    def score(self, completion: Any, example: Example) -> Verdict:
        return judge(self, completion, example)


# --------------------------------------------------------------------------- the judge


def _text_and_start(completion: Any, start: Start | bool | None) -> tuple[str, Start | bool | None, str | None]:
    """``(text, start, finish_reason)`` of a string or a ``Completion``-like object (``text``,
    ``prefilled``, ``finish_reason`` attributes; ``ponder.generate.Completion``)."""
    if isinstance(completion, str):
        return completion, ("plain" if start is None else start), None
    text = getattr(completion, "text", None)
    if not isinstance(text, str):
        raise TaskError(f"a completion must be a string or have a text attribute, got {type(completion).__name__}")
    if start is None:
        start = getattr(completion, "prefilled", False)
    return text, start, getattr(completion, "finish_reason", None)


def conflicting(answer_text: str, equal=None) -> list[str] | None:
    """The disagreeing values when the answer part states its final answer several times in one
    form (two ``<answer>`` blocks, two boxes, two ``####`` lines) with different values, else None.

    A later statement in *another* form is a restatement and is not a conflict (extraction takes
    the last statement). ``equal(a, b)``: value equivalence (default ``math_equal``).
    """
    by_rule: dict[str, list[str]] = {}
    for s in statements(answer_text):
        by_rule.setdefault(s.rule, []).append(s.value)
    for values in by_rule.values():
        distinct = list(dict.fromkeys(canonical(v) for v in values))
        if len(distinct) < 2:
            continue
        if equal is None:
            from ponder.verify.math import math_equal as equal  # lazy: sympy is slow to import
        if any(not equal(distinct[0], other) for other in distinct[1:]):
            return values
    return None


def judge(task: Task, completion: Any, example: Example, *, start: Start | bool | None = None,
          finish_reason: str | None = None, template: str = "auto") -> Verdict:
    """The verdict on one completion -- the one definition of correct.

    ``completion``: a string (``start`` default "plain") or a ``Completion`` (its ``prefilled``
    and ``finish_reason`` are used). Steps: ``parse`` -> ``Parsed.answer_text`` (never the
    reasoning; see there for an unclosed think block) -> guards -> ``task.extract`` ->
    ``task.check``. Guards: with ``template="r1-zero"`` only an ``<answer>`` block counts; several
    disagreeing final answers of one form are wrong (``conflicting``) unless the task turns the
    guard off. ``details`` records the think state and the extraction.
    """
    text, start, finish = _text_and_start(completion, start)
    finish = finish_reason or finish
    p = parse(text, start)
    part = p.answer_text(finish)
    details = {"think_closed": p.think_closed, "unclosed_prefill": p.unclosed_prefill}
    nothing = getattr(task, "nothing_found", "no answer found")
    if not part.strip():
        why = ("the think block never closed" if p.thinking and not p.think_closed else "empty answer")
        return Verdict(False, f"{nothing} ({why})", None, details)
    if template == "r1-zero" and ANSWER_OPEN not in part:
        return Verdict(False, "no <answer> block (r1-zero template)", None, details)
    if getattr(task, "conflict_guard", True):
        clash = conflicting(part)
        if clash:
            return Verdict(False, f"conflicting final answers: {' | '.join(v[:30] for v in clash)}", None, details)
    answer = task.extract(part)
    if answer is None:
        return Verdict(False, nothing, None, details)
    v = task.check(answer, example)
    return Verdict(v.correct, v.reason, v.answer if v.answer is not None else answer, {**details, **v.details})
