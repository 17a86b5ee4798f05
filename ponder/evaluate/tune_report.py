"""What ``ponder tune`` writes for people: the Pareto plot (PNG) and report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def plot_front(points: Sequence[dict], front: Sequence[int], chosen: dict[str, int], path: Path,
               title: str = "") -> None:
    """Accuracy vs mean tokens per problem: every point (grey), the front (a line, labelled), the
    chosen effort levels (ringed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    xs = [p["tokens"] for p in points]
    ys = [100 * p["accuracy"] for p in points]
    ax.scatter(xs, ys, s=18, color="0.65", label="swept points", zorder=2)
    fx = [points[i]["tokens"] for i in front]
    fy = [100 * points[i]["accuracy"] for i in front]
    ax.plot(fx, fy, "-o", color="tab:blue", ms=6, label="Pareto front", zorder=3)
    for i in front:
        ax.annotate(points[i]["label"], (points[i]["tokens"], 100 * points[i]["accuracy"]), fontsize=7,
                    xytext=(4, -10), textcoords="offset points")
    for lvl, i in chosen.items():
        ax.scatter([points[i]["tokens"]], [100 * points[i]["accuracy"]], s=160, facecolors="none",
                   edgecolors={"low": "tab:green", "medium": "tab:orange", "high": "tab:red"}[lvl], linewidths=2,
                   label=f"{lvl}: {points[i]['label']}", zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("mean tokens per problem (log)")
    ax.set_ylabel("accuracy on dev (%)")
    ax.set_title(title or "accuracy vs tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def write_report(data: dict, path: Path) -> None:
    """report.md: the chosen levels on dev and held-out, then every swept point."""
    cfg = data["config"]
    lines = [f"# ponder tune: {data['model']} on {cfg['task']}", "",
             f"Split {cfg['split']}: {len(data['dev_ids'])} dev problems, {len(data['held_out_ids'])} held out. "
             f"Sampling: temperature {cfg['temperature']}, top-p {cfg['top_p']}, max_tokens {cfg['max_tokens']}, "
             f"seed {cfg['seed']}. Accuracy intervals: Wilson 95%.", "",
             "## Effort levels (chosen on dev, checked on held-out)", "",
             "| level | point | dev accuracy | dev tokens | held-out accuracy | held-out 95% CI | held-out tokens |",
             "|---|---|---|---|---|---|---|"]
    rows = [(lvl, e["point"], e["dev"], e["held_out"]) for lvl, e in data["efforts"].items()]
    if data.get("reference_held_out"):
        ref = next(p for p in data["points"] if p["label"] == data["reference"])
        rows.append(("reference", data["reference"], ref, data["reference_held_out"]))
    for lvl, name, d, h in rows:
        lines.append(f"| {lvl} | {name} | {_pct(d['accuracy'])} | {d['tokens']:.1f} | {_pct(h['accuracy'])} | "
                     f"[{_pct(h['ci_low'])}, {_pct(h['ci_high'])}] | {h['tokens']:.1f} |")
    lines += ["", f"Rule: high = the most accurate point; medium = the cheapest front point within "
              f"{100 * cfg['medium_tolerance']:g} points of {data['reference'] or 'high'}; low = the cheapest front "
              f"point within {100 * cfg['low_tolerance']:g} points of high. `serve.yaml` maps the levels for "
              "`ponder serve MODEL --config serve.yaml`; the plot is `pareto.png`.", "",
              "## Every point on dev", "", "| point | front | accuracy | 95% CI | tokens/problem | samples/problem |",
              "|---|---|---|---|---|---|"]
    for p in sorted(data["points"], key=lambda p: p["tokens"]):
        lines.append(f"| {p['label']} | {'yes' if p['front'] else ''} | {_pct(p['accuracy'])} | "
                     f"[{_pct(p['ci_low'])}, {_pct(p['ci_high'])}] | {p['tokens']:.1f} | {p['samples']:.1f} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
