"""``ponder doctor MODEL``: check a model is set up the way ponder will use it, before training,
evaluating or serving it (``ponder.evaluate.doctor``; every check in docs/doctor.md).

Prints a table of PASS / WARN / FAIL / SKIP findings, each with its fix (``--json``: one JSON
object with the findings and the facts behind them, including every sample). Exit code 1 when
any check FAILs, 0 otherwise, 2 for bad input (an unusable model path, an unknown task).
"""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from ponder.cli.common import err_console
from ponder.cli.configcli import command
from ponder.evaluate.doctor import DoctorConfig, Report, diagnose

console = Console(highlight=False)
STYLE = {"PASS": "bold green", "WARN": "bold yellow", "FAIL": "bold red", "SKIP": "dim"}


def print_report(report: Report) -> None:
    table = Table(title=f"ponder doctor: {report.model} ({report.kind})", show_lines=True, title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("finding", ratio=3)
    table.add_column("fix", ratio=2)
    for f in report.findings:
        table.add_row(f.check, f"[{STYLE[f.status]}]{f.status}[/]", f.detail, f.fix)
    console.print(table, markup=True)
    c = report.counts()
    line = " · ".join(f"{c[s]} {s}" for s in ("PASS", "WARN", "FAIL", "SKIP") if c[s])
    console.print(line, style="bold red" if report.failed else "bold green", markup=False)


def run_doctor(cfg: DoctorConfig) -> None:
    import typer

    if not cfg.model.startswith("openai:"):  # the spinner replaces transformers' "Loading weights" bar
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    with err_console.status("checking", spinner="dots") as status:
        report = diagnose(cfg, progress=lambda stage: status.update(stage))
    if cfg.json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False, default=str) + "\n")
    else:
        print_report(report)
    if report.failed:
        raise typer.Exit(1)


doctor = command(DoctorConfig, run_doctor, "Check a model's template, think tags, thinking mode, EOS, context and "
                 "samples before training, evaluating or serving it.", positional="model", deprecated_flag=False)
