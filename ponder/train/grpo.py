"""Stage 3, ``ponder train grpo``: GRPO on a verifiable task, built on TRL's ``GRPOTrainer``.

Each step takes ``batch_size`` prompts from the task's train split, samples ``num_generations``
completions per prompt (the group), scores them with the reward functions of ``rewards``
(``ponder.rewards.parse_reward_spec``: names, parameters and weights), normalises rewards within
each group into advantages and takes one clipped policy-gradient step (TRL; ``loss_type``,
``epsilon``/``epsilon_high``, ``importance_sampling_level``, ``beta`` as in its docs; the
variants and their papers are in docs/training.md "Loss and sampling variants"). The task's columns ``gold``, ``meta``, ``id`` and ``task``
travel with every prompt, so ``accuracy`` scores with the task's own verifier.

**Generation.** On CPU with tiny models, sampling is the bottleneck. ``generator="local"`` (the
default on CPU) plugs ponder's ``LocalEngine`` into TRL through ``GRPOTrainer(rollout_func=…)``:
it decodes all ``batch_size * num_generations`` rows in one batch with a fused Llama step and
reloads the weights after each optimizer step (it notices the in-place update; with ``lora`` the
reload merges the adapter's current ``B A`` into the engine's fused copies, so the rollouts come
from base + adapter at the base's decode cost). ``"trl"`` uses
TRL's own ``model.generate`` path; ``"vllm"`` sets ``use_vllm=True`` (GPU machines, colocated
vLLM; see docs/training.md). bench/train.py measures local vs trl.

**Memory.** A step's forward keeps its activations for the backward, and they, not the weights,
set the peak: ``micro_batch_size`` rows go through each forward/backward and gradient accumulation
makes up the step, still one generation round and one optimizer step (``trainer_args``);
``auto`` sizes the micro-batch from the model's config (``activation_bytes``).

**Metrics.** ``<out>/metrics.jsonl`` has one JSON object per optimizer step::

    {"step", "reward", "rewards/<name>", "accuracy", "completion_length",
     "reasoning_length", "think_share", "looped_share", "kl", "lr", "loss", "clip_low",
     "clip_high", "seconds", "peak_rss_mb"}

plus ``dropped_groups``, ``refilled_groups``, ``refill_rounds``, ``unfilled_groups`` with
``dynamic_sampling`` (``ponder.train.dynamic``), and ``tool_calls``, ``tool_use_share``,
``tool_error_share``, ``masked_share`` with ``tools`` (``ponder.train.tool_rollout.rollout_stats``).
With ``num_iterations`` > 1 only every μ-th step generates: the others have ``reward`` null and
their own ``loss``/``clip_*``.

``accuracy`` is the task verifier's verdict (whatever the reward weights), ``reasoning_length``
the mean tokens inside ``<think>``, ``think_share`` the share of completions with a non-empty
think block, ``looped_share`` the share whose reasoning repeats a cycle
(``ponder.format.loops``), ``kl`` TRL's estimate against the reference model (null when ``beta=0``: no
reference model is kept then).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.config import ConfigError, FineTuneOptions, PromptOptions, check_choice, option, shared
from ponder.train import common, dynamic
from ponder.train.tool_rollout import STATS as TOOL_STATS

log = logging.getLogger(__name__)

GENERATORS = ("local", "trl", "vllm")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
#: losses that sum per-token terms: with sequence-level ratios they weight a sequence by its length
TOKEN_SUM_LOSSES = ("bnpo", "dr_grpo", "dapo", "cispo")


@dataclass
class GRPOConfig(PromptOptions, FineTuneOptions):
    """Options of ``ponder train grpo``."""

    task: str = shared("task", "addition:digits=3")
    out: str = shared("out", "runs/grpo")
    save_every: int = shared("save_every", 25)
    rewards: str = option("accuracy=1,format=0.2", "Reward functions and weights, e.g. 'accuracy=1,format=0.2,cosine(max_len=256)=1'.")
    steps: int = option(30, "Optimizer steps (a generation round every num_iterations of them).")
    batch_size: int = option(8, "Prompts per step; each gets num_generations completions.")
    num_generations: int = option(8, "Group size G: completions per prompt whose rewards are compared.")
    lr: float | None = option(None, "Learning rate (AdamW, constant after warm-up); default by model size: 1e-4 below 50M parameters (tiny models need far more than TRL's), 1e-6 above (TRL's).")
    warmup_steps: int = shared("warmup_steps", 0)
    beta: float = option(0.0, "KL coefficient against the starting model (0 = no reference model, kl logged as null).")
    epsilon: float = option(0.2, "PPO-style clipping range of the probability ratio (lower side when epsilon_high is set; GSPO: 3e-4).")
    epsilon_high: float | None = option(None, "Upper clipping range, clip-higher (DAPO: 0.28 with epsilon 0.2; GSPO: 4e-4; cispo: its cap, 5.0); None = epsilon.")
    importance_sampling_level: str = option("token", "Probability ratio per token, or per sequence (GSPO: the length-normalised sequence ratio; use loss_type grpo or luspo).")
    num_iterations: int = option(1, "Optimizer steps on each generation round (PPO epochs, mu); the ratio, hence clipping, only departs from 1 when > 1.")
    loss_type: str = option("dapo", f"Loss aggregation, one of {', '.join(LOSS_TYPES)} (TRL's definitions).")
    scale_rewards: str = option("group", "Divide advantages by the reward std: group, batch or none (Dr. GRPO).")
    temperature: float = shared("temperature", 1.0)
    top_p: float = shared("top_p", 1.0)
    max_completion_length: int = option(96, "Most tokens per completion (longer ones are cut).")
    micro_batch_size: int | str = option("auto", "Completions per forward/backward; gradient accumulation makes up the step (still one generation round and one optimizer step). auto: the most rows whose saved activations, estimated from the model's config, fit 1 GiB (SmolLM2-135M with 16 rows of 180 tokens: 2; ponder's tiny models: all in one); or a divisor of batch_size*num_generations.")
    mask_truncated: bool = option(False, "Leave completions cut at max_completion_length out of the loss (DAPO's overlong filtering; TRL's mask_truncated_completions).")
    top_entropy_quantile: float = option(1.0, "Policy loss only on this top share of tokens by entropy (Wang et al. 2025 use 0.2; 1 = every token).")
    dynamic_sampling: bool = option(False, "DAPO dynamic sampling: replace groups whose rewards are all equal by groups from fresh prompts (generator local).")
    max_refill_rounds: int = option(3, "Dynamic sampling: most refill rounds per step; slots still unfilled keep their zero-spread group.")
    n_prompts: int = option(2000, "Train-split prompts in the pool (drawn in order from the task).")
    template: str = shared("template", "think")
    generator: str = option("local", "Rollouts: local (ponder's LocalEngine, CPU), trl (model.generate), vllm (GPU).")
    on_alarm: str = option("warn", "What a health alarm does (no learning signal, entropy collapse, …): warn or stop (checkpoint first).")
    alarm_patience: int = option(3, "Steps a health condition must hold before its alarm fires.")
    tools: bool = option(False, "Tool-augmented rollouts (generator local): a fenced python block in the reasoning runs in the sandbox and its output is inserted, masked out of the loss (ponder.train.tool_rollout).")
    max_tool_calls: int = option(2, "With tools: most sandbox executions per rollout; after the cap the rollout generates without stopping at fences.")

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("grpo.model (the checkpoint to train) is required")
        common.positive(self, ("steps", "batch_size", "temperature", "max_completion_length",
                               "n_prompts", "save_every", "epsilon", "alarm_patience"), "grpo")
        if self.lr is not None:
            common.positive(self, ("lr",), "grpo")
        check_choice(self, "on_alarm", ("warn", "stop"), "grpo.")
        if self.num_generations < 2:
            raise ConfigError(f"grpo.num_generations must be >= 2 (advantages compare a group), got {self.num_generations}")
        if self.beta < 0:
            raise ConfigError(f"grpo.beta must be >= 0, got {self.beta}")
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"grpo.loss_type {self.loss_type!r} unknown; choose one of {', '.join(LOSS_TYPES)}")
        self._check_variants()
        self._check_micro_batch()
        check_choice(self, "scale_rewards", ("group", "batch", "none"), "grpo.")
        if self.generator not in GENERATORS:
            raise ConfigError(f"grpo.generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        check_choice(self, "device", ("cpu", "auto"), "grpo.")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"grpo.top_p must be in (0, 1], got {self.top_p}")
        from ponder.models.lora import normalise

        try:
            self.lora = normalise(self.lora)  # the canonical spec, as ponder_config.json records it
        except ConfigError as e:
            raise ConfigError(f"grpo.{e}") from None

    def _check_micro_batch(self) -> None:
        """``micro_batch_size``: auto, or a positive integer dividing the step's completions."""
        value = self.micro_batch_size
        if isinstance(value, str) and value.strip().lower() == "auto":
            self.micro_batch_size = "auto"
            return
        if not (isinstance(value, int) and not isinstance(value, bool)
                or isinstance(value, str) and value.strip().isdigit()):
            raise ConfigError(f"grpo.micro_batch_size must be auto or a positive integer, got {value!r}")
        n = int(value)
        completions = self.batch_size * self.num_generations
        if n < 1 or completions % n:
            raise ConfigError(f"grpo.micro_batch_size must divide batch_size*num_generations ({completions}), got {n}")
        self.micro_batch_size = n

    def _check_variants(self) -> None:
        """The loss and sampling variants: ranges, and the combinations TRL would only warn about."""
        if self.epsilon_high is not None and (isinstance(self.epsilon_high, bool) or self.epsilon_high < self.epsilon):
            raise ConfigError(f"grpo.epsilon_high must be >= epsilon ({self.epsilon}), got {self.epsilon_high!r}")
        level, loss = self.importance_sampling_level, self.loss_type
        check_choice(self, "importance_sampling_level", ("token", "sequence"), "grpo.")
        if level == "sequence" and loss in TOKEN_SUM_LOSSES:
            raise ConfigError(f"grpo.importance_sampling_level=sequence (GSPO) with loss_type={loss} weights each "
                              "sequence by its length; use loss_type grpo (GSPO's) or luspo")
        if loss == "luspo" and level != "sequence":
            raise ConfigError("grpo.loss_type=luspo needs importance_sampling_level=sequence")
        if loss == "vespo" and level != "token":
            raise ConfigError("grpo.loss_type=vespo weights whole sequences itself: keep importance_sampling_level=token")
        if not isinstance(self.num_iterations, int) or self.num_iterations < 1:
            raise ConfigError(f"grpo.num_iterations must be an integer >= 1, got {self.num_iterations!r}")
        if not 0 <= self.top_entropy_quantile <= 1:
            raise ConfigError(f"grpo.top_entropy_quantile must be in [0, 1], got {self.top_entropy_quantile}")
        if not isinstance(self.max_refill_rounds, int) or self.max_refill_rounds < 0:
            raise ConfigError(f"grpo.max_refill_rounds must be an integer >= 0, got {self.max_refill_rounds!r}")
        if self.tools and (self.generator != "local" or self.dynamic_sampling):
            raise ConfigError("grpo.tools needs generator=local and no dynamic_sampling (ponder's tool rollouts)")
        if not isinstance(self.max_tool_calls, int) or self.max_tool_calls < 0:
            raise ConfigError(f"grpo.max_tool_calls must be an integer >= 0, got {self.max_tool_calls!r}")
        if self.dynamic_sampling and self.generator != "local":
            raise ConfigError(f"grpo.dynamic_sampling needs generator=local (ponder's rollouts), got {self.generator!r}")


