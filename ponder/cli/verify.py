"""``ponder verify``: is an answer mathematically equal to a gold answer?

One pair: ``ponder verify --gold '\\frac12' --answer 0.5`` prints ``true`` (exit 0) or
``false`` (exit 1). Many pairs: ``ponder verify --pairs pairs.jsonl`` reads
``{"gold": …, "answer": …}`` lines and writes one JSON verdict per line to stdout
(``{"line": N, "gold": …, "answer": …, "equal": bool}``); blank lines are skipped and a
malformed line stops with an error naming its line number. When stdout is redirected to a
file, a progress bar runs on the terminal (stderr).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ponder.cli.common import fail, user_errors
from ponder.io import json_objects


@contextmanager
def line_progress(path: Path, what: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr over the non-blank lines of ``path``; yields ``advance()``.

    Drawn only when stdout goes to a file or pipe and stderr is a terminal
    (``ponder verify --pairs p.jsonl > out.jsonl``): on a terminal the output lines themselves
    show progress, and in tests or CI nothing extra is written. stdout is never redirected,
    so the JSON lines stay byte-exact. Counting the lines first costs one extra read of the file.
    """
    console = Console(stderr=True)
    show = console.is_terminal and not sys.stdout.isatty()
    total = 0
    if show:
        with open(path, encoding="utf-8", errors="replace") as f:
            total = sum(1 for line in f if line.strip())
    columns = (TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not show,
                  redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


@user_errors
def verify(
    gold: Optional[str] = typer.Option(None, help="The reference answer (plain, LaTeX or \\boxed{})."),
    answer: Optional[str] = typer.Option(None, help="The answer to check."),
    pairs: Optional[Path] = typer.Option(None, help="JSONL file of {\"gold\":…, \"answer\":…} lines."),
    timeout: float = typer.Option(5.0, help="Seconds allowed for the symbolic fallback per pair."),
) -> None:
    from ponder.verify.math import math_equal

    if pairs is not None:
        if gold is not None or answer is not None:
            fail("use either --pairs or --gold/--answer, not both")
        if not pairs.is_file():
            fail(f"{pairs}: no such file")
        with line_progress(pairs, "verify") as advance:
            for n, row in json_objects(pairs):
                advance()
                if "gold" not in row or "answer" not in row:
                    fail(f"{pairs}:{n}: each line needs the fields \"gold\" and \"answer\"")
                g, a = str(row["gold"]), str(row["answer"])
                out = {"line": n, "gold": g, "answer": a, "equal": math_equal(g, a, timeout=timeout)}
                sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    if gold is None or answer is None:
        fail("give --gold and --answer, or --pairs FILE")
    equal = math_equal(gold, answer, timeout=timeout)
    typer.echo("true" if equal else "false")
    raise typer.Exit(0 if equal else 1)
