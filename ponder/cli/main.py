"""The one CLI entry point, ``ponder``. Each subcommand lives in its own module of ``ponder.cli``.

The typed signature of each command *is* its CLI (typer). Errors the user can fix (bad paths,
malformed files, unknown names) are ``ValueError`` subclasses raised by the library; the
``user_errors`` wrapper turns them into one red line and exit code 2 instead of a traceback.
"""

from __future__ import annotations

import typer

from ponder.cli import (
    ask,
    budget,
    chat,
    choose,
    data,
    demo,
    doctor,
    models,
    parse,
    rewards,
    run,
    sample,
    serve,
    tasks,
    train,
    tune,
    verify,
)
from ponder.cli import eval as eval_cli

app = typer.Typer(
    name="ponder",
    help="ponder: build, run, verify, evaluate and serve reasoning models (<think>…</think> then answer).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("demo", help="Run the main job and print where its report is.")(demo.demo)
app.command("ask", help="Ask a model one question: stream its thinking and answer, then the token counts.")(ask.ask)
app.command("chat", help="Chat with a model interactively (/think on|off shows or hides the thinking).")(chat.chat)
app.command("doctor", help="Check a model before using it: chat template, think tags, thinking mode, EOS, context, samples.")(doctor.doctor)
app.add_typer(eval_cli.app, name="eval", help="Evaluate a model on a task (pass@k, maj@k, report), or compare runs.")
app.command("budget-curve", help="Accuracy vs thinking budget on a task: writes a CSV and a PNG.")(budget.budget_curve)
app.command("tune", help="Tune strategies x budgets x n on a dev split: Pareto front, effort levels, serve config.")(tune.tune)
app.command("serve", help="Serve a model: OpenAI-compatible API keeping reasoning apart, plus a playground page.")(serve.serve)
app.add_typer(train.app, name="train", help="Train models: pretrain, sft, grpo, distill (one command per stage).")
app.command("run", help="Run a recipe of training stages (recipes/*.yaml); resumes after a kill.")(run.run)
app.command("sample", help="Rejection sampling: keep verified-correct samples as SFT JSONL with provenance.")(sample.sample)
app.add_typer(models.app, name="models", help="Import a GGUF file as a Hugging Face checkpoint; merge adapters.")
app.add_typer(tasks.app, name="tasks", help="List tasks, show their examples, score completions against them.")
app.command("verify", help="Check whether an answer equals a gold answer (math equivalence).")(verify.verify)
app.command("parse", help="Split completions into reasoning and answer and extract final answers (JSONL in, JSONL out).")(parse.parse)
app.add_typer(data.app, name="data", help="Checks on training data: 13-gram overlap (contamination) with an eval set.")
app.add_typer(rewards.app, name="rewards", help="List the reward functions, or score samples with them.")
app.command("choose", help="Weighted decision matrix of reasoning models: catalog traits + your eval runs.")(choose.choose)


if __name__ == "__main__":  # pragma: no cover
    app()
