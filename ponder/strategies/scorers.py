"""Scorers for best-of-n, weighted voting and search: ``scorer(prompt, completion) -> float``.

* ``"logprob"``: the completion's mean token log-prob (token confidence; free, no extra model).
* ``"verifier"``: the task's check of the completion against the example, 1.0 or 0.0 (for code
  with tests: the share of tests passed when the verdict reports it). Gold-free only when the
  example's check is (code tests); for math it compares with the gold answer, i.e. an oracle.
* a callable ``(prompt, completion) -> float``.
* a path (str or Path) to a local transformers checkpoint, loaded as a ``RewardModel``: an
  outcome reward model. A sequence-classification head scores with its logit (one label) or
  the log-odds of label 1 (two labels); a causal LM scores with the mean log-prob it gives the
  completion after the prompt (a likelihood verifier, e.g. a stronger or reference model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ponder.generate.types import Completion
from ponder.strategies.base import Scorer, StrategyError, prompt_text, verdict

SCORER_NAMES = ("logprob", "verifier")


def logprob_score(prompt: str, completion: Completion) -> float:
    """Mean log-prob per generated token (-inf when the backend gave no log-probs)."""
    return completion.mean_logprob


def verifier_scorer(task: Any, example: Any) -> Scorer:
    """1.0 when the task accepts the completion (partial credit from ``details["passed"]/["total"]``)."""
    if task is None or example is None:
        raise StrategyError("scorer 'verifier' needs task= and example= (the task checks the completion)")

    def score(prompt: str, completion: Completion) -> float:
        v = verdict(completion, task, example)
        if v.correct:
            return 1.0
        passed, total = v.details.get("passed"), v.details.get("total")
        if isinstance(passed, int) and isinstance(total, int) and total > 0:
            return 0.99 * passed / total  # below a full pass, above no pass
        return 0.0

    return score


class RewardModel:
    """An outcome reward model from a local checkpoint (or an already loaded model + tokenizer).

    Scores ``prompt + completion.text``. Works on CPU; inputs longer than ``max_length`` tokens
    keep their last ``max_length`` tokens (the completion's end, where its answer is).
    """

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 1024):
        import torch

        self.torch = torch
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        archs = type(model).__name__
        self.kind = "classifier" if "SequenceClassification" in archs else "lm"
        if self.kind == "classifier" and getattr(model.config, "num_labels", 1) > 2:
            raise StrategyError(f"reward model {archs} has {model.config.num_labels} labels; expected 1 or 2")

    @classmethod
    def from_path(cls, path: str | os.PathLike, **kw: Any) -> "RewardModel":
        """Load a classifier if the checkpoint's architecture is one, else a causal LM."""
        p = Path(path)
        if not (p / "config.json").is_file():
            raise StrategyError(f"reward model path {str(path)!r} is not a checkpoint directory (no config.json)")
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSequenceClassification,
            AutoTokenizer,  # fmt: skip
        )

        cfg = AutoConfig.from_pretrained(p)
        auto = (AutoModelForSequenceClassification
                if any("SequenceClassification" in a for a in (cfg.architectures or [])) else AutoModelForCausalLM)
        return cls(auto.from_pretrained(p), AutoTokenizer.from_pretrained(p), **kw)

    def __call__(self, prompt: str, completion: Completion) -> float:
        torch = self.torch
        tok = self.tokenizer
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(completion.text, add_special_tokens=False)["input_ids"]
        ids = (p_ids + c_ids)[-self.max_length:]
        n_c = min(len(c_ids), len(ids))
        with torch.no_grad():
            x = torch.tensor([ids])
            if self.kind == "classifier":
                logits = self.model(input_ids=x).logits[0].float()  # [labels]
                return float(logits[0] if logits.numel() == 1 else logits[1] - logits[0])
            if n_c == 0 or len(ids) < 2:
                return float("-inf")
            logits = self.model(input_ids=x).logits[0, :-1].float()  # [S-1, V]: predicts ids[1:]
            lp = torch.log_softmax(logits, -1).gather(1, x[0, 1:, None])[:, 0]  # [S-1]
            return float(lp[-n_c:].mean())


def resolve_scorer(spec: Any, task: Any = None, example: Any = None, default: str = "logprob") -> Scorer:
    """A scorer from a name, callable, path or RewardModel (``None`` means ``default``)."""
    spec = default if spec is None else spec
    if isinstance(spec, str) and spec == "logprob":
        return logprob_score
    if isinstance(spec, str) and spec == "verifier":
        return verifier_scorer(task, example)
    if callable(spec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        if not Path(spec).exists():
            raise StrategyError(f"unknown scorer {str(spec)!r}: use {', '.join(SCORER_NAMES)}, "
                                "a callable (prompt, completion) -> float, or a reward-model checkpoint path")
        return _cached_rm(str(Path(spec).resolve()))
    raise StrategyError(f"scorer must be a name ({', '.join(SCORER_NAMES)}), a callable or a path, got {spec!r}")


_RM_CACHE: dict[str, RewardModel] = {}


def _cached_rm(path: str) -> RewardModel:
    """Load each reward-model checkpoint once per process (strategies resolve per prompt)."""
    if path not in _RM_CACHE:
        _RM_CACHE[path] = RewardModel.from_path(path)
    return _RM_CACHE[path]


def scores(scorer: Callable[[str, Completion], float], prompt, completions: list[Completion]) -> list[float]:
    """Score each completion; a non-number from a user scorer is an error naming it. The scorer
    gets the prompt as text (an endpoint's messages in ponder's plain layout)."""
    text = prompt_text(prompt)
    out = []
    for c in completions:
        s = scorer(text, c)
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise StrategyError(f"scorer returned {s!r} ({type(s).__name__}); it must return a float")
        out.append(float(s))
    return out
