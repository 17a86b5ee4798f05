"""Token-level generation: the interface every backend implements, and the fast local engine.

    from ponder.generate import load_backend, prompt, SamplingParams, Budget
    backend = load_backend("runs/sft/final")                 # or openai:<model>@<url>, thinking="on"
    p = prompt(backend, "What is 2+3?")                       # ponder.format.render for this model
    groups = backend.generate([p.payload], n=4, sampling=SamplingParams(temperature=0.7, seed=0),
                              budget=Budget(effort="low"))
    groups[0][j].answer, groups[0][j].reasoning_tokens, groups[0][j].mean_logprob

``LocalEngine`` and ``OpenAIBackend`` are imported lazily so that backends which do not need
torch stay light. See docs/generation.md.
"""

from ponder.generate.backends import ModelSpec, ModelSpecError, load_backend, parse_model_spec, prompt
from ponder.generate.types import (
    DEFAULT_CLOSE_TEXT,
    DEFAULT_EFFORT_BUDGETS,
    Backend,
    Budget,
    Capabilities,
    Completion,
    GenerationError,
    SamplingParams,
    check_request,
    effort_table_for,
    estimate_tokens,
    make_completion,
)

__all__ = [
    "Backend", "Budget", "Capabilities", "Completion", "DEFAULT_CLOSE_TEXT", "DEFAULT_EFFORT_BUDGETS",
    "GenerationError", "LocalEngine", "ModelSpec", "ModelSpecError", "OpenAIBackend", "SamplingParams",
    "check_request", "effort_table_for", "estimate_tokens", "load_backend", "make_completion",
    "parse_model_spec", "prompt",
]


def __getattr__(name: str):
    if name == "LocalEngine":
        from ponder.generate.local import LocalEngine

        return LocalEngine
    if name == "OpenAIBackend":
        from ponder.generate.openai_backend import OpenAIBackend

        return OpenAIBackend
    raise AttributeError(f"module 'ponder.generate' has no attribute {name!r}")
