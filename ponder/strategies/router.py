"""router: answer fast (no or little thinking) or think, chosen per prompt — as GPT-5 routes
between a fast model and a thinking model (OpenAI 2025, "GPT-5 system card": a real-time router
decides from conversation type, complexity and explicit intent such as "think hard about this").

The decision, in order:

1. explicit user intent: "think hard/carefully/step by step", "take your time" → think;
   "answer quickly", "just the answer", "no thinking" → fast;
2. a cheap difficulty estimate compared with ``threshold``:
   * ``"length"``: digits/3 + words/25 of the question (the last user turn; more digits and longer questions are
     harder in arithmetic and word problems; no model call);
   * ``"entropy"``: the model's first-token entropy, estimated as -mean log p of ``probe``
     one-token samples at temperature 1 (E[-log p(x)] = H, an unbiased Monte-Carlo estimate
     using only the log-probs every backend returns); costs ``probe`` tokens;
   * a callable ``(prompt) -> float``.

The fast path runs with ``Budget(thinking_budget=fast_budget)`` (0: close ``</think>`` at once),
the thinking path with the caller's budget (None: unlimited). Either then runs ``strategy``
(default ``single``). ``router_report`` measures the trade-off on a task.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from ponder.format import Prompt
from ponder.generate.types import Budget, SamplingParams
from ponder.strategies.base import StrategyError, StrategyResult, check_int, payload
from ponder.strategies.run import STRATEGIES, register_strategy, run_strategy

THINK_INTENT = re.compile(r"\b(think (very )?(hard|harder|carefully|deeply|step by step)|take your time|"
                          r"reason carefully|be thorough)\b", re.I)
FAST_INTENT = re.compile(r"\b(answer quickly|quick answer|just (give )?the answer|no thinking|"
                         r"don'?t think|without thinking)\b", re.I)
DEFAULT_THRESHOLDS = {"length": 2.0, "entropy": 1.0}


def question_of(prompt: Prompt | str) -> str:
    """The last user turn of a prompt (a rendered string is taken whole), so that a system
    prompt neither adds difficulty nor states intent."""
    if isinstance(prompt, Prompt):
        users = [m["content"] for m in prompt.messages if m["role"] == "user"]
        return users[-1] if users else ""
    return prompt


def intent(prompt: str) -> str | None:
    """"think", "fast" or None from explicit words in the question (think wins if both appear)."""
    q = question_of(prompt)
    if THINK_INTENT.search(q):
        return "think"
    if FAST_INTENT.search(q):
        return "fast"
    return None


def length_difficulty(prompt: str) -> float:
    """digits/3 + words/25 of the question: no model call."""
    q = question_of(prompt)
    return sum(ch.isdigit() for ch in q) / 3 + len(q.split()) / 25


def entropy_difficulty(backend, prompt: str, probe: int, seed: int | None) -> tuple[float, int]:
    """(first-token entropy estimate in nats, tokens spent)."""
    sp = SamplingParams(temperature=1.0, max_tokens=1, seed=seed)
    g = backend.generate([payload(prompt)], n=probe, sampling=sp, budget=None)[0]
    lps = [c.logprobs[0] for c in g if c.logprobs]
    if not lps:
        raise StrategyError("difficulty 'entropy' needs token log-probs, and the backend returned none")
    return -sum(lps) / len(lps), sum(len(c.token_ids) for c in g)


def route(backend, prompt: str, difficulty: str | Callable[[str], float] = "length", threshold: float | None = None,
          probe: int = 4, seed: int | None = None) -> dict[str, Any]:
    """The routing decision for ``prompt``: {"path", "reason", "difficulty", "threshold", "probe_tokens"}."""
    want = intent(prompt)
    if difficulty not in ("length", "entropy") and not callable(difficulty):
        raise StrategyError(f"difficulty must be 'length', 'entropy' or a callable (prompt) -> float, got {difficulty!r}")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS.get(difficulty, 0.5) if isinstance(difficulty, str) else 0.5
    if want is not None:
        return {"path": want, "reason": "intent", "difficulty": None, "threshold": threshold, "probe_tokens": 0}
    spent = 0
    if difficulty == "length":
        d = length_difficulty(prompt)
    elif difficulty == "entropy":
        check_int("probe", probe)
        d, spent = entropy_difficulty(backend, prompt, probe, seed)
    else:
        d = difficulty(prompt)
        if isinstance(d, bool) or not isinstance(d, (int, float)):
            raise StrategyError(f"difficulty callable returned {d!r}; it must return a number")
    path = "think" if d >= threshold else "fast"
    return {"path": path, "reason": "difficulty", "difficulty": float(d), "threshold": threshold,
            "probe_tokens": spent}


@register_strategy("router")
def router(backend, prompt: str, *, n: int | None = None, sampling=None, budget=None, task=None, example=None,
           scorer=None, difficulty: str | Callable[[str], float] = "length", threshold: float | None = None,
           fast_budget: int = 0, strategy: str | None = None, probe: int = 4,
           **strategy_options: Any) -> StrategyResult:
    """Pick the fast or thinking path (see the module docstring), then run ``strategy`` on it
    (default: ``single``, or ``majority`` over the ``n`` samples when n > 1)."""

    check_int("fast_budget", fast_budget, 0)
    if strategy is None:
        strategy = "majority" if n is not None and n > 1 else "single"
    if strategy == "router" or strategy not in STRATEGIES:
        raise StrategyError(f"router's strategy must be one of {', '.join(s for s in STRATEGIES if s != 'router')}, "
                            f"got {strategy!r}")
    r = route(backend, prompt, difficulty, threshold, probe, sampling.seed if sampling else None)
    use = Budget(thinking_budget=fast_budget) if r["path"] == "fast" else budget
    out = run_strategy(strategy, backend, prompt, n=n, sampling=sampling, budget=use, task=task, example=example,
                       scorer=scorer, **strategy_options)
    out.tokens += r["probe_tokens"]  # the entropy probe is part of the cost (its tokens are not samples)
    out.trace = {**out.trace, "strategy": "router", "inner": strategy, "route": r,
                 "thinking_budget": use.thinking_budget if use else None}
    return out


def router_report(backend, task, examples: Sequence[Any], prompts: Sequence[str], *, sampling=None,
                  budget: Budget | None = None, fast_budget: int = 0, difficulty: str | Callable = "length",
                  threshold: float | None = None, probe: int = 4, progress: bool = False) -> dict[str, Any]:
    """Accuracy and mean tokens per problem of never-think, always-think and the router on a task.

    Both fixed paths run on every example; the router's result for an example is the run of the
    path it picks (the same request, so under greedy decoding exactly what ``router`` returns),
    plus its probe tokens.
    """

    if len(examples) != len(prompts) or not prompts:
        raise StrategyError(f"router_report needs one prompt per example and at least one, got "
                            f"{len(prompts)} prompts and {len(examples)} examples")
    from rich.progress import track

    from ponder.generate.scoring import sample_and_score

    runs = {}
    for name, b in (("never_think", Budget(thinking_budget=fast_budget)), ("always_think", budget)):
        groups = sample_and_score(backend, task, list(examples), n=1, sampling=sampling, budget=b, prompts=list(prompts))
        if progress:
            groups = track(groups, total=len(prompts), description=name, transient=True)
        runs[name] = [(g[0].verdict.correct, g[0].completion.reasoning_tokens + g[0].completion.answer_tokens)
                      for g in groups]
    routes = [route(backend, p, difficulty, threshold, probe, sampling.seed if sampling else None) for p in prompts]
    runs["router"] = [(runs["always_think" if r["path"] == "think" else "never_think"][i][0],
                       runs["always_think" if r["path"] == "think" else "never_think"][i][1] + r["probe_tokens"])
                      for i, r in enumerate(routes)]
    m = len(prompts)
    report = {name: {"accuracy": sum(ok for ok, _ in rows) / m, "mean_tokens": sum(t for _, t in rows) / m}
              for name, rows in runs.items()}
    report["router"]["think_share"] = sum(r["path"] == "think" for r in routes) / m
    report["routes"] = routes
    # per example, both paths' outcomes: lets a caller re-score other thresholds without rerunning
    report["examples"] = [{"fast_correct": f[0], "fast_tokens": f[1], "think_correct": t[0], "think_tokens": t[1],
                           "difficulty": r["difficulty"], "path": r["path"], "probe_tokens": r["probe_tokens"]}
                          for f, t, r in zip(runs["never_think"], runs["always_think"], routes)]
    return report