# --------------------------------------------------------------------------- data and rewards


def prompt_dataset(cfg: GRPOConfig, tokenizer, thinking=common.OWN_MODELS):
    """The prompt pool: ``prompt`` (as the model sees it, rendered under ``thinking``) plus the
    columns the rewards read."""
    from datasets import Dataset

    from ponder.tasks import get_task, parse_spec

    name = parse_spec(cfg.task)[0]
    task = get_task(cfg.task)
    rows = []
    for ex in task.examples("train"):
        rows.append({
            "prompt": common.prompt_for(ex["prompt"], tokenizer, thinking, cfg.system or None),
            "question": ex["prompt"],
            "gold": str(ex["gold"]),
            "meta": json.dumps(ex["meta"], sort_keys=True, default=str),  # one Arrow type for every task
            "id": str(ex["id"]),
            "task": name,
            "template": cfg.template,
        })
        if len(rows) >= cfg.n_prompts:
            break
    if len(rows) < cfg.batch_size:
        raise ConfigError(f"grpo: task {cfg.task!r} has {len(rows)} train prompts, fewer than batch_size={cfg.batch_size}")
    return Dataset.from_list(rows)


class WithCompletionMetrics:
    """The first reward function, unchanged, plus per-step metrics of the completions it sees.

    TRL hands completions only to reward functions (and ``log_metric`` to log from there;
    values are averaged over the step), so the metrics ride on the first reward: its name
    (TRL's log key) and values are untouched. Logged: ``ponder/accuracy`` (the judge),
    ``ponder/reasoning_length`` (tokens), ``ponder/think_share`` (completions whose reasoning
    was closed by ``</think>``; the prompt's pre-fill is read from the prompt itself),
    ``ponder/looped_share`` (completions whose reasoning repeats a cycle: ``ponder.format.loops``),
    and with tool rollouts the step's ``ponder.train.tool_rollout.rollout_stats``.
    """

    def __init__(self, inner, tokenizer, rollout_stats=None):
        self.inner, self.tokenizer = inner, tokenizer
        self.rollout_stats = rollout_stats  # e.g. LocalRollout.take_stats: metrics of the step's rollout
        self.__name__ = getattr(inner, "__name__", type(inner).__name__)

    def __call__(self, completions: list, **kwargs: Any):
        from ponder.format import looped, parse
        from ponder.rewards import _inputs
        from ponder.rewards.functions import correctness

        kwargs = dynamic.rollout_kwargs(kwargs)  # a refilled row's own prompt, not TRL's
        values = self.inner(completions, **kwargs)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and self.rollout_stats is not None:
            for name, value in self.rollout_stats().items():
                if value is not None:  # no executions this step: no error share to log
                    log_metric(f"ponder/{name}", float(value))
        if callable(log_metric) and completions:
            texts, pre = _inputs.read(completions, kwargs)
            parsed = [parse(t, p) for t, p in zip(texts, pre)]
            lengths = [len(self.tokenizer.encode(p.reasoning, add_special_tokens=False)) for p in parsed]
            log_metric("ponder/reasoning_length", sum(lengths) / len(lengths))
            log_metric("ponder/think_share", sum(p.think_closed and p.has_reasoning for p in parsed) / len(parsed))
            log_metric("ponder/looped_share", sum(looped(p.reasoning) for p in parsed) / len(parsed))
            judged = [ok for ok, _ in correctness(completions, dict(kwargs)) if ok is not None]
            if judged:
                log_metric("ponder/accuracy", sum(judged) / len(judged))
        return values


