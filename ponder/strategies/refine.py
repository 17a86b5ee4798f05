"""refine: generate, get external feedback from the verifier or tests, revise — up to r rounds.

The feedback is external (not the model's self-critique, which Huang et al. 2024, "Large
Language Models Cannot Self-Correct Reasoning Yet", found does not help): a function
``feedback(completion) -> str | None`` where None accepts the completion. By default it is the
task's verdict on ``example``: for code, the failing test and its output ("assert f(3) == 2
failed: got 1"); for math, "Your answer X is wrong." (this uses the gold answer, so on math it
is an oracle loop, the setting of Reflexion-style retries; with code tests it is gold-free when
the tests are the visible ones).

Each revision is the conversation so far -- the question, the previous reply (its answer only,
as every multi-turn conversation keeps it: ``ponder.format.history_turn``) and a user turn with
``revise_template`` filled with the feedback -- rendered by ``ponder.format.render`` under the
backend's thinking decision, so a revision prompt is what the model's chat template makes of
that conversation. ``prompt`` must be a ``ponder.format.Prompt`` (its messages are continued).
"""

from __future__ import annotations

from typing import Any, Callable

from ponder.format import Prompt, history_turn, render
from ponder.generate.types import Completion
from ponder.strategies.base import StrategyError, answer_of, check_int, result, seeded, verdict
from ponder.strategies.run import register_strategy

DEFAULT_REVISE = "{feedback} Think again and give a corrected answer."


def task_feedback(task: Any, example: Any) -> Callable[[Completion], str | None]:
    """Feedback from the task's verdict: None when correct, else what failed."""

    def fb(c: Completion) -> str | None:
        v = verdict(c, task, example)
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


@register_strategy("refine")
def refine(backend, prompt: Prompt, *, n: int | None = None, sampling=None, budget=None, task=None, example=None,
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
    if not isinstance(prompt, Prompt):
        raise StrategyError("refine continues a conversation: give a ponder.format.Prompt "
                            "(ponder.generate.prompt(backend, question)), not a rendered string")
    samples: list[Completion] = []
    history: list[dict] = []
    current = prompt
    chosen = 0
    for r in range(rounds + 1):
        group = backend.generate([current.payload], n=n, sampling=seeded(sampling, r), budget=budget)[0]
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
        turns = [history_turn(group[0].answer, group[0].text),
                 {"role": "user", "content": revise_template.format(feedback=first_fb)}]
        current = render(current.messages + turns, backend.tokenizer, current.thinking)
    final = samples[chosen]
    return result("refine", final, samples, answer_of(final, task, example), chosen=chosen,
                  rounds=history, accepted=history[-1]["feedback"] is None,
                  final_prompt=current.text if current.text is not None else current.messages)
