"""``ponder rewards list`` and ``ponder rewards score --rewards SPEC FILE.jsonl``.

``list`` prints every registered reward with its parameters and formula. ``score`` reads one
sample per line -- ``{"completion": str or chat messages, "prompt": optional, <columns>…}``,
columns as TRL passes them (``gold``/``solution``, ``task``, ``meta``, ``template``,
``prefilled_think``…) -- calls each reward of SPEC once over all lines, exactly as TRL's
GRPOTrainer would over a batch (lines with the same prompt form a group, for the group rewards),
and writes ``{reward_name: float | null}`` per line. SPEC is the ``--rewards`` string of
``ponder train grpo`` (``accuracy=1,format=0.5,cosine(max_len=512)``; weights are ignored here).
Every line is checked before anything is written; bad input stops with one error (exit 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ponder.cli.common import fail, user_errors
from ponder.io import json_objects

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("list")
def list_rewards(as_json: bool = typer.Option(False, "--json", help="One JSON object per reward.")) -> None:
    """Every registered reward: name, parameters (with defaults) and its formula."""
    from ponder.rewards import describe

    rows = describe()
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r, default=str) + "\n")
        return
    table = Table("reward", "parameters", "formula")
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items()) or "-"
        table.add_row(r["name"], params, r["formula"])
    Console().print(table)


@app.command("score")
@user_errors
def score(
    file: Path = typer.Argument(..., help='JSONL, one {"completion": …, "prompt": …, <columns>} object per line.'),
    rewards: str = typer.Option(..., "--rewards", help="Reward spec, e.g. 'accuracy,format,cosine(max_len=512)'."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of stdout (atomically)."),
) -> None:
    """Score samples with reward functions, one {reward: value} object per line."""
    from ponder.io import write_text_atomic
    from ponder.rewards import parse_reward_spec

    if not file.is_file():
        fail(f"{file}: no such file")
    funcs, _ = parse_reward_spec(rewards)
    rows = []
    for n, row in json_objects(file):
        c = row.get("completion")
        if not (isinstance(c, str) or (isinstance(c, list) and all(isinstance(m, dict) for m in c))):
            fail(f"{file}:{n}: field \"completion\" must be a string or a list of chat messages")
        if "prompt" in row and not isinstance(row["prompt"], (str, list)):
            fail(f"{file}:{n}: field \"prompt\" must be a string or a list of chat messages")
        rows.append(row)
    if not rows:
        fail(f"{file}: no samples")
    columns = sorted({k for r in rows for k in r} - {"completion", "prompt"})
    kwargs = {k: [r.get(k) for r in rows] for k in columns}
    kwargs["prompts"] = [r.get("prompt", "") for r in rows]
    completions = [r["completion"] for r in rows]
    values = {getattr(f, "__name__", str(f)): f(completions, **kwargs) for f in funcs}
    text = "".join(json.dumps({name: v[i] for name, v in values.items()}) + "\n" for i in range(len(rows)))
    if out is not None:
        write_text_atomic(out, text)
    else:
        sys.stdout.write(text)