# --------------------------------------------------------------------------- LocalEngine rollouts


class LocalRollout:
    """``rollout_func`` for TRL's GRPOTrainer: sample the group with ponder's ``LocalEngine``.

    TRL hands over the per-process prompt list with each prompt repeated ``num_generations``
    times in a row; consecutive runs of one prompt become one ``generate(prompt, n=run)`` call so
    the prompt is prefilled once. Returns prompt ids, completion ids (ending in EOS unless cut)
    and the sampled tokens' log-probs, as TRL requires. With ``dynamic`` (``DynamicSampler``),
    zero-spread groups are replaced before TRL sees the batch (``ponder.train.dynamic``).
    """

    def __init__(self, seed: int = 0, dynamic=None, max_tool_calls: int | None = None):
        self.seed = seed
        self.max_tool_calls = max_tool_calls  # None: plain rollouts; else tool rollouts with this cap
        self.dynamic = dynamic  # a ponder.train.dynamic.DynamicSampler, or None
        self.engine = None
        self.loaded_step: int | None = None
        self.tokens = 0  # generated tokens, for benchmarks
        self.seconds = 0.0
        self.stats: dict[str, float | None] = {}  # the last tool rollout's metrics (rollout_stats)

    def __call__(self, prompts: list, trainer) -> dict[str, Any]:
        from ponder.format import render
        from ponder.generate import LocalEngine

        model = trainer.accelerator.unwrap_model(trainer.model)
        if self.engine is None or self.engine.model is not model:
            # no prefix cache: the weights change every step, so its KV would be dropped unused
            self.engine = LocalEngine(model, trainer.processing_class, prefix_cache=0)
            # it has just read the weights: a second copy of its fused matrices would only add to the peak
            self.loaded_step = trainer.state.global_step
        step = trainer.state.global_step
        if step != self.loaded_step:
            # The fast decode path keeps fused copies of q|k|v and gate|up. It detects in-place
            # updates by tensor version counters, but torch's fused AdamW (transformers' default
            # optimizer) does not bump them: without this refresh the rollouts would come from a
            # stale half-updated model.
            self.engine.refresh_weights()
            self.loaded_step = step
        # a conversational dataset's prompts are rendered as everywhere else (ponder.format.render)
        texts = [p if isinstance(p, str) else render(p, trainer.processing_class, self.engine.thinking).text
                 for p in prompts]
        if self.dynamic is not None:
            return self.dynamic(texts, trainer, lambda ts, salt: self._sample(ts, trainer, model, salt))
        return self._sample(texts, trainer, model)

    def _sample(self, texts: list[str], trainer, model, salt: int = 0) -> dict[str, list]:
        """TRL's three lists for ``texts``; ``salt`` varies the seed (dynamic sampling's refill rounds)."""
        from ponder.generate import SamplingParams

        runs: list[tuple[str, int]] = []
        for t in texts:
            if runs and runs[-1][0] == t:
                runs[-1] = (t, runs[-1][1] + 1)
            else:
                runs.append((t, 1))
        args = trainer.args
        rank = trainer.accelerator.process_index
        sp = dict(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k or None,
                  max_tokens=args.max_completion_length)
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        if self.max_tool_calls is not None:
            return self._sample_tools(texts, trainer, model, sp, rank, salt, was_training, t0)
        prompt_ids, completion_ids, logprobs = [], [], []
        # One engine call per distinct run length (normally all runs have length G: one call).
        by_n: dict[int, list[int]] = {}
        for i, (_, n) in enumerate(runs):
            by_n.setdefault(n, []).append(i)
        results: dict[int, list] = {}
        for n, idx in by_n.items():
            seed = (self.seed * 1_000_003 + trainer.state.global_step * 101 + rank * 7 + n + salt * 7919) % (2**31)
            groups = self.engine.generate([runs[i][0] for i in idx], n=n, sampling=SamplingParams(seed=seed, **sp))
            results.update(zip(idx, groups))
        if was_training:
            model.train()
        enc = trainer.processing_class([t for t, _ in runs], add_special_tokens=self.engine.add_special_tokens)["input_ids"]
        for i, (_, n) in enumerate(runs):
            for c in results[i]:
                prompt_ids.append(list(enc[i]))
                completion_ids.append(list(c.token_ids))
                logprobs.append(list(c.logprobs))
                self.tokens += len(c.token_ids)
        self.seconds += time.perf_counter() - t0
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}


    def _sample_tools(self, texts, trainer, model, sp, rank, salt, was_training, t0) -> dict[str, list]:
        """Tool-augmented rows (one rollout per row) plus ``env_mask``, TRL's mask of inserted tokens."""
        from ponder.generate import SamplingParams
        from ponder.train.tool_rollout import rollout_stats, tool_rollouts

        seed = (self.seed * 1_000_003 + trainer.state.global_step * 101 + rank * 7 + salt * 7919) % (2**31)
        max_tokens = sp.pop("max_tokens")
        ids, lps, mask, calls = tool_rollouts(self.engine, trainer.processing_class, texts,
                                              SamplingParams(seed=seed, max_tokens=max_tokens, **sp), max_tokens,
                                              self.max_tool_calls)
        if was_training:
            model.train()
        enc = trainer.processing_class(texts, add_special_tokens=self.engine.add_special_tokens)["input_ids"]
        self.tokens += sum(map(sum, mask))
        self.seconds += time.perf_counter() - t0
        self.stats = rollout_stats(calls, mask)
        return {"prompt_ids": [list(e) for e in enc], "completion_ids": ids, "logprobs": lps, "env_mask": mask}

    def take_stats(self) -> dict[str, float | None]:
        """The last rollout's tool metrics, once (empty for plain rollouts or when already taken)."""
        stats, self.stats = self.stats, {}
        return stats


