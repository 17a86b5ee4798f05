"""``ponder budget-curve MODEL --task T --budgets 16,32,64,128``: accuracy vs thinking budget.

The sweep of ``ponder eval --budgets`` with defaults for a quick curve: writes ``budget_curve.csv``
and ``budget_curve.png`` (accuracy with its 95% interval, and mean reasoning tokens, per budget),
``report.md`` and one eval run per budget into ``--out``, and prints the table. Every option is a
field of ``ponder.evaluate.budget.BudgetCurveConfig`` (so ``--config curve.yaml`` and ``--set
key=value`` work too); a killed sweep resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ponder.cli.common import fail
from ponder.cli.configcli import command
from ponder.evaluate.budget import CSV_NAME, PNG_NAME, BudgetCurveConfig, run_budget_curve

console = Console(highlight=False)


def _run(cfg: BudgetCurveConfig) -> None:
    rows = run_budget_curve(cfg, progress=True, console=console)
    table = Table("budget", "accuracy", "95% CI", "reasoning tok", "answer tok", "cut off", "waits")
    for r in rows:
        table.add_row(str(r["budget"]), f"{r['accuracy']:.3f}", f"{r['ci_low']:.2f}–{r['ci_high']:.2f}",
                      f"{r['mean_reasoning_tokens']:.1f}", f"{r['mean_answer_tokens']:.1f}",
                      f"{r['cut_off_rate']:.0%}", f"{r['mean_waits']:.2f}")
    console.print(table)
    out = Path(cfg.out)
    console.print(f"wrote {out / CSV_NAME} and {out / PNG_NAME}", markup=False)
    failed = sum(r.get("failed_requests", 0) for r in rows)
    if failed:
        fail(f"{failed} request(s) failed for good (see {out}/budget-<B>/metrics.json)", code=1)


budget_curve = command(BudgetCurveConfig, _run, "Measure accuracy vs thinking budget on a task; write a CSV and a PNG.",
                       positional="model")
