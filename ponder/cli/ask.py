"""``ponder ask MODEL "question"``: one question, the thinking streamed (dimmed), then the answer
and the token counts.

MODEL is a local checkpoint directory, a ``.gguf`` file or ``openai:<model>@<base_url>``. With ``--strategy``
other than ``single`` (majority, best_of_n, adaptive_majority, …) the strategy runs to the end
under a spinner and ponder prints the chosen completion, its answer, the votes or scores, and the
tokens spent over all samples. ``--json`` prints one JSON object instead (for scripts).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from ponder.cli.common import err_console, fail
from ponder.cli.configcli import command
from ponder.config import SHARED_HELP, option, shared

console = Console(highlight=False)

MODEL_HELP = SHARED_HELP["model"]
THINKING_HELP = SHARED_HELP["thinking"]
EXTRA_BODY_HELP = SHARED_HELP["extra_body"]
TIMEOUT_HELP = SHARED_HELP["timeout"]
TOKENIZER_HELP = SHARED_HELP["tokenizer"]
QUANTIZE_HELP = ("Local checkpoints: decode on int8 weights, int8 (weight-only) or int8-dynamic (activations too; "
                 "faster, less exact). Close to, not equal to, float32's output; see docs/generation.md.")


def load(model: str, thinking: str = "auto", extra_body: str | None = None, timeout: float | None = None,
         tokenizer: str | None = None, quantize: str | None = None):
    """The backend for MODEL, with a spinner while a local model loads."""
    from ponder.generate.backends import load_backend

    if not model.startswith("openai:"):  # our spinner replaces transformers' "Loading weights" bar
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    with console.status(f"loading {model}", spinner="dots"):
        return load_backend(model, thinking=thinking, extra_body=extra_body, timeout=timeout, tokenizer=tokenizer,
                            quantize=quantize)


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


@dataclass
class GenerateOptions:
    """The options ``ask`` and ``chat`` share: the model, its thinking, sampling and endpoint."""

    model: str = option("", MODEL_HELP)
    effort: str | None = option(None, "Reasoning effort low|medium|high (a thinking budget from the model's effort table).")
    thinking_budget: int | None = option(None, "Most thinking tokens; then </think> is forced and the model answers.")
    min_thinking: int = option(0, "Budget forcing (s1): replace an earlier </think> with 'Wait' until this many thinking tokens.")
    max_waits: int = option(1, "Most 'Wait's inserted by --min-thinking.")
    loop_guard: str | None = option(None, "Reasoning-loop breaker: close (force </think> on a loop and answer) or stop (end there); local models, ponder serve.")
    temperature: float = option(0.6, "Sampling temperature (0 = greedy).")
    top_p: float = shared("top_p", 0.95)
    max_tokens: int = option(512, "Most generated tokens (with a thinking budget: most answer tokens).")
    seed: int | None = option(None, "Sampling seed (reproducible answers).")
    system: str | None = option(None, "System prompt (default: none; r1, r1-zero: R1's prompts).")
    thinking: str = option("auto", THINKING_HELP)
    show_thinking: bool = option(True, "Print the thinking (dimmed) or hide it (chat: toggle with /think on|off).",
                                 flag="--show-thinking/--hide-thinking")
    extra_body: str | None = option(None, EXTRA_BODY_HELP)
    timeout: float | None = option(None, TIMEOUT_HELP)
    tokenizer: str | None = option(None, TOKENIZER_HELP)
    quantize: str | None = option(None, QUANTIZE_HELP)

    def params(self):
        """SamplingParams and Budget (their checks raise GenerationError)."""
        from ponder.generate import Budget, SamplingParams

        sampling = SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                                  seed=self.seed)
        budget = Budget(thinking_budget=self.thinking_budget, effort=self.effort, min_thinking=self.min_thinking,
                        max_waits=self.max_waits, loop_guard=self.loop_guard or None)
        return sampling, budget

    def load(self):
        if not self.model:
            fail("give MODEL: a local checkpoint directory or openai:<model>@<base_url>")
        return load(self.model, self.thinking, self.extra_body, self.timeout, self.tokenizer, self.quantize)


@dataclass
class AskConfig(GenerateOptions):
    """Options of ``ponder ask``."""

    question: str = option("", "The question to ask.")
    strategy: str = option("single", "Test-time strategy: single (streamed), majority, weighted_majority, best_of_n, adaptive_majority, …")
    n: int | None = option(None, "Samples for the strategy (default: the strategy's own).")
    task: str | None = option(None, "Task spec whose verifier normalises answers for voting (e.g. addition, math500).")
    scorer: str | None = option(None, "Scorer for best_of_n / weighted_majority: logprob, verifier or a reward-model path.")
    json: bool = option(False, "Print one JSON object (answer, text, reasoning, token counts, trace).", flag="--json")


def run_ask(cfg: AskConfig) -> None:
    """Ask a model one question: stream its thinking and answer, then the token counts."""
    from ponder.generate import prompt as prompt_of

    if not cfg.question:
        fail("give the QUESTION after MODEL")
    sampling, budget = cfg.params()
    backend = cfg.load()
    check_forcing(backend, budget)
    prompt = prompt_of(backend, cfg.question, cfg.system)
    if not cfg.json:
        _note_template_system(prompt, cfg.system)
    if cfg.strategy == "single" and cfg.n in (None, 1):
        if cfg.json:
            c = backend.generate([prompt.payload], 1, sampling, budget)[0][0]
            _print_json(completion_json(c))
            return
        c = print_stream(backend.stream(prompt.payload, sampling, budget), cfg.show_thinking)
        console.print(token_line(c.reasoning_tokens, c.answer_tokens, completion_notes(c)), style="cyan")
        return
    _run_strategy(backend, prompt, cfg, sampling, budget)


ask = command(AskConfig, run_ask, "Ask a model one question: stream its thinking and answer, then the token counts.",
              positional=("model", "question"), deprecated_flag=False)


def completion_json(c) -> dict[str, Any]:
    """What ``ask --json`` prints for one completion: the contract's answer and token split."""
    from ponder.format import final_answer

    found = final_answer(c.answer_text())
    return {"strategy": "single", "answer": found.value if found else None,
            "answer_rule": found.rule if found else None, "text": c.text, "reasoning": c.reasoning,
            "answer_text": c.answer, "think_closed": c.think_closed, "prefilled_think": c.prefilled,
            "reasoning_tokens": c.reasoning_tokens, "answer_tokens": c.answer_tokens,
            "tokens_estimated": c.estimated, "finish_reason": c.finish_reason, "forced_close": c.forced_close,
            "waits": c.waits, "loop_breaks": c.loop_breaks}