# --------------------------------------------------------------------------- run


METRIC_KEYS = {
    "reward": "reward",
    "completions/mean_length": "completion_length",
    "ponder/reasoning_length": "reasoning_length",
    "ponder/think_share": "think_share",
    "ponder/looped_share": "looped_share",
    "ponder/accuracy": "accuracy",
    "frac_reward_zero_std": "zero_spread",
    "completions/clipped_ratio": "clipped_ratio",
    "kl": "kl",
    "learning_rate": "lr",
    "entropy": "entropy",
    "loss": "loss",
    "clip_ratio/low_mean": "clip_low",
    "clip_ratio/high_mean": "clip_high",
}
#: logged only with dynamic sampling on
DYNAMIC_KEYS = {f"ponder/{k}": k for k in dynamic.STATS}
#: logged only with tool rollouts (``tool_error_share`` only on steps that ran a tool)
TOOL_KEYS = {f"ponder/{k}": k for k in TOOL_STATS}


def metrics_row(logs: dict[str, Any]) -> dict[str, Any] | None:
    """Our per-step record from one TRL log dict (None for logs that are not a training step)."""
    if "reward" not in logs and "loss" not in logs:  # with num_iterations > 1 only every mu-th step has rewards
        return None
    row: dict[str, Any] = {v: logs.get(k) for k, v in METRIC_KEYS.items()}
    row.update({v: logs[k] for k, v in DYNAMIC_KEYS.items() if k in logs})
    if any(k in logs for k in TOOL_KEYS):
        row.update({v: logs.get(k) for k, v in TOOL_KEYS.items()})
    for k, v in logs.items():
        if k.startswith("rewards/") and k.endswith("/mean"):
            row[k[: -len("/mean")]] = v
    if logs.get("alarms"):
        row["alarms"] = list(logs["alarms"])
    return row


