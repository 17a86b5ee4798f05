"""Test-time compute strategies over any backend: vote, rank, refine, search, run tools, route.

    from ponder.strategies import run_strategy, run_batch
    r = run_strategy("majority", engine, prompt, n=8, sampling=SamplingParams(temperature=0.8, seed=0))
    r.answer, r.tokens, r.trace["votes"]
    rs = run_batch("adaptive_majority", engine, prompts, n=16, task=task, examples=examples)

Every strategy is a short function ``(backend, prompt, *, n, sampling, budget, task, example,
scorer, **options) -> StrategyResult`` registered by name in ``STRATEGIES``
(``ponder.strategies.run``); ``run_strategy`` checks the name and options and calls it.
``run_batch`` runs many prompts: the sampling strategies (single, majority, weighted_majority,
best_of_n, adaptive_majority, deepconf) then share ``generate`` calls across prompts; the others run prompt
by prompt. ``n=None`` means the strategy's own default. See docs/strategies.md for each strategy,
its source and trace fields.
"""

from ponder.strategies import deepconf, refine, router, search, tools, voting  # noqa: F401  (they register themselves)
from ponder.strategies.base import Scorer, StrategyError, StrategyResult
from ponder.strategies.run import BATCHED, STRATEGIES, run_batch, run_strategy, strategy_options
from ponder.strategies.scorers import RewardModel, resolve_scorer

__all__ = [
    "STRATEGIES", "BATCHED", "StrategyResult", "StrategyError", "RewardModel", "Scorer", "run_strategy",
    "run_batch", "resolve_scorer", "strategy_options",
]  # fmt: skip
