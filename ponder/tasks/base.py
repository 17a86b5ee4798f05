"""What a task is: data plus a verifier.

A task yields examples ``{id, prompt, gold, meta}`` and scores a completion against one:
``score(completion, example) -> Verdict``. Rewards (``ponder.rewards.accuracy``) and evaluation
call the same ``score``, so a model is trained and measured against one definition of correct.

``prompt`` is the bare question (no chat template): ``ponder.format.build_prompt`` wraps it for a
model. ``gold`` is a string (for Countdown: the target number; the numbers are in ``meta``).
``meta`` holds whatever the verifier or breakdowns need (difficulty, subject, level, reference
solution, tests) and must be JSON-serialisable so examples survive a round trip through JSONL
and through TRL's dataset columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, TypedDict


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
    """

    correct: bool
    reason: str
    answer: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """The protocol every task implements. ``name`` is its registry name."""

    name: str

    def examples(self, split: str = "test") -> Iterator[Example]:
        """Examples of ``split`` ("train" or "test"), in a fixed order."""
        ...

    def score(self, completion: str, example: Example) -> Verdict:
        """Check ``completion`` (raw model text, any shape ``ponder.format.parse`` accepts)."""
        ...


class TaskError(ValueError):
    """Bad task input (missing file, malformed line, unknown field): the message names it."""