#: What ``micro_batch_size=auto`` lets one forward keep for its backward.
ACTIVATION_BUDGET = 1 << 30


def activation_bytes(model_config, tokens: int) -> int:
    """Bytes one row of ``tokens`` keeps from its forward for the backward (float32).

    About 16 hidden-size and 6 intermediate-size vectors per token and layer: the norms' float32
    copies, q/k/v and the attention output, the MLP's gate, up, activation and product, and each
    LoRA layer's input. Measured on SmolLM2-135M (30 layers, 576/1536) with LoRA on every linear
    layer: a 16-row forward of 180 tokens grew RSS by 6.6 GB and its backward by 3 GB more; this
    gives 6.4 GB. TRL's fused LM head scores the vocabulary in tiles, so the logits add little.
    """
    text = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    hidden = text.hidden_size
    inter = getattr(text, "intermediate_size", None) or 4 * hidden
    return 4 * tokens * text.num_hidden_layers * (16 * hidden + 6 * inter)


def micro_batch(cfg: GRPOConfig, rows: int, model_config=None, prompt_tokens: int | None = None) -> int:
    """Rows per forward/backward among ``rows`` (the step's completions on this process).

    ``auto``: the largest divisor of ``rows`` whose ``activation_bytes`` fit ``ACTIVATION_BUDGET``,
    each row ``prompt_tokens`` (the pool's longest prompt; unknown: as long as a completion) plus
    ``max_completion_length`` long; all rows when the model's config is not known.
    """
    if cfg.micro_batch_size != "auto":
        n = int(cfg.micro_batch_size)
        if rows % n:
            raise ConfigError(f"grpo.micro_batch_size ({n}) must divide the {rows} completions each process trains on")
        return n
    if model_config is None:
        return rows
    tokens = (prompt_tokens if prompt_tokens is not None else cfg.max_completion_length) + cfg.max_completion_length
    fit = max(1, ACTIVATION_BUDGET // activation_bytes(model_config, tokens))
    return max(d for d in range(1, rows + 1) if rows % d == 0 and d <= fit)


def _model_config(path: str):
    """The ``transformers`` config of checkpoint ``path`` (an adapter's: its base's), or None."""
    from transformers import AutoConfig

    from ponder.models import ModelLoadError, is_adapter
    from ponder.models.lora import adapter_config

    try:
        if is_adapter(path):
            path = adapter_config(path).get("base_model_name_or_path") or path
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError, ModelLoadError):
        return None


