"""``ponder chat MODEL``: an interactive conversation with a reasoning model.

Each reply streams its thinking (dimmed) and its answer, then the token counts. Commands:

    /think on|off            show or hide the thinking (it is still generated)
    /effort low|medium|high  a thinking budget from the model's effort table (/effort off: none)
    /budget N                at most N thinking tokens (/budget off: none)
    /reset                   forget the conversation
    /exit                    leave (as does Ctrl-D)

Ctrl-C during a reply stops that reply (a local model stops generating) and the chat goes on.

Earlier turns go back to the model as user/assistant messages with the assistant's *answer*
only (``ponder.format.history_turn``; the whole text when the reply had no separate answer):
reasoning models are trained on single turns whose reasoning is dropped from the history
(DeepSeek-R1's API documents the same rule), and it keeps the prompt short. Each turn's prompt is
``ponder.format.render`` of the conversation, as for every other command.
"""

from __future__ import annotations

from typing import Optional

import typer

from ponder.cli.ask import (
    EXTRA_BODY_HELP,
    MODEL_HELP,
    THINKING_HELP,
    TIMEOUT_HELP,
    TOKENIZER_HELP,
    check_forcing,
    completion_notes,
    console,
    load,
    make_params,
    print_stream,
    token_line,
)
from ponder.cli.common import user_errors

HELP = "commands: /think on|off · /effort low|medium|high|off · /budget N|off · /reset · /exit"


class ChatState:
    """What the commands change: show/hide thinking, the budget, the history."""

    def __init__(self, show: bool, effort: str | None, thinking_budget: int | None):
        self.show, self.effort, self.thinking_budget = show, effort, thinking_budget
        self.history: list[dict] = []

    def command(self, line: str) -> str | None:
        """Apply a /command; returns the message to print, or None to leave."""
        parts = line.split()
        cmd, arg = parts[0].lower(), (parts[1].lower() if len(parts) > 1 else "")
        if cmd in ("/exit", "/quit"):
            return None
        if cmd == "/think" and arg in ("on", "off"):
            self.show = arg == "on"
            return f"thinking {'shown' if self.show else 'hidden'}"
        if cmd == "/effort" and arg in ("low", "medium", "high", "off"):
            self.effort, self.thinking_budget = (None if arg == "off" else arg), None
            return f"effort {arg}"
        if cmd == "/budget" and (arg == "off" or arg.isdigit()):
            self.thinking_budget, self.effort = (None if arg == "off" else int(arg)), None
            return f"thinking budget {arg}" + (" tokens" if arg != "off" else "")
        if cmd == "/reset":
            self.history.clear()
            return "conversation cleared"
        return f"unknown command {line.strip()!r}; {HELP}"


@user_errors
def chat(
    model: str = typer.Argument(..., help=MODEL_HELP),
    effort: Optional[str] = typer.Option(None, help="Reasoning effort low|medium|high (change with /effort)."),
    thinking_budget: Optional[int] = typer.Option(None, min=0, help="Most thinking tokens per reply (change with /budget)."),
    min_thinking: int = typer.Option(0, min=0, help="Budget forcing (s1): at least this many thinking tokens, via 'Wait' (local models)."),
    temperature: float = typer.Option(0.6, min=0.0, help="Sampling temperature (0 = greedy)."),
    top_p: float = typer.Option(0.95, help="Nucleus sampling threshold (1 = off)."),
    max_tokens: int = typer.Option(512, min=1, help="Most generated tokens per reply (with a budget: per answer)."),
    seed: Optional[int] = typer.Option(None, help="Sampling seed."),
    system: Optional[str] = typer.Option(None, help="System prompt (default: none; r1, r1-zero: R1's prompts)."),
    thinking: str = typer.Option("auto", help=THINKING_HELP),
    show_thinking: bool = typer.Option(True, "--show-thinking/--hide-thinking", help="Start with the thinking shown or hidden (toggle with /think on|off)."),
    extra_body: Optional[str] = typer.Option(None, "--extra-body", help=EXTRA_BODY_HELP),
    timeout: Optional[float] = typer.Option(None, min=1, help=TIMEOUT_HELP),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
) -> None:
    """Chat with a model; /think on|off shows or hides its thinking."""
    from ponder.format import history_turn
    from ponder.generate import GenerationError, prompt

    _, budget = make_params(effort, thinking_budget, min_thinking, 1, temperature, top_p, max_tokens, seed)
    backend = load(model, thinking, extra_body, timeout, tokenizer)
    check_forcing(backend, budget)
    state = ChatState(show_thinking, effort, thinking_budget)
    console.print(f"chatting with {model} · {HELP}", style="cyan", markup=False)
    while True:
        try:
            line = console.input("[bold green]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not line.strip():
            continue
        if line.startswith("/"):
            msg = state.command(line)
            if msg is None:
                return
            console.print(msg, style="cyan", markup=False)
            continue
        try:
            sampling, budget = make_params(state.effort, state.thinking_budget, min_thinking, 1, temperature,
                                           top_p, max_tokens, seed)
        except GenerationError as e:  # e.g. /budget below --min-thinking: say so, keep chatting
            console.print(f"error: {e}", style="red", markup=False)
            continue
        messages = state.history + [{"role": "user", "content": line}]
        events = backend.stream(prompt(backend, messages, system).payload, sampling, budget)
        try:
            c = print_stream(events, state.show)
        except KeyboardInterrupt:  # Ctrl-C stops this reply, not the chat
            events.close()  # a local engine stops generating at its next token
            console.print("\n(interrupted)", style="cyan")
            continue
        console.print(token_line(c.reasoning_tokens, c.answer_tokens, completion_notes(c)), style="cyan")
        state.history = messages + [history_turn(c.answer_text(), c.text)]
