"""``ponder budget-curve MODEL --task T --budgets 16,32,64,128``: accuracy vs thinking budget.

Writes ``budget_curve.csv`` and ``budget_curve.png`` (accuracy with its 95% interval, and mean
reasoning tokens, per budget) into ``--out``, and prints the table. Every option is a field of
``ponder.evaluate.budget.BudgetCurveConfig`` (so ``--config curve.yaml`` and ``--set key=value``
work too); a killed sweep resumes at the first budget not yet measured.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ponder.cli.configcli import command
from ponder.evaluate.budget import CSV_NAME, PNG_NAME, BudgetCurveConfig, run_budget_curve

console = Console(highlight=False)


def _run(cfg: BudgetCurveConfig) -> None:
    points = run_budget_curve(cfg, progress=True, log=lambda m: console.print(m, style="cyan", markup=False))
    table = Table("budget", "accuracy", "95% CI", "reasoning tok", "answer tok", "cut off", "waits")
    for p in points:
        table.add_row(str(p.budget), f"{p.accuracy:.3f}", f"{p.ci_low:.2f}–{p.ci_high:.2f}",
                      f"{p.mean_reasoning_tokens:.1f}", f"{p.mean_answer_tokens:.1f}",
                      f"{p.cut_off_rate:.0%}", f"{p.mean_waits:.2f}")
    console.print(table)
    out = Path(cfg.out)
    console.print(f"wrote {out / CSV_NAME} and {out / PNG_NAME}", markup=False)


_base = command(BudgetCurveConfig, _run, "Measure accuracy vs thinking budget on a task; write a CSV and a PNG.")


def budget_curve(model: Optional[str] = None, **kwargs) -> None:
    """Measure accuracy vs thinking budget on a task; write a CSV and a PNG."""
    if model is not None:
        kwargs["model"] = model
    return _base(**kwargs)


_model_arg = inspect.Parameter(
    "model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str],
    default=typer.Argument(None, help="Local checkpoint directory or openai:<model>@<base_url>."),
)
budget_curve.__signature__ = inspect.Signature(
    [_model_arg] + [p for name, p in inspect.signature(_base).parameters.items() if name != "model"])
