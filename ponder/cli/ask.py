"""``ponder ask MODEL "question"``: one question, the thinking streamed (dimmed), then the answer
and the token counts.

MODEL is a local checkpoint directory or ``openai:<model>@<base_url>``. With ``--strategy``
other than ``single`` (majority, best_of_n, adaptive_majority, …) the strategy runs to the end
under a spinner and ponder prints the chosen completion, its answer, the votes or scores, and the
tokens spent over all samples. ``--json`` prints one JSON object instead (for scripts).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from ponder.cli.common import err_console, fail, user_errors

console = Console(highlight=False)

MODEL_HELP = "Local checkpoint directory, or openai:<model>@<base_url> for an OpenAI-compatible server."
THINKING_HELP = "Thinking mode: auto (decided from the model), on (pre-fill <think>), off (no thinking)."
EXTRA_BODY_HELP = "Endpoints: a JSON object merged into every request (server-specific fields, e.g. '{\"top_k\": 0}')."
TIMEOUT_HELP = "Endpoints: seconds per request before it is abandoned."
TOKENIZER_HELP = ("Endpoints: the served model's tokenizer (a directory or .gguf file): ponder renders the prompt and "
                  "generates through /v1/completions, with exact thinking budgets and budget forcing.")


def make_params(effort: str | None, thinking_budget: int | None, min_thinking: int, max_waits: int,
                temperature: float, top_p: float, max_tokens: int, seed: int | None):
    """SamplingParams and Budget from the CLI flags (their checks raise GenerationError)."""
    from ponder.generate import Budget, SamplingParams

    sampling = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    budget = Budget(thinking_budget=thinking_budget, effort=effort, min_thinking=min_thinking, max_waits=max_waits)
    return sampling, budget


def load(model: str, thinking: str = "auto", extra_body: str | None = None, timeout: float | None = None,
         tokenizer: str | None = None):
    """The backend for MODEL, with a spinner while a local model loads."""
    from ponder.generate.backends import load_backend

    if not model.startswith("openai:"):  # our spinner replaces transformers' "Loading weights" bar
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    with console.status(f"loading {model}", spinner="dots"):
        return load_backend(model, thinking=thinking, extra_body=extra_body, timeout=timeout, tokenizer=tokenizer)


def print_stream(events, show_thinking: bool = True):
    """Print ``Backend.stream`` events; returns the final Completion.

    Thinking is dimmed and set off from the answer by a blank line; hidden thinking shows one
    "thinking…" line instead, so the user knows the model is working.
    """
    state = None  # what was printed last: None, "reasoning" or "answer"
    final = None
    waiting = console.status("waiting for the first token", spinner="dots")  # prefill / network
    waiting.start()
    try:
        for kind, item in events:
            if waiting is not None:
                waiting.stop()
                waiting = None
            if kind == "done":
                final = item
                break
            if _show(kind, item, state, show_thinking):
                state = kind
    finally:
        if waiting is not None:
            waiting.stop()
    console.print()
    return final


def _show(kind: str, item: str, state: str | None, show_thinking: bool) -> bool:
    """Print one delta after ``state`` (what was printed last); False when it was skipped."""
    if kind == "reasoning":
        if state is None:
            console.print("thinking…" if not show_thinking else "", style="dim italic",
                          end="\n" if not show_thinking else "")
        if show_thinking:
            console.print(item, style="dim", end="", markup=False, soft_wrap=True)
    elif kind == "answer":
        if state != "answer" and not item.strip():
            return False  # the blank line after </think>
        if state == "reasoning":
            console.print("\n" if show_thinking else "", end="")
        console.print(item.lstrip() if state != "answer" else item, end="", markup=False, soft_wrap=True)
    return True


def token_line(reasoning_tokens: int, answer_tokens: int, extra: str = "") -> str:
    total = reasoning_tokens + answer_tokens
    return f"tokens: {reasoning_tokens} reasoning + {answer_tokens} answer = {total}{extra}"


def _strategy_summary(r) -> str:
    t = r.trace
    parts = [f"strategy {t.get('strategy')}", f"{len(r.samples)} samples"]
    votes = t.get("votes")
    if isinstance(votes, dict) and votes:
        top = sorted(votes.items(), key=lambda kv: -kv[1] if isinstance(kv[1], (int, float)) else 0)[:5]
        parts.append("votes " + ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in top))
    if "tokens_saved" in t:
        parts.append(f"tokens saved {t['tokens_saved']}")
    return " · ".join(parts)


@user_errors
def ask(
    model: str = typer.Argument(..., help=MODEL_HELP),
    question: str = typer.Argument(..., help="The question to ask."),
    effort: Optional[str] = typer.Option(None, help="Reasoning effort low|medium|high (a thinking budget from the model's effort table)."),
    thinking_budget: Optional[int] = typer.Option(None, min=0, help="Most thinking tokens; then </think> is forced and the model answers."),
    min_thinking: int = typer.Option(0, min=0, help="Budget forcing (s1): replace an earlier </think> with 'Wait' until this many thinking tokens (local models)."),
    max_waits: int = typer.Option(1, min=0, help="Most 'Wait's inserted by --min-thinking."),
    strategy: str = typer.Option("single", help="Test-time strategy: single (streamed), majority, weighted_majority, best_of_n, adaptive_majority, …"),
    n: Optional[int] = typer.Option(None, min=1, help="Samples for the strategy (default: the strategy's own)."),
    task: Optional[str] = typer.Option(None, help="Task spec whose verifier normalises answers for voting (e.g. addition, math500)."),
    scorer: Optional[str] = typer.Option(None, help="Scorer for best_of_n / weighted_majority: logprob, verifier or a reward-model path."),
    temperature: float = typer.Option(0.6, min=0.0, help="Sampling temperature (0 = greedy)."),
    top_p: float = typer.Option(0.95, help="Nucleus sampling threshold (1 = off)."),
    max_tokens: int = typer.Option(512, min=1, help="Most generated tokens (with a thinking budget: most answer tokens)."),
    seed: Optional[int] = typer.Option(None, help="Sampling seed (reproducible answers)."),
    system: Optional[str] = typer.Option(None, help="System prompt (default: none; r1, r1-zero: R1's prompts)."),
    thinking: str = typer.Option("auto", help=THINKING_HELP),
    show_thinking: bool = typer.Option(True, "--show-thinking/--hide-thinking", help="Print the thinking (dimmed) or hide it."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (answer, text, reasoning, token counts, trace)."),
    extra_body: Optional[str] = typer.Option(None, "--extra-body", help=EXTRA_BODY_HELP),
    timeout: Optional[float] = typer.Option(None, min=1, help=TIMEOUT_HELP),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
) -> None:
    """Ask a model one question: stream its thinking and answer, then the token counts."""
    from ponder.generate import prompt as prompt_of

    sampling, budget = make_params(effort, thinking_budget, min_thinking, max_waits, temperature, top_p,
                                   max_tokens, seed)
    backend = load(model, thinking, extra_body, timeout, tokenizer)
    check_forcing(backend, budget)
    prompt = prompt_of(backend, question, system)
    if not as_json:
        _note_template_system(prompt, system)
    if strategy == "single" and n in (None, 1):
        if as_json:
            c = backend.generate([prompt.payload], 1, sampling, budget)[0][0]
            _print_json(completion_json(c))
            return
        c = print_stream(backend.stream(prompt.payload, sampling, budget), show_thinking)
        console.print(token_line(c.reasoning_tokens, c.answer_tokens, completion_notes(c)), style="cyan")
        return
    _run_strategy(backend, prompt, strategy, n, sampling, budget, task, scorer, show_thinking, as_json)


def completion_json(c) -> dict[str, Any]:
    """What ``ask --json`` prints for one completion: the contract's answer and token split."""
    from ponder.format import final_answer

    found = final_answer(c.answer_text())
    return {"strategy": "single", "answer": found.value if found else None,
            "answer_rule": found.rule if found else None, "text": c.text, "reasoning": c.reasoning,
            "answer_text": c.answer, "think_closed": c.think_closed, "prefilled_think": c.prefilled,
            "reasoning_tokens": c.reasoning_tokens, "answer_tokens": c.answer_tokens,
            "tokens_estimated": c.estimated, "finish_reason": c.finish_reason, "forced_close": c.forced_close,
            "waits": c.waits}


