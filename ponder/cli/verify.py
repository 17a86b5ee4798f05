"""``ponder verify``: is an answer mathematically equal to a gold answer?

One pair: ``ponder verify --gold '\\frac12' --answer 0.5`` prints ``true`` (exit 0) or
``false`` (exit 1). Many pairs: ``ponder verify --pairs pairs.jsonl`` reads
``{"gold": …, "answer": …}`` lines and writes one JSON verdict per line to stdout
(``{"line": N, "gold": …, "answer": …, "equal": bool}``); blank lines are skipped and a
malformed line stops with an error naming its line number.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ponder.cli.common import fail, user_errors


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
        with open(pairs, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    fail(f"{pairs}:{n}: not valid JSON ({e.msg})")
                if not isinstance(row, dict) or "gold" not in row or "answer" not in row:
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