def trainer_args(cfg: GRPOConfig, out: Path, lr: float | None = None, model_config=None,
                 prompt_tokens: int | None = None, **overrides: Any):
    """TRL ``GRPOConfig`` for ``cfg``: one generation round and one optimizer step per ``step``.

    The step's completions train in micro-batches of ``micro_batch`` rows (``model_config``, read
    from ``cfg.model`` when not given, and ``prompt_tokens`` feed its estimate), accumulated to one
    optimizer step: ``steps_per_generation`` equals the accumulation steps, so TRL generates once
    per step and, with ``num_iterations`` 1, takes the rollout's log-probs as the old policy's.
    ``overrides`` replace any TRL field (bench/train.py uses it to restore TRL's CPU defaults).
    """
    from trl import GRPOConfig as TRLGRPOConfig

    world = int(os.environ.get("WORLD_SIZE", "1"))
    completions = cfg.batch_size * cfg.num_generations
    if completions % world:
        raise ConfigError(f"grpo: batch_size*num_generations ({completions}) must divide among {world} processes")
    rows = completions // world
    if cfg.micro_batch_size == "auto" and model_config is None:
        model_config = _model_config(cfg.model)
    micro = micro_batch(cfg, rows, model_config, prompt_tokens)
    if cfg.dynamic_sampling and cfg.batch_size % world:
        raise ConfigError(f"grpo: dynamic sampling needs whole groups per process: batch_size ({cfg.batch_size}) "
                          f"must divide among {world} processes")
    return TRLGRPOConfig(
        output_dir=str(out),
        max_steps=cfg.steps,
        learning_rate=cfg.lr if cfg.lr is not None else (lr or 1e-4),
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=cfg.warmup_steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=rows // micro,
        steps_per_generation=rows // micro,
        num_iterations=cfg.num_iterations,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        importance_sampling_level=cfg.importance_sampling_level,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        mask_truncated_completions=cfg.mask_truncated,
        top_entropy_quantile=cfg.top_entropy_quantile,
        use_vllm=cfg.generator == "vllm",
        vllm_mode="colocate",
        **{**common.trainer_args(cfg.save_every, cfg.seed, cfg.device), **overrides},
    )


