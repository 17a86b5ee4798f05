"""``ponder choose``: rank reasoning models with a weighted decision matrix (see ponder/choose.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ponder.cli.common import user_errors

console = Console()


@user_errors
def choose(
    weights: str = typer.Option("accuracy=3,cost=2,open=1", help="factor=weight pairs; factors: accuracy, aime, "
                                "measured, cost, open, context, controls."),
    runs: Optional[list[Path]] = typer.Option(None, "--runs", help="Eval run directories (or folders of runs) whose "
                                              "measured pass@1 fills the 'measured' factor (repeatable)."),
    catalog: Optional[list[Path]] = typer.Option(None, "--catalog", help="Extra YAML dirs/files of your own models "
                                                 "(same schema as ponder/catalog/*.yaml; repeatable)."),
    norm: str = typer.Option("minmax", help="Normalisation of each factor: minmax, zscore or rank."),
    min_coverage: float = typer.Option(0.5, help="Rank only models whose available factors carry at least this "
                                       "share of the total weight (others are listed unranked)."),
    task: Optional[str] = typer.Option(None, help="Use only runs on this task for 'measured' (default: all)."),
    only: Optional[str] = typer.Option(None, help="Comma-separated model names to keep (default: all)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the matrix as CSV."),
    md: Optional[Path] = typer.Option(None, "--md", help="Also write the matrix as Markdown."),
) -> None:
    """Score catalog models (plus your runs) on weighted, normalised factors; missing values are flagged, never 0."""
    from ponder.choose import build_matrix, load_catalog, merge_runs, parse_weights, render, to_csv, to_markdown

    w = parse_weights(weights)
    models = load_catalog(extra=catalog or [])
    if runs:
        models = merge_runs(models, runs, task=task)
    if only:
        keep = {s.strip().lower() for s in only.split(",") if s.strip()}
        missing = keep - {m["name"].lower() for m in models}
        if missing:
            raise ValueError(f"--only: unknown model(s) {', '.join(sorted(missing))}")
        models = [m for m in models if m["name"].lower() in keep]
    matrix = build_matrix(models, w, norm=norm, min_coverage=min_coverage)
    render(matrix, console)
    if csv:
        csv.write_text(to_csv(matrix))
        console.print(f"wrote {csv}", highlight=False)
    if md:
        md.write_text(to_markdown(matrix))
        console.print(f"wrote {md}", highlight=False)
