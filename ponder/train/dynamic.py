"""Dynamic sampling for GRPO (DAPO, Yu et al. 2025, arXiv:2503.14476, section 3.2).

A group whose ``G`` completions all earn the same reward has zero advantage: it costs a full
forward/backward pass and teaches nothing (and, with ``loss_type=dapo``, its tokens still dilute
the per-token normaliser). DAPO drops such groups and keeps sampling until the batch is full of
groups with a reward spread. TRL has no such step, so ponder does it where it owns the rollouts:
inside ``LocalRollout`` (``GRPOTrainer(rollout_func=...)``), before TRL sees the completions.

Design (per process, per generation round):

* TRL hands the rollout ``B*G`` prompt strings, ``G`` consecutive copies per group. The rollout
  samples them, then scores every completion with the run's own reward functions and weights
  (weighted sum, ``None`` skipped, as TRL sums) and marks a group *zero-spread* when
  ``max - min <= 1e-6`` over its scored completions (or fewer than two were scorable).
* Each refill round draws as many new prompts from the prompt pool as there are zero-spread slots
  (prompts not already in the batch, without replacement while the pool allows), samples and
  scores them, and puts every group with a spread into the next zero-spread slot. At most
  ``max_rounds`` rounds: a slot still unfilled then keeps its original zero-spread group, so the
  batch shape TRL expects (``B*G`` rows) never changes. This differs from verl's DAPO recipe,
  which raises once ``max_num_gen_batches`` is exceeded: here the step goes on, the shortfall is
  logged (``unfilled_groups``) and the ``no_signal`` health alarm fires if it persists.
* The rollout returns, besides TRL's ``prompt_ids``/``completion_ids``/``logprobs``, every
  dataset column of the final rows (TRL merges extra rollout fields into the inputs, so the
  rewards see the refilled prompts' ``gold``/``meta``/``id``), ``ponder_prompt`` (the prompt texts:
  TRL passes its own, stale ``prompts`` list to the rewards) and ``ponder_rewards`` (the scores
  already computed). ``FromRollout`` wraps each reward function so TRL's scoring pass reuses those
  scores: a reward server is asked once per completion, and a sampled reward cannot disagree
  with the filter that kept its group.

Cost: each refill round is one more ``LocalEngine.generate`` call over the missing groups only.
Limits: prompts are matched to their pool rows by text (the first row with that text; ponder's
tasks give one gold per question text); TRL's completion table (``log_completions``) still shows
the original prompt text of a refilled row; scores are reused, so a reward that reads
``trainer_state`` sees the same step either way.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from ponder.config import ConfigError

#: A group counts as zero-spread when its weighted rewards differ by at most this much.
SPREAD_TOL = 1e-6
#: Extra rollout fields: read by the reward wrappers, never passed to a reward function.
PROMPT_KEY, REWARDS_KEY, STATS_KEY = "ponder_prompt", "ponder_rewards", "ponder_dynamic"
#: metrics logged per step (``ponder/<name>``; metrics.jsonl drops the prefix)
STATS = ("dropped_groups", "refilled_groups", "refill_rounds", "unfilled_groups")


def has_spread(values: list[float | None]) -> bool:
    """Whether a group's weighted rewards differ (its advantages are not all zero)."""
    scored = [v for v in values if v is not None]
    return len(scored) >= 2 and max(scored) - min(scored) > SPREAD_TOL


def rollout_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Reward kwargs with the rollout's own prompt texts as ``prompts`` (a no-op without them)."""
    if PROMPT_KEY not in kwargs:
        return kwargs
    out = dict(kwargs)
    out["prompts"] = out.pop(PROMPT_KEY)
    return out


class FromRollout:
    """Reward function ``index`` of the run, answered from the scores the rollout already computed
    (see the module docstring); called without them (no dynamic sampling), it calls ``func``.

    The first reward also logs the step's dynamic-sampling counts through TRL's ``log_metric``."""

    def __init__(self, func: Callable, index: int):
        self.func, self.index = func, index
        self.__name__ = getattr(func, "__name__", type(func).__name__)

    def __call__(self, completions: list, **kwargs: Any) -> list:
        kwargs = rollout_kwargs(kwargs)
        cached = kwargs.pop(REWARDS_KEY, None)
        stats = kwargs.pop(STATS_KEY, None)
        if self.index == 0 and stats and callable(kwargs.get("log_metric")):
            for name in STATS:
                kwargs["log_metric"](f"ponder/{name}", float(stats[0][name]))
        if cached is None:
            return self.func(completions, **kwargs)
        return [row[self.index] for row in cached]