def completion_notes(c) -> str:
    """The status after the token counts: finish reason, cut-off, waits, an unclosed think block."""
    extra = f" · finish {c.finish_reason}" + (" · budget cut off the thinking" if c.forced_close else "") + (
        f" · {c.waits} wait(s) inserted" if c.waits else "")
    if c.unclosed:
        extra += " · the think block never closed (the text above is all thinking; try --thinking off)"
    if c.estimated:
        extra += " · token counts estimated"
    return extra


def check_forcing(backend, budget) -> None:
    """Budget forcing needs token-level control: say so at the CLI, not from a Python constructor."""
    if budget.forcing and not backend.capabilities.forcing:
        fail("--min-thinking rewrites the reasoning as it is written, which a chat endpoint does not let a client do: "
             "give the served model's tokenizer with --tokenizer (ponder then generates through /v1/completions), "
             "use a local checkpoint, or a `ponder serve` endpoint (it runs budget forcing itself)")


def _note_template_system(prompt, system) -> None:
    if prompt.template_system and not system:
        err_console.print("note: the model's chat template adds a system prompt of its own (pass --system to "
                          "replace it)", style="dim", markup=False)


def _run_strategy(backend, prompt, strategy, n, sampling, budget, task, scorer, show_thinking, as_json) -> None:
    from ponder.strategies import run_strategy

    task_obj = None
    if task is not None:
        from ponder.tasks import get_task

        task_obj = get_task(task)
    with console.status(f"running {strategy}", spinner="dots"):
        r = run_strategy(strategy, backend, prompt, n=n, sampling=sampling, budget=budget, task=task_obj,
                         scorer=scorer)
    if as_json:
        _print_json({"strategy": strategy, "answer": r.answer, "text": r.text, "reasoning": r.reasoning,
                     "samples": len(r.samples), "tokens": r.tokens, "reasoning_tokens": r.reasoning_tokens,
                     "answer_tokens": r.answer_tokens, "trace": r.trace})
        return
    if show_thinking and r.reasoning:
        console.print(r.reasoning, style="dim", markup=False, soft_wrap=True)
        console.print()
    console.print(r.answer_text or "(no answer text)", markup=False, soft_wrap=True)
    console.print(f"answer: {r.answer}", style="bold", markup=False)
    console.print(_strategy_summary(r), style="cyan", markup=False)
    console.print(token_line(r.reasoning_tokens, r.answer_tokens, f" over {len(r.samples)} samples"), style="cyan")


def _print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
