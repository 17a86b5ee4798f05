"""Token-level generation: the interface every backend implements, and the fast local engine.

    from ponder.generate import LocalEngine, SamplingParams, Budget
    engine = LocalEngine.from_path("runs/sft/final")
    groups = engine.generate(prompts, n=4, sampling=SamplingParams(temperature=0.7, seed=0),
                             budget=Budget(effort="low"))
    groups[i][j].answer, groups[i][j].reasoning_tokens, groups[i][j].mean_logprob

``LocalEngine`` is imported lazily so that backends which do not need torch stay light.
See docs/generation.md.
"""

from ponder.generate.types import (
    DEFAULT_CLOSE_TEXT,
    DEFAULT_EFFORT_BUDGETS,
    Backend,
    Budget,
    Completion,
    GenerationError,
    SamplingParams,
    check_request,
    make_completion,
    prefilled_think,
)

__all__ = [
    "Backend", "Budget", "Completion", "DEFAULT_CLOSE_TEXT", "DEFAULT_EFFORT_BUDGETS",
    "GenerationError", "LocalEngine", "SamplingParams", "check_request", "make_completion",
    "prefilled_think",
]


def __getattr__(name: str):
    if name == "LocalEngine":
        from ponder.generate.local import LocalEngine

        return LocalEngine
    raise AttributeError(f"module 'ponder.generate' has no attribute {name!r}")
