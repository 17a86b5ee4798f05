"""The one CLI entry point, ``ponder``. Each subcommand lives in its own module of ``ponder.cli``.

The typed signature of each command *is* its CLI (typer). Errors the user can fix (bad paths,
malformed files, unknown names) are ``ValueError`` subclasses raised by the library; the
``errors`` wrapper turns them into one red line and exit code 2 instead of a traceback.
"""

from __future__ import annotations

import typer

from ponder.cli import demo, tasks, verify

app = typer.Typer(
    name="ponder",
    help="ponder: build, run, verify, evaluate and serve reasoning models (<think>…</think> then answer).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("verify", help="Check whether an answer equals a gold answer (math equivalence).")(verify.verify)
app.add_typer(tasks.app, name="tasks", help="List tasks, show their examples, score completions against them.")
app.command("demo", help="Run the main job and print where its report is.")(demo.demo)
from ponder.cli import choose as _choose, eval as _eval  # noqa: E402
app.add_typer(_eval.app, name="eval", help="Evaluate a model on a task (pass@k, maj@k, report), or compare runs.")
app.command("choose", help="Weighted decision matrix of reasoning models: catalog traits + your eval runs.")(_choose.choose)
from ponder.cli import train as _train  # noqa: E402
app.add_typer(_train.app, name="train", help="Train models: pretrain, sft, grpo (one command per stage).")
from ponder.cli import run as _run, sample as _sample  # noqa: E402
app.command("sample", help="Rejection sampling: keep verified-correct samples as SFT JSONL with provenance.")(_sample.sample)
app.command("run", help="Run a recipe of training stages (recipes/*.yaml); resumes after a kill.")(_run.run)

from ponder.cli import ask as _ask, budget as _budget, chat as _chat  # noqa: E402
app.command("ask", help="Ask a model one question: stream its thinking and answer, then the token counts.")(_ask.ask)
app.command("chat", help="Chat with a model interactively (/think on|off shows or hides the thinking).")(_chat.chat)
app.command("budget-curve", help="Accuracy vs thinking budget on a task: writes a CSV and a PNG.")(_budget.budget_curve)
from ponder.cli import serve as _serve  # noqa: E402
app.command("serve", help="Serve a model: OpenAI-compatible API keeping reasoning apart, plus a playground page.")(_serve.serve)
from ponder.cli import models as _models  # noqa: E402
app.add_typer(_models.app, name="models", help="Import a GGUF file as a Hugging Face checkpoint; merge adapters.")
from ponder.cli import parse as _parse, rewards as _rewards  # noqa: E402
app.command("parse", help="Split completions into reasoning and answer and extract final answers (JSONL in, JSONL out).")(_parse.parse)
app.add_typer(_rewards.app, name="rewards", help="List the reward functions, or score samples with them.")


if __name__ == "__main__":  # pragma: no cover
    app()
