"""``ponder tune MODEL --task T``: sweep strategies x thinking budgets x n on a dev split, keep the
Pareto front of accuracy vs tokens, map effort low/medium/high to front points and check them
on held-out problems.

Writes ``report.md``, ``tune.json``, ``pareto.png`` and ``serve.yaml`` (``ponder serve MODEL
--config serve.yaml`` then runs the tuned point for each ``reasoning_effort``) into ``--out``.
Every option is a field of ``ponder.evaluate.tune.TuneConfig`` (``--config`` / ``--set`` work).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ponder.cli.common import fail
from ponder.cli.configcli import command
from ponder.config import from_dict, load_yaml
from ponder.evaluate.tune import TuneConfig, run_tune

console = Console(highlight=False)


def _run(cfg: TuneConfig) -> None:
    from ponder.serve.config import ServeConfig

    data = run_tune(cfg, console=console)
    table = Table("level", "point", "dev acc", "dev tok", "held-out acc", "95% CI", "held-out tok")
    rows = [(lvl, e["point"], e["dev"], e["held_out"]) for lvl, e in data["efforts"].items()]
    if data["reference_held_out"]:
        ref = next(p for p in data["points"] if p["label"] == data["reference"])
        rows.append(("reference", data["reference"], ref, data["reference_held_out"]))
    for lvl, name, d, h in rows:
        table.add_row(lvl, name, f"{d['accuracy']:.1%}", f"{d['tokens']:.1f}", f"{h['accuracy']:.1%}",
                      f"{h['ci_low']:.1%}–{h['ci_high']:.1%}", f"{h['tokens']:.1f}")
    console.print(table)
    out = Path(cfg.out)
    try:  # what serve will read: fail here, not at serve time
        from_dict(ServeConfig, load_yaml(out / "serve.yaml"), where=str(out / "serve.yaml"))
    except ValueError as e:
        fail(f"the serve config written does not load: {e}", code=1)
    console.print(f"front: {', '.join(data['front'])}", soft_wrap=True)
    console.print(f"wrote {out / 'report.md'}, {out / 'tune.json'}, {out / 'pareto.png'}, {out / 'serve.yaml'}",
                  markup=False)


tune = command(TuneConfig, _run, "Find the compute-optimal strategies on a dev split; map effort levels to them.",
               positional="model")
