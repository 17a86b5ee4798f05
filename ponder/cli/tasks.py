"""``ponder tasks``: list the tasks, show examples, score completions against a task.

A task is named by a spec string: ``addition``, ``addition:digits=3``, ``countdown``,
``gsm8k``, ``math500``, ``jsonl:path=my.jsonl,prompt_field=q,gold_field=a`` … (see
``ponder.tasks.get_task``).
"""

from __future__ import annotations

import json
import sys
from itertools import islice
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ponder.cli.common import fail, user_errors
from ponder.cli.verify import line_progress
from ponder.io import json_objects

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("list")
def list_tasks() -> None:
    """Print every registered task name with its one-line description."""
    from ponder.tasks import TASKS, describe

    table = Table("task", "what it is")
    for name in TASKS:
        table.add_row(name, describe(name))
    console.print(table)


@app.command("show")
@user_errors
def show(
    task: str = typer.Argument(..., help="Task spec, e.g. addition:digits=3 or gsm8k."),
    split: str = typer.Option("test", help="train or test."),
    n: int = typer.Option(3, min=1, help="How many examples to print."),
    as_json: bool = typer.Option(False, "--json", help="Print examples as JSON lines."),
) -> None:
    """Print the first N examples of a task split."""
    from ponder.tasks import get_task

    t = get_task(task)
    for ex in islice(t.examples(split), n):
        if as_json:
            sys.stdout.write(json.dumps(ex, ensure_ascii=False) + "\n")
        else:
            console.rule(f"[bold]{ex['id']}")
            console.print(ex["prompt"], highlight=False, markup=False)
            console.print(f"[green]gold:[/] {ex['gold']}", highlight=False)


@app.command("score")
@user_errors
def score(
    task: str = typer.Argument(..., help="Task spec, e.g. countdown or math500."),
    completions: Path = typer.Argument(..., help='JSONL lines {"id": …, "completion": …} (or {"gold", "meta", "completion"}).'),
    split: str = typer.Option("test", help="Split that the ids refer to."),
) -> None:
    """Score completions with the task's verifier: one JSON verdict per line, accuracy on stderr."""
    from ponder.tasks import get_task

    t = get_task(task)
    if not completions.is_file():
        fail(f"{completions}: no such file")
    by_id = None
    correct = total = 0
    with line_progress(completions, f"score {task}") as advance:
        for n, row in json_objects(completions):
            advance()
            if not isinstance(row.get("completion"), str):
                fail(f"{completions}:{n}: each line needs a string field \"completion\"")
            if "gold" in row:
                ex = {"id": str(row.get("id", n)), "prompt": row.get("prompt", ""), "gold": str(row["gold"]), "meta": row.get("meta") or {}}
            elif "id" in row:
                if by_id is None:
                    by_id = {e["id"]: e for e in t.examples(split)}
                ex = by_id.get(str(row["id"]))
                if ex is None:
                    fail(f"{completions}:{n}: id {row['id']!r} is not an example of {task} ({split} split)")
            else:
                fail(f"{completions}:{n}: each line needs \"id\" (an example of the task) or \"gold\"")
            v = t.score(row["completion"], ex)
            correct += v.correct
            total += 1
            out = {"line": n, "id": ex["id"], "correct": v.correct, "reason": v.reason, "answer": v.answer, "gold": ex["gold"]}
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    Console(stderr=True).print(f"accuracy {correct}/{total} = {correct / max(total, 1):.3f}")
