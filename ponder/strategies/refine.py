"""refine: generate, get external feedback from the verifier or tests, revise — up to r rounds.

The feedback is external (not the model's self-critique, which Huang et al. 2024, "Large
Language Models Cannot Self-Correct Reasoning Yet", found does not help): a function
``feedback(completion) -> str | None`` where None accepts the completion. By default it is the
task's verdict on ``example``: for code, the failing test and its output ("assert f(3) == 2
failed: got 1"); for math, "Your answer X is wrong." (this uses the gold answer, so on math it
is an oracle loop, the setting of Reflexion-style retries; with code tests it is gold-free when
the tests are the visible ones).

Each revision prompt is the previous prompt, the previous completion (its think block closed)
and ``revise_template`` with the feedback, ending in ``<think>`` when the original prompt did.
"""

from __future__ import annotations

from typing import Any, Callable

from ponder.format import THINK_CLOSE, THINK_OPEN
from ponder.generate.types import Completion, prefilled_think
from ponder.strategies.base import StrategyError, answer_of, check_int, result, scoring_text, seeded

DEFAULT_REVISE = "\nUser: {feedback} Think again and give a corrected answer.\nAssistant: "


def task_feedback(task: Any, example: Any) -> Callable[[Completion], str | None]:
    """Feedback from the task's verdict: None when correct, else what failed."""

    def fb(c: Completion) -> str | None:
        v = task.score(scoring_text(c), example)
        if v.correct:
            return None
        if v.answer is None:
            return f"Your reply has no final answer ({v.reason})."
        tests = v.details.get("tests")
        if isinstance(tests, list) and tests:  # code: quote the first failing test's output
            failing = [t for t in tests if isinstance(t, dict) and not t.get("passed")]
            first = failing[0] if failing else {}
            what = str(first.get("detail") or first.get("reason") or v.details.get("detail") or v.reason)
            return f"Your code fails {len(failing)} of {len(tests)} tests. First failure: {what[:500]}"
        return f"Your answer {v.answer} is wrong."

    return fb


def _closed(c: Completion, prompt: str) -> str:
    """The completion as context for the next round: its think block closed, if it was open."""
    text = c.text
    if (prefilled_think(prompt) or THINK_OPEN in text) and THINK_CLOSE not in text:
        text += "\n" + THINK_CLOSE
    return text


def refine(backend, prompt: str, *, n: int | None = None, sampling=None, budget=None, task=None, example=None,
           scorer=None, rounds: int = 2, feedback: Callable[[Completion], str | None] | None = None,
           revise_template: str = DEFAULT_REVISE) -> Any:
    """Generate ``n`` (default 1) candidates, check them in order with external feedback, stop at
    the first accepted; else revise the first with its feedback, up to ``rounds`` times."""
    n = 1 if n is None else check_int("n", n)
    if scorer is not None:
        raise StrategyError("refine uses feedback=, not a scorer")
    check_int("rounds", rounds, 0)
    if not isinstance(revise_template, str) or "{feedback}" not in revise_template:
        raise StrategyError("revise_template must be a string containing '{feedback}'")
    if feedback is None:
        if task is None or example is None:
            raise StrategyError("refine needs feedback: give task= and example= (the verifier) or feedback=callable")
        feedback = task_feedback(task, example)
    elif not callable(feedback):
        raise StrategyError(f"feedback must be a callable (completion) -> str | None, got {feedback!r}")
    think = THINK_OPEN if prefilled_think(prompt) else ""
    samples: list[Completion] = []
    history: list[dict] = []
    current = prompt
    chosen = 0
    for r in range(rounds + 1):
        group = backend.generate([current], n=n, sampling=seeded(sampling, r), budget=budget)[0]
        first_fb, accepted = None, None
        for j, c in enumerate(group):  # in order; stop checking at the first accepted candidate
            fb = feedback(c)
            if fb is not None and not isinstance(fb, str):
                raise StrategyError(f"feedback returned {fb!r}; it must return a string or None")
            if j == 0:
                first_fb = fb
            if fb is None:
                accepted = j
                break
        pick = accepted if accepted is not None else 0
        chosen = len(samples) + pick
        samples += group
        history.append({"round": r, "answer": answer_of(group[pick], task, example),
                        "answers": [answer_of(c, task, example) for c in group],
                        "feedback": None if accepted is not None else first_fb,
                        "tokens": sum(c.reasoning_tokens + c.answer_tokens for c in group)})
        if accepted is not None or r == rounds:
            break
        current = current + _closed(group[0], current) + revise_template.format(feedback=first_fb) + think
    final = samples[chosen]
    return result("refine", final, samples, answer_of(final, task, example), chosen=chosen,
                  rounds=history, accepted=history[-1]["feedback"] is None, final_prompt=current)