def build_trainer(cfg: GRPOConfig, out: Path, callbacks: list | None = None, args=None):
    """The configured ``GRPOTrainer`` (exposed for bench/train.py) and its rollout (or None)."""
    from trl import GRPOTrainer

    from ponder.rewards import parse_reward_spec

    funcs, weights = parse_reward_spec(cfg.rewards)
    common.quiet_transformers()
    model, tok, peft_config = common.load_for_training(cfg.model, cfg.lora)
    common.check_targets(model, peft_config)
    model.train()
    thinking = common.thinking_for(tok, model.config, cfg.thinking)
    dataset = prompt_dataset(cfg, tok, thinking)
    if args is None:
        longest = max(len(ids) for ids in tok(list(dataset["prompt"]), add_special_tokens=False)["input_ids"])
        args = trainer_args(cfg, out, common.default_lr("grpo", model, bool(cfg.lora)), model.config, longest)
    args.reward_weights = weights
    sampler = None
    if cfg.dynamic_sampling:
        sampler = dynamic.DynamicSampler(funcs, weights, dataset.to_list(), cfg.max_refill_rounds, cfg.seed)
        funcs = [dynamic.FromRollout(f, i) for i, f in enumerate(funcs)]  # reuse the rollout's scores
    rollout = LocalRollout(cfg.seed, sampler, cfg.max_tool_calls if cfg.tools else None) if cfg.generator == "local" else None
    funcs = [WithCompletionMetrics(funcs[0], tok, rollout.take_stats if rollout else None), *funcs[1:]]
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        callbacks=callbacks or [],
        rollout_func=rollout,
        peft_config=peft_config,
    )
    trainer.ponder_thinking = thinking
    return trainer, rollout


def run(cfg: GRPOConfig) -> Path:
    """GRPO from ``cfg.model`` on ``cfg.task``; returns ``<out>/final`` and writes ``<out>/metrics.jsonl``."""
    out, done = common.begin(cfg, "grpo")
    if done is not None:
        return done
    from ponder.train.health import HealthConfig, HealthMonitor

    callbacks = [common.trainer_progress(cfg.steps, "grpo"),
                 HealthMonitor(HealthConfig(patience=cfg.alarm_patience), on_alarm=cfg.on_alarm),
                 common.JsonlLogger(out / "metrics.jsonl", metrics_row), *common.thread_guards(cfg.threads)]
    trainer, _ = build_trainer(cfg, out, callbacks)
    common.drop_printer(trainer)
    return common.train_and_save(trainer, out, cfg, thinking=trainer.ponder_thinking)