def completion_notes(c) -> str:
    """The status after the token counts: finish reason, cut-off, waits, an unclosed think block."""
    extra = f" · finish {c.finish_reason}" + (" · budget cut off the thinking" if c.forced_close else "") + (
        f" · {c.waits} wait(s) inserted" if c.waits else "") + (
        f" · {c.loop_breaks} loop(s) broken" if c.loop_breaks else "")
    if c.unclosed:
        extra += " · the think block never closed (the text above is all thinking; try --thinking off)"
    if c.estimated:
        extra += " · token counts estimated"
    return extra


def check_forcing(backend, budget) -> None:
    """Budget forcing needs token-level control: say so at the CLI, not from a Python constructor."""
    if budget.loop_guard and not backend.capabilities.loop_guard:
        fail("--loop-guard watches every token as it is decoded, which a chat endpoint does not let a client do: "
             "use a local checkpoint or a `ponder serve` endpoint (it runs the guard itself)")
    if budget.forcing and not backend.capabilities.forcing:
        fail("--min-thinking rewrites the reasoning as it is written, which a chat endpoint does not let a client do: "
             "give the served model's tokenizer with --tokenizer (ponder then generates through /v1/completions), "
             "use a local checkpoint, or a `ponder serve` endpoint (it runs budget forcing itself)")


def _note_template_system(prompt, system) -> None:
    if prompt.template_system and not system:
        err_console.print("note: the model's chat template adds a system prompt of its own (pass --system to "
                          "replace it)", style="dim", markup=False)


def _run_strategy(backend, prompt, cfg: AskConfig, sampling, budget) -> None:
    from ponder.strategies import run_strategy

    task_obj = None
    if cfg.task is not None:
        from ponder.tasks import get_task

        task_obj = get_task(cfg.task)
    with console.status(f"running {cfg.strategy}", spinner="dots"):
        r = run_strategy(cfg.strategy, backend, prompt, n=cfg.n, sampling=sampling, budget=budget, task=task_obj,
                         scorer=cfg.scorer)
    if cfg.json:
        _print_json({"strategy": cfg.strategy, "answer": r.answer, "text": r.text, "reasoning": r.reasoning,
                     "samples": len(r.samples), "tokens": r.tokens, "reasoning_tokens": r.reasoning_tokens,
                     "answer_tokens": r.answer_tokens, "trace": r.trace})
        return
    if cfg.show_thinking and r.reasoning:
        console.print(r.reasoning, style="dim", markup=False, soft_wrap=True)
        console.print()
    console.print(r.answer_text or "(no answer text)", markup=False, soft_wrap=True)
    console.print(f"answer: {r.answer}", style="bold", markup=False)
    console.print(_strategy_summary(r), style="cyan", markup=False)
    console.print(token_line(r.reasoning_tokens, r.answer_tokens, f" over {len(r.samples)} samples"), style="cyan")


def _print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
