"""Accuracy vs thinking budget: sweep ``Budget.thinking_budget`` over a task, write a CSV and a plot.

For each budget B the model answers every problem n times with ``Budget(thinking_budget=B)``: when
its reasoning reaches B tokens the engine forces ``</think>`` and the model must answer (the
cut-off mode of s1, Muennighoff et al. 2025, arXiv:2501.19393). With ``min_thinking_frac`` > 0 it
also forces at least ``frac · B`` reasoning tokens by replacing an early ``</think>`` with "Wait"
(s1's budget forcing, local models only). Per budget the curve records accuracy (pass@1 = mean
over problems of correct/n, with a 95% interval), mean reasoning and answer tokens per sample,
how often the cut-off fired, and the mean "Wait"s inserted.

Each finished budget is saved at once (``points.json``, written atomically), so a killed sweep
resumes at the first missing budget when run again with the same settings.

    from ponder.evaluate.budget import BudgetCurveConfig, run_budget_curve
    points = run_budget_curve(BudgetCurveConfig(model="runs/sft/final", task="addition",
                                                budgets=[16, 32, 64], out="curve"))
"""

from __future__ import annotations

import csv
import json
import textwrap
from dataclasses import asdict, dataclass, fields
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Sequence

from ponder.config import ConfigError, option
from ponder.evaluate.metrics import mean_ci
from ponder.generate.types import Backend, Budget, SamplingParams

CSV_NAME, PNG_NAME, STATE_NAME = "budget_curve.csv", "budget_curve.png", "points.json"


