"""``ponder data``: checks on training data. ``ponder data overlap TRAIN… --eval EVAL`` lists the
eval problems that share a word 13-gram with the training data (``ponder.evaluate.contamination``).

TRAIN is a JSONL file (SFT pairs, chat messages, task data, any file with a text field) or a task
spec, whose train split is read; EVAL is a task spec (its test split) or a JSONL file.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.console import Console

from ponder.cli.common import user_errors
from ponder.evaluate.contamination import NGRAM, SHORT_MIN, TEXT_FIELDS

app = typer.Typer(no_args_is_help=True)
console = Console(stderr=True)  # the flagged problems and summary; stdout stays free for --json -


@app.command("overlap")
@user_errors
def overlap(
    train: list[str] = typer.Argument(..., help="Training data: JSONL files or task specs (their train split)."),
    eval_set: str = typer.Option(..., "--eval", help="Eval set: a task spec (gsm8k, math500, …) or a JSONL file."),
    split: str = typer.Option("test", help="Split of a task-spec eval set."),
    train_split: str = typer.Option("train", help="Split read from a task-spec TRAIN."),
    field: Optional[list[str]] = typer.Option(
        None, "--field", help=f"Text field of the training rows (repeatable); default every one of {', '.join(TEXT_FIELDS)} present."),
    eval_field: Optional[str] = typer.Option(None, help="Problem field of a JSONL eval set (default: problem, question, prompt, text, messages)."),
    ngram: int = typer.Option(NGRAM, min=1, help="N of the word N-grams (13: lm-eval and GPT-3's maximum)."),
    min_overlap: int = typer.Option(1, min=1, help="Flag a problem sharing at least this many distinct N-grams (1: any)."),
    short_min: int = typer.Option(SHORT_MIN, min=1, help="Problems of short-min..N-1 tokens are matched whole; shorter ones are not checked (N: lm-eval's rule)."),
    as_json: Optional[str] = typer.Option(None, "--json", help="Write the full report (every problem) as JSON to this file; - for stdout."),
    show: int = typer.Option(20, min=0, help="Flagged problems listed in the table."),
) -> None:
    """Eval problems that share word N-grams with training data, with the training lines they came from."""
    from ponder.evaluate.contamination import check

    result = check(train, eval_set, split=split, eval_field=eval_field, n=ngram, min_overlap=min_overlap,
                   short_min=short_min, fields=field or (), train_split=train_split, progress=True, console=console)
    report = result.to_json(eval_set, split)
    rows = [p for p in report["problems"] if p["flagged"]]
    for p in rows[:show]:  # one line each: readable at any terminal width, greppable
        src = p["sources"][0] if p["sources"] else None
        shared = (f"{p['overlap']}/{p['ngrams']} {ngram}-grams" if p["check"] == "ngram"
                  else f"the whole problem ({p['tokens']} tokens)")
        console.print(f"[bold]{p['id']}[/]: {shared} in {p['source_lines']} training line(s), first "
                      f"{src['file']}:{src['line']}: \"{p['example']}\"", highlight=False, soft_wrap=True)
    if len(rows) > show:
        console.print(f"… and {len(rows) - show} more flagged (--show, --json)", highlight=False)
    scanned = sum(t["rows"] for t in report["train"])
    console.print(f"{eval_set} ({split}): {report['flagged']} of {len(report['problems'])} problems share "
                  f"{'a' if min_overlap == 1 else f'>= {min_overlap}'} {ngram}-gram with {scanned} training rows; "
                  f"{report['checked_whole']} short problems matched whole, {report['too_short']} too short to check "
                  f"(< {short_min} tokens); {report['seconds']:.1f} s", highlight=False, soft_wrap=True)
    if as_json == "-":
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    elif as_json:
        from ponder.io import write_json_atomic

        write_json_atomic(as_json, report)
        console.print(f"report: {as_json}", highlight=False)
