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

from dataclasses import dataclass, replace

from ponder.cli.ask import GenerateOptions, check_forcing, completion_notes, console, print_stream, token_line
from ponder.cli.configcli import command

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


@dataclass
class ChatConfig(GenerateOptions):
    """Options of ``ponder chat`` (effort and budget change with /effort and /budget)."""


def run_chat(cfg: ChatConfig) -> None:
    """Chat with a model; /think on|off shows or hides its thinking."""
    from ponder.format import history_turn
    from ponder.generate import GenerationError, prompt

    _, budget = cfg.params()
    backend = cfg.load()
    check_forcing(backend, budget)
    state = ChatState(cfg.show_thinking, cfg.effort, cfg.thinking_budget)
    console.print(f"chatting with {cfg.model} · {HELP}", style="cyan", markup=False)
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
            sampling, budget = replace(cfg, effort=state.effort, thinking_budget=state.thinking_budget).params()
        except GenerationError as e:  # e.g. /budget below --min-thinking: say so, keep chatting
            console.print(f"error: {e}", style="red", markup=False)
            continue
        messages = state.history + [{"role": "user", "content": line}]
        events = backend.stream(prompt(backend, messages, cfg.system).payload, sampling, budget)
        try:
            c = print_stream(events, state.show)
        except KeyboardInterrupt:  # Ctrl-C stops this reply, not the chat
            events.close()  # a local engine stops generating at its next token
            console.print("\n(interrupted)", style="cyan")
            continue
        console.print(token_line(c.reasoning_tokens, c.answer_tokens, completion_notes(c)), style="cyan")
        state.history = messages + [history_turn(c.answer_text(), c.text)]


chat = command(ChatConfig, run_chat, "Chat with a model; /think on|off shows or hides its thinking.",
               positional="model", deprecated_flag=False)
