"""``ponder run RECIPE``: run a recipe of training stages (recipes/*.yaml), resuming where it stopped.

    ponder run r1                                   # recipes/r1.yaml
    ponder run recipes/r1.yaml --set grpo.steps=50 --set out=runs/r1-short
    ponder run r1 --dry-run                         # print the resolved recipe, run nothing

See ``ponder.train.pipeline`` for the recipe format, ``@stage`` references and resume rules.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from ponder.cli.common import user_errors

console = Console(stderr=True)


@user_errors
def run(
    recipe: str = typer.Argument(..., help="Recipe name in recipes/ (r1, r1-zero, distill) or a YAML path."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a field: --set stage.field=value or --set out=DIR (repeatable)."),
    until: Optional[str] = typer.Option(None, help="Stop after this stage."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved recipe (YAML) and run nothing."),
    threads: str = typer.Option("auto", help="torch CPU threads: auto (torch's count cut to the cores no other job is running on) or N (every stage's default)."),
) -> None:
    """Run every stage of RECIPE in order; finished stages are skipped, a killed stage resumes."""
    from ponder.train.pipeline import run_recipe, set_threads

    n = set_threads(threads)  # validates --threads too
    extra = [] if threads == "auto" else [f"threads={n}"]
    if dry_run:
        run_recipe(recipe, (set_ or []) + extra, until=until, dry_run=True, log=lambda s: typer.echo(s))
        return
    console.print(f"torch threads: {n}{' (auto; each stage re-checks the load)' if threads == 'auto' else ''}",
                  highlight=False)
    results = run_recipe(recipe, (set_ or []) + extra, until=until, log=lambda s: console.print(s, highlight=False))
    last = list(results.values())[-1]
    typer.echo(last["output"])