@dataclass
class BudgetCurveConfig:
    """Settings of one accuracy-vs-thinking-budget sweep."""

    model: str = option("", "Local checkpoint directory or openai:<model>@<base_url>.")
    task: str = option("addition", "Task spec, e.g. addition, countdown, gsm8k, jsonl:path=...")
    budgets: list[int] = option([16, 32, 64, 128], "Thinking budgets in tokens, comma-separated (0 = no thinking).")
    n: int = option(4, "Samples per problem and budget (accuracy is their mean: pass@1).")
    limit: int = option(50, "How many problems of the split to use (the first ones).")
    split: str = option("test", "Task split: train or test.")
    temperature: float = option(0.7, "Sampling temperature (0 = greedy; then use n=1).")
    top_p: float = option(0.95, "Nucleus sampling threshold (1 = off).")
    max_tokens: int = option(64, "Most answer tokens after the thinking ends.")
    min_thinking_frac: float = option(0.0, "Budget forcing: force at least this fraction of each budget with 'Wait' (0 = cut-off only; local models only).")
    max_waits: int = option(2, "Most 'Wait's inserted per completion when forcing.")
    template: str = option("think", "Answer format the judge expects: think or r1-zero.")
    system: str | None = option(None, "System prompt (unset or empty: none, the layout ponder's models are trained with).")
    thinking: str = option("auto", "Thinking mode: auto, on (pre-fill <think>) or off.")
    timeout: float = option(600.0, "Endpoints: seconds per request.")
    extra_body: str = option("", "Endpoints: a JSON object merged into every request.")
    tokenizer: str = option("", "Endpoints: the served model's tokenizer (dir or .gguf): exact budgets and forcing via /v1/completions.")
    seed: int = option(0, "Sampling seed (the same seed at every budget).")
    chunk: int = option(16, "Problems per generate call.")
    out: str = option("budget_curve", "Output directory for budget_curve.csv, budget_curve.png and points.json.")

    def __post_init__(self) -> None:
        if not self.budgets:
            raise ConfigError("budgets: give at least one thinking budget")
        if any(not isinstance(b, int) or b < 0 for b in self.budgets):
            raise ConfigError(f"budgets must be ints >= 0, got {self.budgets}")
        if len(set(self.budgets)) != len(self.budgets):
            raise ConfigError(f"budgets has duplicates: {self.budgets}")
        for name in ("n", "limit", "chunk", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.min_thinking_frac <= 1:
            raise ConfigError(f"min_thinking_frac must be in [0, 1], got {self.min_thinking_frac}")
        if self.max_waits < 0:
            raise ConfigError(f"max_waits must be >= 0, got {self.max_waits}")


@dataclass
class BudgetPoint:
    """One point of the curve (means are per sample, over all problems and samples)."""

    budget: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_reasoning_tokens: float
    mean_answer_tokens: float
    cut_off_rate: float  # share of samples whose reasoning the budget cut off
    mean_waits: float
    problems: int
    samples: int


def _budget(b: int, cfg: BudgetCurveConfig) -> Budget:
    return Budget(thinking_budget=b, min_thinking=int(cfg.min_thinking_frac * b), max_waits=cfg.max_waits)


def sweep(backend: Backend, task, examples: Sequence[dict], budgets: Sequence[int], n: int,
          sampling: SamplingParams, make_budget: Callable[[int], Budget], chunk: int = 16,
          done: dict[int, BudgetPoint] | None = None, on_point: Callable[[BudgetPoint], None] | None = None,
          progress: bool = False, system: str | None = None, template: str = "auto",
          seed_of: Callable[[int, Sequence[dict]], int | None] | None = None) -> list[BudgetPoint]:
    """The curve: one ``BudgetPoint`` per budget, in ``budgets`` order (``ponder eval --budgets``
    and ``ponder budget-curve`` both run it). Samples are drawn and judged by
    ``ponder.generate.scoring.sample_and_score``; ``done`` holds points to reuse (resume);
    ``on_point`` is called after each new point (to save it).
    """
    from rich.progress import Progress

    from ponder.generate.scoring import sample_and_score

    done = dict(done or {})
    todo = [b for b in budgets if b not in done]
    with Progress(disable=not progress, transient=True) as bar:
        job = bar.add_task("budget sweep", total=len(todo) * len(examples))
        for b in todo:
            bar.update(job, description=f"budget {b}")
            per_problem, rt, at, cut, waits = [], 0, 0, 0, 0
            for scored in sample_and_score(backend, task, examples, n=n, sampling=sampling, budget=make_budget(b),
                                           system=system, batch=chunk, template=template, seed_of=seed_of):
                group = [s.completion for s in scored]
                per_problem.append(sum(s.verdict.correct for s in scored) / len(scored))
                rt += sum(c.reasoning_tokens for c in group)
                at += sum(c.answer_tokens for c in group)
                cut += sum(c.forced_close for c in group)
                waits += sum(c.waits for c in group)
                bar.advance(job, 1)
            total = len(examples) * n
            acc, lo, hi = mean_ci(per_problem)
            p = BudgetPoint(b, acc, lo, hi, rt / total, at / total, cut / total, waits / total, len(examples), total)
            done[b] = p
            if on_point is not None:
                on_point(p)
    return [done[b] for b in budgets]


def _settings(cfg: BudgetCurveConfig) -> dict[str, Any]:
    """The settings a saved point depends on (a resume must not mix different sweeps)."""
    d = asdict(cfg)
    for k in ("budgets", "out", "chunk", "timeout"):
        d.pop(k)
    return d


def load_points(out: Path, cfg: BudgetCurveConfig) -> dict[int, BudgetPoint]:
    """Points saved by an earlier run of the same settings (empty when none or different)."""
    path = out / STATE_NAME
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e.msg}); delete it to start the sweep afresh") from e
    if state.get("settings") != _settings(cfg):
        return {}
    names = {f.name for f in fields(BudgetPoint)}
    return {int(p["budget"]): BudgetPoint(**{k: v for k, v in p.items() if k in names}) for p in state["points"]}


def write_csv(points: Sequence[BudgetPoint], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=[x.name for x in fields(BudgetPoint)])
        w.writeheader()
        for p in points:
            w.writerow(asdict(p))


