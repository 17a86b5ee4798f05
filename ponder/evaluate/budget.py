"""Accuracy vs thinking budget: ``ponder budget-curve``, a thinking-budget sweep with its own defaults.

For each budget B the model answers every problem n times with ``Budget(thinking_budget=B)``: when
its reasoning reaches B tokens the engine forces ``</think>`` and the model must answer (the
cut-off mode of s1, Muennighoff et al. 2025, arXiv:2501.19393). With ``min_thinking_frac`` > 0 it
also forces at least ``frac · B`` reasoning tokens by replacing an early ``</think>`` with "Wait"
(s1's budget forcing). Per budget the curve records accuracy (pass@1 = mean over problems of
correct/n, with a 95% interval), maj@n, mean reasoning and answer tokens per sample, how often the
cut-off fired, and the mean "Wait"s inserted.

The sweep is ``ponder eval --budgets`` (``ponder.evaluate.harness.run_eval``): one ordinary eval
run per budget in ``budget-<B>/`` (records, resume), then ``budget_curve.csv``,
``budget_curve.png`` and ``report.md`` over them. A killed sweep resumes where it stopped when run
again with the same settings; other settings are refused with the field named.

    from ponder.evaluate.budget import BudgetCurveConfig, run_budget_curve
    rows = run_budget_curve(BudgetCurveConfig(model="runs/sft/final", task="addition",
                                              budgets=[16, 32, 64], out="curve"))
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.config import ConfigError, ModelOptions, PromptOptions, SamplingOptions, check_range, option, shared
from ponder.evaluate.harness import EvalConfig, EvalError, run_eval
from ponder.evaluate.report import CURVE_CSV, CURVE_PNG
from ponder.generate.types import Backend

CSV_NAME, PNG_NAME = CURVE_CSV, CURVE_PNG


@dataclass
class BudgetCurveConfig(PromptOptions, SamplingOptions, ModelOptions):
    """Settings of one accuracy-vs-thinking-budget sweep."""

    task: str = shared("task", "addition")
    budgets: list[int] = option([16, 32, 64, 128], "Thinking budgets in tokens, comma-separated (0 = no thinking).")
    n: int = shared("n", 4)
    limit: int = shared("limit", 50)
    split: str = shared("split", "test")
    temperature: float = shared("temperature", 0.7)
    max_tokens: int = shared("max_tokens", 64)
    min_thinking_frac: float = option(0.0, "Budget forcing: force at least this fraction of each budget with 'Wait' (0 = cut-off only; needs a local model, an endpoint given its tokenizer, or ponder serve).")
    max_waits: int = option(2, "Most 'Wait's inserted per completion when forcing.")
    template: str = shared("template", "think")
    system: str | None = shared("system", None)
    timeout: float = shared("timeout", 600.0)
    chunk: int = option(16, "Problems per generate call.")
    out: str = option("budget_curve", "Output directory: budget_curve.csv, budget_curve.png, report.md and budget-<B>/ runs.")

    def __post_init__(self) -> None:
        if not self.budgets:
            raise ConfigError("budgets: give at least one thinking budget")
        if any(not isinstance(b, int) or b < 0 for b in self.budgets):
            raise ConfigError(f"budgets must be ints >= 0, got {self.budgets}")
        if len(set(self.budgets)) != len(self.budgets):
            raise ConfigError(f"budgets has duplicates: {self.budgets}")
        check_range(self, ("n", "limit", "chunk", "max_tokens"), 1)
        check_range(self, ("min_thinking_frac",), 0, 1)
        check_range(self, ("max_waits",), 0)


def eval_config(cfg: BudgetCurveConfig) -> EvalConfig:
    """The ``ponder eval --budgets`` run a budget curve is."""
    return EvalConfig(model=cfg.model or "backend", task=cfg.task, split=cfg.split, n=cfg.n, temperature=cfg.temperature,
                      top_p=cfg.top_p, max_tokens=cfg.max_tokens, limit=cfg.limit, seed=cfg.seed, out=cfg.out,
                      resume=True, budgets=list(cfg.budgets), min_thinking_frac=cfg.min_thinking_frac,
                      max_waits=cfg.max_waits, template=cfg.template, thinking=cfg.thinking, system=cfg.system or "",
                      batch_size=cfg.chunk, timeout=cfg.timeout, extra_body=cfg.extra_body, tokenizer=cfg.tokenizer)


def run_budget_curve(cfg: BudgetCurveConfig, backend: Backend | None = None, progress: bool = False,
                     console=None) -> list[dict]:
    """Run the sweep of ``cfg`` (resuming saved budgets); the rows of ``budget_curve.csv``.
    ``console``: a rich console for the run's notes (None: quiet)."""
    if not cfg.model and backend is None:
        raise ConfigError("model: give a local checkpoint directory or openai:<model>@<base_url>")
    try:
        res = run_eval(eval_config(cfg), backend, progress=progress, console=console)
    except EvalError as e:
        raise ConfigError(str(e)) from None
    return res.metrics["sweep"]
