"""``ponder eval MODEL --task TASK …``, ``ponder eval compare RUN1 RUN2 …`` and ``ponder eval reproduce CARD``.

``eval`` is a group whose default command is the evaluation itself: ``ponder eval MODEL …`` is
routed to ``ponder eval run MODEL …`` unless the first word names a subcommand (``compare``,
``protocols``, ``reproduce``).
Every option of ``run`` comes from ``ponder.evaluate.harness.EvalConfig`` (help text included).
"""

from __future__ import annotations

import inspect
import json
from typing import Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from ponder.cli.common import fail, user_errors
from ponder.cli.configcli import command
from ponder.evaluate.harness import PROTOCOL_KEYS, EvalConfig
from ponder.evaluate.protocol import resolve

console = Console()


class _DefaultRun(TyperGroup):
    """A group that treats an unknown first word as the MODEL of the ``run`` command."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultRun, no_args_is_help=True,
                  help="Evaluate a model on a task (ponder eval MODEL --task T), compare runs, or reproduce a run's card.")


def _run(cfg: EvalConfig) -> None:
    from ponder.evaluate.harness import run_eval

    res = run_eval(cfg, console=console)
    m = res.metrics
    if "sweep" in m:
        for row in m["sweep"]:
            console.print(f"budget {row['budget']:>6}: pass@1 {100 * row['accuracy']:.1f}% "
                          f"[{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]  "
                          f"reasoning tokens {row['mean_reasoning_tokens']:.0f}  cut off {100 * row['cut_off_rate']:.0f}%")
    else:
        p = m["pass@1"]
        ks = ", ".join(f"pass@{k} {100 * v:.1f}%" for k, v in m["pass@k"].items() if k != "1")
        console.print(f"pass@1 {100 * p['mean']:.1f}% [95% CI {100 * p['low']:.1f}, {100 * p['high']:.1f}] over "
                      f"{m['complete_problems']} problems × n={m['n']}" + (f"; {ks}" if ks else ""), highlight=False)
        for rule, c in list((m.get("extractions") or {}).items())[1:]:
            console.print(f"pass@1 with extraction {rule}: {100 * c['mean']:.1f}% [95% CI {100 * c['low']:.1f}, "
                          f"{100 * c['high']:.1f}]", highlight=False)
        console.print(f"maj@{m['n']} {100 * m['maj@k'][str(m['n'])]:.1f}%, strategy {m['strategy']['name']} "
                      f"{100 * m['strategy']['accuracy']['mean']:.1f}%, {res.new_samples} new samples", highlight=False)
        if m.get("contamination"):  # --check-contamination
            from ponder.evaluate.contamination import console_line

            console.print(console_line(m), highlight=False, soft_wrap=True)
        if m.get("judge"):  # --judge
            from ponder.evaluate.judge import console_line as judge_line

            console.print(judge_line(m), highlight=False, soft_wrap=True)
        if m["incomplete_problems"]:
            console.print(f"[yellow]warning:[/] {m['incomplete_problems']} problems lack samples (failed requests) and "
                          "are left out of the metrics; rerun with --resume to finish them", highlight=False)
        if m.get("unclosed"):
            console.print(f"note: {m['unclosed']} samples never closed </think> (see the report; --thinking off "
                          "if the model does not think)", highlight=False)
    console.print(f"report: {res.out / 'report.md'}; reproduction card: {res.out / 'card.json'}", highlight=False)
    failed = m.get("failed_requests") or sum(r.get("failed_requests", 0) for r in m.get("sweep", []))
    if failed:
        fail(f"{failed} request(s) failed for good; last error: {m.get('last_error')}", code=1)
    judge_failed = (m.get("judge") or {}).get("verdicts", {}).get("error", 0)
    if judge_failed:
        fail(f"{judge_failed} judge call(s) failed; rerun with --resume to judge them", code=1)


run_cmd = command(EvalConfig, _run, "Sample MODEL on a task, score every sample, write records, metrics and a report.",
                  base=lambda data: resolve(data, PROTOCOL_KEYS))
# MODEL is positional: swap the generated --model option for an argument (same field, same help)
_params = [
    p.replace(default=typer.Argument(None, help="Local checkpoint directory or openai:<model>@<base_url>.",
                                     show_default=False))
    if p.name == "model" else p
    for p in run_cmd.__signature__.parameters.values()
]
_params.sort(key=lambda p: p.name != "model")
run_cmd.__signature__ = inspect.Signature(
    [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in _params])
app.command("run", help="Evaluate MODEL on --task (the default: `ponder eval MODEL …` runs this).")(run_cmd)


@app.command("compare")
@user_errors
def compare(
    runs: list[str] = typer.Argument(..., help="Run directories (the first is the baseline)."),
    alpha: float = typer.Option(0.05, help="Significance level of the paired bootstrap test."),
    as_json: Optional[str] = typer.Option(None, "--json", help="Also write the comparison as JSON to this file."),
    md: Optional[str] = typer.Option(None, "--md", help="Also write the comparison as Markdown to this file."),
) -> None:
    """Side-by-side metrics of eval runs, differences, and a paired test on their shared problems."""
    from ponder.evaluate.compare import compare_runs, render, to_markdown

    result = compare_runs(runs, alpha=alpha)
    render(result, console)
    if md:
        with open(md, "w", encoding="utf-8") as f:
            f.write(to_markdown(result))
    if as_json:
        with open(as_json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


@app.command("protocols")
@user_errors
def protocols(name: Optional[str] = typer.Argument(None, help="Show this protocol's fields and source.")) -> None:
    """The evaluation protocols --protocol takes: what each sets and where it comes from."""
    from ponder.evaluate.protocol import load_protocol, protocol_names

    for pname in [name] if name else protocol_names():
        p = load_protocol(pname, PROTOCOL_KEYS)
        console.print(f"[bold]{p.name}[/]  {p.path}", highlight=False)
        console.print(f"  {p.description}", highlight=False, soft_wrap=True)
        console.print(f"  source: {p.source}", highlight=False, soft_wrap=True)
        if name:
            for k, v in p.fields.items():
                console.print(f"  {k}: {v!r}", highlight=False)


@app.command("reproduce")
@user_errors
def reproduce(
    card: str = typer.Argument(..., help="card.json of an eval run, or the run directory holding it."),
    model: Optional[str] = typer.Option(None, help="Where the model is now (a checkpoint directory or "
                                        "openai:<model>@<base_url>); default: the card's model."),
    out: Optional[str] = typer.Option(None, help="Run directory of the re-run (default <run>-reproduce-<time>)."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Run even when weights, tokenizer, chat "
                                        "template, data or prompts differ from the card."),
    exact: bool = typer.Option(False, "--exact", help="Also require every sample to be identical (greedy or "
                               "seeded local runs on the same machine and versions)."),
    alpha: float = typer.Option(0.05, help="Significance level of the paired bootstrap test."),
) -> None:
    """Recompute a card's inputs, name every difference, re-run its config and say whether the result
    reproduces: exit 0 reproduced, 1 not reproduced, 2 bad input or differing inputs."""
    from ponder.evaluate.reproduce import reproduce as run_reproduce

    rep = run_reproduce(card, model=model, out=out, allow_mismatch=allow_mismatch, exact=exact, alpha=alpha,
                        console=console)
    if rep.reproduced:
        console.print(f"[green]reproduced[/]: no significant difference from {rep.original} (alpha={alpha}); "
                      f"new run {rep.out}", highlight=False)
        return
    console.print(f"[red]not reproduced[/]: {'; '.join(rep.reasons)}; new run {rep.out}", highlight=False)
    raise typer.Exit(1)
