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

Limits: the backend's per-call thinking budget cannot span pieces, so budgets are refused; the
stop strings are ponder's own (sampling.stop must be empty).
"""

from __future__ import annotations

from typing import Any

from ponder.generate.types import Completion
from ponder.strategies.base import (StrategyError, answer_of, check_float, check_int, join, no_budget, relabel,
                                    result,
                                    with_stop)  # fmt: skip


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


def tools(backend, prompt: str, *, n: int | None = None, sampling=None, budget=None, task=None, example=None,
          scorer=None, max_calls: int = 4, open_fence: str = "```python\n", close_fence: str = "```",
          timeout: float = 5.0, max_output_chars: int = 1000) -> Any:
    """Generate with a python tool: run each fenced block the model writes and insert its output."""
    no_budget("tools", budget)
    if n not in (None, 1):
        raise StrategyError(f"tools follows one trajectory (n=1), got n={n}")
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
    parts: list[Completion] = []
    suffixes: list[str] = []
    calls: list[dict] = []
    call = 0

    def step(stop: list[str]) -> Completion:
        nonlocal call
        so_far = join(prompt, parts, suffixes).text if parts else ""
        sp = with_stop(sampling, stop, offset=call)
        call += 1
        return relabel(prompt, so_far, backend.generate([prompt + so_far], n=1, sampling=sp, budget=None)[0][0])

    while True:
        c = step([open_fence] if len(calls) < max_calls else [])
        if c.finish_reason != "stop" or len(calls) >= max_calls:
            parts.append(c)
            suffixes.append("")
            break
        parts.append(c)
        suffixes.append(open_fence)
        code = step([close_fence])
        if code.finish_reason != "stop":  # the block never closed: nothing to run
            parts.append(code)
            suffixes.append("")
            break
        output, record = run_python(code.text, timeout, max_output_chars)
        calls.append(record)
        parts.append(code)
        suffixes.append(f"{close_fence}\n{close_fence}output\n{output}\n{close_fence}\n")
    final = join(prompt, parts, suffixes)
    return result("tools", final, parts, answer_of(final, task, example), tool_calls=calls, pieces=len(parts))
