"""A small held-out evaluation of one checkpoint: greedy pass@1, sampled pass@1 and maj@k, 95% CIs.

Used by ``ponder demo`` to score every stage of a recipe on the same held-out problems (the task's
``test`` split, disjoint from ``train`` by construction). For each of the first ``limit`` test
problems:

* **greedy pass@1**: one temperature-0 completion, right or wrong (per-problem score 0/1);
* with ``samples = k > 1``: k completions at ``temperature``; sampled pass@1 is the mean over
  problems of c/k, and maj@k the share of problems whose most-voted answer (``ponder.evaluate.
  metrics.maj_at_k``; answers grouped by the verifier's extracted answer text) is correct.

Prompts are the model's own (``ponder.generate.prompt``, as ``ponder eval`` renders them) and
every completion is judged by ``ponder.tasks.judge``. Each metric is a mean over problems with a
95% interval (``metrics.mean_ci``: Wilson for the 0/1 metrics, the mean's normal interval for
sampled pass@1). The result is
written as JSON (``<out>``) with per-problem rows, so a report can be re-derived from it; an
existing file with the same settings is reused (a finished stage is not evaluated twice).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

from ponder.config import ConfigError, check_range, option, shared
from ponder.evaluate.metrics import maj_at_k, mean_ci
from ponder.generate.scoring import sample_and_score
from ponder.io import write_json_atomic


@dataclass
class StageEvalConfig:
    """Options of a held-out stage evaluation."""

    task: str = shared("task", "addition:digits=3")
    limit: int = shared("limit", 200)
    samples: int = option(0, "Sampled completions per problem for sampled pass@1 and maj@k (0 = greedy only).")
    temperature: float = shared("temperature", 0.8)
    max_tokens: int = shared("max_tokens", 256)
    seed: int = shared("seed", 0)
    batch_prompts: int = shared("batch_prompts", 64)

    def check(self) -> None:
        check_range(self, ("limit",), 1)
        if self.samples < 0 or self.samples == 1:
            raise ConfigError(f"samples must be 0 (greedy only) or >= 2, got {self.samples}")
        if self.max_tokens < 1 or self.batch_prompts < 1:
            raise ConfigError("max_tokens and batch_prompts must be >= 1")


def _ci(values: list[float]) -> dict:
    mean, lo, hi = mean_ci(values)
    return {"mean": mean, "low": lo, "high": hi, "n": len(values)}


def evaluate_backend(backend, cfg: StageEvalConfig) -> dict:
    """Evaluate ``backend`` (a ``ponder.generate.Backend``) per ``cfg``; returns the result dict."""
    from ponder.generate import SamplingParams
    from ponder.tasks import get_task

    cfg.check()
    task = get_task(cfg.task)
    examples = list(islice(task.examples("test"), cfg.limit))
    if not examples:
        raise ConfigError(f"task {cfg.task!r} has no test examples")
    rows, t0, tokens = [], time.perf_counter(), 0
    greedy = sample_and_score(backend, task, examples, n=1, batch=cfg.batch_prompts,
                              sampling=SamplingParams(temperature=0, max_tokens=cfg.max_tokens))
    sampled = (sample_and_score(backend, task, examples, n=cfg.samples, batch=cfg.batch_prompts,
                                sampling=SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens),
                                seed_of=lambda b, _: cfg.seed + b * cfg.batch_prompts)
               if cfg.samples else iter(lambda: [], None))
    for (g,), group in zip(greedy, sampled):
        v, c = g.verdict, g.completion
        row = {"id": g.example["id"], "greedy_correct": v.correct, "greedy_answer": v.answer,
               "reasoning_tokens": c.reasoning_tokens, "completion_tokens": len(c.token_ids),
               "think_closed": c.think_closed, "reasoned": bool(c.reasoning.strip())}
        tokens += len(c.token_ids)
        if group:
            correct = [s.verdict.correct for s in group]
            keys = [s.verdict.answer.strip() if s.verdict.answer else None for s in group]
            row.update(sampled_correct=sum(correct), sampled_n=len(group),
                       sampled_reasoned=sum(bool(s.completion.reasoning.strip()) for s in group),
                       maj_correct=maj_at_k(keys, correct, len(group)))
            tokens += sum(len(s.completion.token_ids) for s in group)
        rows.append(row)
    result = {
        "config": asdict(cfg),
        "pass1_greedy": _ci([float(r["greedy_correct"]) for r in rows]),
        "reasoning_tokens_greedy": sum(r["reasoning_tokens"] for r in rows) / len(rows),
        # share of completions with a non-empty think block: a model that can reason but greedily
        # answers directly still reasons in some samples, the behaviour RL builds on
        "reasoning_share_greedy": sum(r["reasoned"] for r in rows) / len(rows),
        "seconds": time.perf_counter() - t0,
        "tokens": tokens,
        "rows": rows,
    }
    if cfg.samples:
        result["pass1_sampled"] = _ci([r["sampled_correct"] / r["sampled_n"] for r in rows])
        result[f"maj@{cfg.samples}"] = _ci([float(r["maj_correct"]) for r in rows])
        result["reasoning_share_sampled"] = sum(r["sampled_reasoned"] for r in rows) / sum(r["sampled_n"] for r in rows)
    return result


def evaluate_checkpoint(model_dir: str | Path, cfg: StageEvalConfig, out: str | Path | None = None) -> dict:
    """Evaluate a checkpoint directory; with ``out``, write (or reuse a matching) JSON result."""
    from ponder.generate import LocalEngine
    from ponder.models import check_checkpoint

    if out is not None and Path(out).is_file():
        old = json.loads(Path(out).read_text())
        if old.get("config") == asdict(cfg) and old.get("model") == str(model_dir):
            return old
    check_checkpoint(model_dir)
    result = evaluate_backend(LocalEngine.from_path(model_dir), cfg)
    result["model"] = str(model_dir)
    if out is not None:
        write_json_atomic(out, result)
    return result
