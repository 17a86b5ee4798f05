"""tools: the model writes a fenced python block while it reasons; ponder runs it and inserts the output.

Code-interleaved reasoning as in PAL/ToRA (Gou et al. 2024, "ToRA: A Tool-Integrated Reasoning
Agent") and Gemini's code execution: generation stops at the opening fence, then the code is
generated up to the closing fence, run in ``ponder.verify.sandbox`` (isolated, resource-limited,
standard library only), and the trajectory continues with::

    ```python
    <code>
    ```
    ```output
    <stdout, or the error>
    ```

and the model goes on thinking (or answering), up to ``max_calls`` executions. Each piece is
its own ``generate`` call on the prompt plus the trajectory so far, so any backend works.
With ``n`` > 1, n trajectories advance together and their answers are voted on (as ToRA's
majority voting over tool-integrated samples).

Limits: the backend's per-call thinking budget cannot span pieces, so budgets are refused; the
stop strings are ponder's own (sampling.stop must be empty).
"""

from __future__ import annotations

from typing import Any

from ponder.generate.types import Completion
from ponder.strategies.base import (
    StrategyError,
    answer_of,
    check_float,
    check_int,
    equality,
    join,
    no_budget,
    relabel,  # fmt: skip
    result,
    text_of,
    with_stop,
)
from ponder.strategies.run import register_strategy
from ponder.strategies.voting import vote

#: The fences of a tool call, as the model writes them (the training rollouts use the same ones).
OPEN_FENCE, CLOSE_FENCE = "```python\n", "```"


def output_block(output: str, close_fence: str = CLOSE_FENCE) -> str:
    """What follows a closed code block: the block's closing fence, then its output in an ``output`` fence."""
    return f"{close_fence}\n{close_fence}output\n{output}\n{close_fence}\n"


def by_next_stop(items, max_calls: int, open_fence: str = OPEN_FENCE, close_fence: str = CLOSE_FENCE) -> dict:
    """The unfinished ``items`` (each with ``done``, ``want_code`` and its list of ``calls``) grouped
    by the stop strings their next piece needs -- the closing fence while code is being written,
    else the opening fence while calls are left, else none (to the end) -- so a group is one
    generate call. Shared by this strategy and GRPO's tool rollouts."""
    groups: dict[tuple, list] = {}
    for t in items:
        if not t.done:
            stop = (close_fence,) if t.want_code else ((open_fence,) if len(t.calls) < max_calls else ())
            groups.setdefault(stop, []).append(t)
    return groups


def run_python(code: str, timeout: float, max_chars: int) -> tuple[str, dict]:
    """Run ``code`` in the sandbox; returns (text to insert, a trace record)."""
    from ponder.verify.sandbox import Limits, run_code

    r = run_code(code, [], Limits(cpu_seconds=timeout, wall_seconds=2 * timeout))
    out = r.stdout
    if not r.passed:  # show the model what went wrong, as a terminal would
        err = (r.stderr or r.detail or r.reason).strip()
        out = (out + ("\n" if out else "") + err).strip()
    out = out.strip()
    if len(out) > max_chars:
        out = out[:max_chars] + "\n...(output cut)"
    return out, {"code": code, "output": out, "ok": r.passed, "reason": r.reason, "mode": r.mode}


class _Trajectory:
    """One tool-using trajectory: its pieces, the text after each, and its executions."""

    def __init__(self) -> None:
        self.parts: list[Completion] = []
        self.suffixes: list[str] = []
        self.calls: list[dict] = []
        self.want_code = False  # the next piece is code (the opening fence was just written)
        self.done = False

    def text(self, prompt: str) -> str:
        return join(prompt, self.parts, self.suffixes).text if self.parts else ""


@register_strategy("tools")
def tools(backend, prompt: str, *, n: int | None = None, sampling=None, budget=None, task=None, example=None,
          scorer=None, max_calls: int = 4, open_fence: str = OPEN_FENCE, close_fence: str = CLOSE_FENCE,
          timeout: float = 5.0, max_output_chars: int = 1000, equal: str | Any = "math") -> Any:
    """Generate with a python tool: run each fenced block the model writes and insert its output.

    ``n`` (default 1) trajectories advance together (one ``generate`` call per step for all
    that want the same stop strings); with n > 1 their answers are put to a majority vote.
    """
    no_budget("tools", budget)
    prompt = text_of(prompt)
    n = 1 if n is None else check_int("n", n)
    if scorer is not None:
        raise StrategyError("tools does not use a scorer")
    check_int("max_calls", max_calls, 0)
    check_float("timeout", timeout, 0.1, 600.0)
    check_int("max_output_chars", max_output_chars)
    for name, fence in (("open_fence", open_fence), ("close_fence", close_fence)):
        if not isinstance(fence, str) or not fence.strip():
            raise StrategyError(f"{name} must be a non-empty string, got {fence!r}")
    if sampling is not None and sampling.stop:
        raise StrategyError("tools sets its own stop strings (the code fences); give sampling without stop")
    eq = equality(equal)
    trajs = [_Trajectory() for _ in range(n)]
    call = 0
    while any(not t.done for t in trajs):
        for stop, ts in by_next_stop(trajs, max_calls, open_fence, close_fence).items():
            heads = [t.text(prompt) for t in ts]
            out = backend.generate([prompt + h for h in heads], n=1, sampling=with_stop(sampling, stop, offset=call),
                                   budget=None)
            call += 1
            for t, head, (c,) in zip(ts, heads, out):
                c = relabel(prompt, head, c, backend.decode)
                t.parts.append(c)
                if c.finish_reason != "stop" or not stop:  # EOS or length: the trajectory ends
                    t.suffixes.append("")
                    t.done = True
                elif not t.want_code:  # stopped at the opening fence: the code comes next
                    t.suffixes.append(open_fence)
                    t.want_code = True
                else:  # the code block closed: run it and insert its output
                    output, record = run_python(c.text, timeout, max_output_chars)
                    t.calls.append(record)
                    t.suffixes.append(output_block(output, close_fence))
                    t.want_code = False
    finals = [join(prompt, t.parts, t.suffixes) for t in trajs]
    answers = [answer_of(f, task, example) for f in finals]
    chosen, _, votes = vote(answers, None, eq) if n > 1 else (0, None, {})
    chosen = 0 if chosen is None else chosen
    pieces = [p for t in trajs for p in t.parts]
    extra = {"trajectories": [{"answer": a, "tool_calls": t.calls} for a, t in zip(answers, trajs)],
             "votes": votes} if n > 1 else {}
    return result("tools", finals[chosen], pieces, answers[chosen], tool_calls=trajs[chosen].calls,
                  pieces=len(pieces), chosen_trajectory=chosen, **extra)