class DynamicSampler:
    """Drop zero-spread groups and refill them from ``pool`` (see the module docstring).

    ``funcs``/``weights``: the run's reward functions (unwrapped) and weights; ``pool``: the prompt
    dataset's rows (``prompt`` plus the task columns)."""

    def __init__(self, funcs: list[Callable], weights: list[float], pool: list[dict[str, Any]],
                 max_rounds: int, seed: int = 0):
        if not pool:
            raise ConfigError("dynamic sampling: the prompt pool is empty")
        self.funcs, self.weights, self.pool = funcs, [float(w) for w in weights], pool
        self.max_rounds, self.seed = max_rounds, seed
        self.columns = [k for k in pool[0] if k != "prompt"]
        self.by_text: dict[str, dict[str, Any]] = {}
        for row in pool:
            self.by_text.setdefault(row["prompt"], row)

    def score(self, rows: list[dict], out: dict[str, list], trainer) -> list[list[float | None]]:
        """Per completion, each reward function's value (``None`` where it abstains)."""
        ids = out["completion_ids"]
        completions = trainer.processing_class.batch_decode(ids, skip_special_tokens=True)
        kwargs = {c: [r[c] for r in rows] for c in self.columns}
        kwargs.update(prompts=[r["prompt"] for r in rows], completion_ids=ids, trainer_state=trainer.state)
        per_func = [list(f(completions, **kwargs)) for f in self.funcs]
        for f, vals in zip(self.funcs, per_func):
            if len(vals) != len(rows):
                raise ValueError(f"reward {getattr(f, '__name__', f)!r} returned {len(vals)} values for "
                                 f"{len(rows)} completions")
        return [list(v) for v in zip(*per_func)]

    def total(self, scores: list[float | None]) -> float | None:
        vals = [w * s for w, s in zip(self.weights, scores) if s is not None]
        return sum(vals) if vals else None

    def draw(self, k: int, taken: set[str], rng: random.Random) -> list[dict[str, Any]]:
        """``k`` pool rows whose prompts are not in ``taken`` (repeats only once the pool runs out)."""
        fresh = [r for r in self.pool if r["prompt"] not in taken]
        return rng.sample(fresh, k) if len(fresh) >= k else fresh + rng.choices(self.pool, k=k - len(fresh))

    def __call__(self, texts: list[str], trainer, sample: Callable[[list[str], int], dict[str, list]]):
        """The rollout output for TRL's ``texts`` (``B*G`` prompts), zero-spread groups replaced.

        ``sample(texts, round)`` returns TRL's three lists for ``texts``; shapes: every list has one
        entry per completion, groups of ``G`` consecutive rows."""
        g = int(trainer.args.num_generations)
        if len(texts) % g or any(len(set(texts[i:i + g])) != 1 for i in range(0, len(texts), g)):
            raise ValueError(f"dynamic sampling needs whole groups of {g} identical prompts per process")
        missing = sorted({t for t in texts if t not in self.by_text})
        if missing:
            raise ValueError(f"dynamic sampling: prompt not in the pool: {missing[0][:80]!r}")
        rows = [self.by_text[t] for t in texts]
        out = sample(texts, 0)
        scores = self.score(rows, out, trainer)
        # slots[i]: group i of the batch as (rows, output lists, scores), each G long
        slots = [(rows[i:i + g], {k: v[i:i + g] for k, v in out.items()}, scores[i:i + g])
                 for i in range(0, len(texts), g)]
        empty = [i for i, (_, _, sc) in enumerate(slots) if not has_spread([self.total(s) for s in sc])]
        dropped = refilled = rounds = 0
        rng = random.Random(f"{self.seed}/{trainer.state.global_step}/{trainer.accelerator.process_index}")
        while empty and rounds < self.max_rounds:
            rounds += 1
            new = self.draw(len(empty), {r["prompt"] for s in slots for r in s[0]}, rng)
            new_rows = [r for r in new for _ in range(g)]
            out2 = sample([r["prompt"] for r in new_rows], rounds)
            scores2 = self.score(new_rows, out2, trainer)
            for j in range(len(new)):
                a, b = j * g, (j + 1) * g
                if has_spread([self.total(s) for s in scores2[a:b]]):
                    slots[empty.pop(0)] = (new_rows[a:b], {k: v[a:b] for k, v in out2.items()}, scores2[a:b])
                    refilled += 1
                    dropped += 1  # the zero-spread group it replaced
                else:
                    dropped += 1  # a refill group that had no spread either
        final_rows = [r for s in slots for r in s[0]]
        result: dict[str, Any] = {k: [x for s in slots for x in s[1][k]] for k in out}
        result.update({c: [r[c] for r in final_rows] for c in self.columns})
        result[PROMPT_KEY] = [r["prompt"] for r in final_rows]
        result[REWARDS_KEY] = [x for s in slots for x in s[2]]
        # a dict, not a list: TRL copies a non-list extra field to every row as it is
        result[STATS_KEY] = {"dropped_groups": dropped, "refilled_groups": refilled, "refill_rounds": rounds,
                             "unfilled_groups": len(empty)}
        return result


__all__ = ["DynamicSampler", "FromRollout", "has_spread", "rollout_kwargs"]