def plot(points: Sequence[BudgetPoint], path: Path, title: str) -> None:
    """Accuracy (with its 95% interval) and mean reasoning tokens against the budget, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(points, key=lambda p: p.budget)
    xs = [p.budget for p in pts]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(xs, [p.accuracy for p in pts], "o-", color="tab:blue", label="accuracy (pass@1)")
    ax.fill_between(xs, [p.ci_low for p in pts], [p.ci_high for p in pts], color="tab:blue", alpha=0.15)
    ax.set_xlabel("thinking budget (tokens)")
    ax.set_ylabel("accuracy", color="tab:blue")
    ax.set_ylim(0, 1)
    pos = [x for x in xs if x > 0]
    if pos and max(pos) / min(pos) >= 8:  # budgets doubling: log2 axis (linear near a budget of 0)
        ax.set_xscale("symlog", base=2, linthresh=min(pos)) if 0 in xs else ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
    ax2 = ax.twinx()
    ax2.plot(xs, [p.mean_reasoning_tokens for p in pts], "s--", color="tab:orange", label="mean reasoning tokens")
    ax2.set_ylabel("mean reasoning tokens", color="tab:orange")
    ax2.set_ylim(bottom=0)
    ax.set_title("\n".join(textwrap.wrap(title, 72, break_on_hyphens=False)), fontsize=9)  # long task specs wrap, not clip
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_budget_curve(cfg: BudgetCurveConfig, backend: Backend | None = None, progress: bool = False,
                     log: Callable[[str], None] | None = None) -> list[BudgetPoint]:
    """Run the sweep of ``cfg`` (resuming saved budgets) and write the CSV and PNG into ``cfg.out``."""
    from ponder.evaluate.harness import request_seed
    from ponder.generate.backends import load_backend
    from ponder.io import write_json_atomic
    from ponder.tasks import get_task

    if not cfg.model and backend is None:
        raise ConfigError("model: give a local checkpoint directory or openai:<model>@<base_url>")
    task = get_task(cfg.task)
    examples = list(islice(task.examples(cfg.split), cfg.limit))
    if not examples:
        raise ConfigError(f"task {cfg.task!r} has no examples in split {cfg.split!r}")
    if backend is None:
        backend = load_backend(cfg.model, thinking=cfg.thinking, timeout=cfg.timeout, extra_body=cfg.extra_body or None,
                               tokenizer=cfg.tokenizer or None)
    if cfg.min_thinking_frac and not backend.capabilities.forcing:
        raise ConfigError("--min-thinking-frac (budget forcing) rewrites the reasoning as it is written: it needs a local "
                          "checkpoint, an endpoint with --tokenizer (raw completions) or a `ponder serve` endpoint")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    done = load_points(out, cfg)
    if done and log:
        log(f"resuming: budgets {sorted(done)} already measured in {out / STATE_NAME}")
    saved = dict(done)

    def save(p: BudgetPoint) -> None:
        saved[p.budget] = p
        write_json_atomic(out / STATE_NAME, {"settings": _settings(cfg),
                                             "points": [asdict(x) for x in saved.values()]})

    sampling = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=cfg.seed)
    points = sweep(backend, task, examples, cfg.budgets, cfg.n, sampling, lambda b: _budget(b, cfg), cfg.chunk, done,
                   save, progress, system=cfg.system, template=cfg.template,
                   seed_of=lambda b, exs: request_seed(cfg.seed, exs[0]["id"], 0))
    write_csv(points, out / CSV_NAME)
    mode = "cut-off" + (f" + forcing {cfg.min_thinking_frac:g}·B" if cfg.min_thinking_frac else "")
    if backend.budget_honoured is False:
        # the server ignored the budget fields: only max_tokens = budget + answer bounded the reasoning
        mode = "the server ignored the thinking budget: this sweeps max_tokens = budget + max_tokens"
        if log:
            log(f"warning: {mode}")
    plot(points, out / PNG_NAME, f"{cfg.task}: accuracy vs thinking budget ({mode}, n={cfg.n}, {len(examples)} problems)")
    return points
