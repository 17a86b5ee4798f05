"""What every training stage shares: prompts, the final save, resume, CPU flags, progress.

The hand-off between stages is a checkpoint directory and nothing else. Every stage writes

    <out>/checkpoint-N/       resumable state (the newest complete one is used after a kill)
    <out>/final/              the model + tokenizer (HF format) + ponder_config.json
    <out>/ponder_done.json    written last: a re-run with the same <out> skips the stage
                              (with the process's peak RSS, ``peak_rss_mb``)

With ``lora`` set, ``final/`` and every ``checkpoint-N/`` hold a PEFT adapter instead of the
whole model (``ponder.models.lora``); resume works the same way (transformers' Trainer reloads
the adapter weights and the optimizer state).

**Prompts.** All stages (and evaluation, rejection sampling, ``ask``, ``serve``) show a model
the same prompt text, or a model trained on one layout is measured on another. ``prompt_for``
is that text: ``ponder.format.render`` of the question under the model's thinking decision
(``thinking_for``). ponder's own models are built to open their think block themselves
(start ``model``: no ``<think>`` pre-fill), so "does it reason at all" is a behaviour GRPO can
change; every stage records the start it trained with in the checkpoint's config
(``ponder_thinking``), so ``--thinking auto`` finds it again. By default there is no system turn
(ponder's tiny models never saw R1's system prompt; 40 tokens of it per sequence would cost more
compute than the question).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterable

from ponder import threads as thread_choice
from ponder.config import ConfigError
from ponder.format import Thinking, decide_thinking, render
from ponder.io import json_objects, write_json_atomic
from ponder.threads import set_threads  # noqa: F401 - the stages' entry point, owned by ponder.threads
from ponder.train.checkpoint import DONE_FILE, atomic_dir, discard_incomplete, is_done

log = logging.getLogger(__name__)

CONFIG_FILE = "ponder_config.json"

# transformers' Trainer on CPU: these flags made GRPO steps ~13x faster than TRL's defaults on an
# AVX2-only machine (bf16 is emulated there; gradient checkpointing recomputes every forward). On a
# CPU with AMX bf16 is native and keeping it is faster for a 135M model (bench/train.py --model smollm2).
CPU_FLAGS: dict[str, Any] = {"use_cpu": True, "bf16": False, "gradient_checkpointing": False}


def trainer_args(save_every: int, seed: int, device: str) -> dict[str, Any]:
    """The TrainingArguments every Trainer stage shares: checkpoints every ``save_every`` steps
    (the last two kept, for resume), a metrics row every step (ponder writes metrics.jsonl
    itself: no report_to, no tqdm), the seed, no dataloader workers, and the CPU flags unless
    ``device`` is "auto"."""
    return {"save_strategy": "steps", "save_steps": save_every, "save_total_limit": 2, "logging_steps": 1,
            "report_to": "none", "disable_tqdm": True, "seed": seed, "dataloader_num_workers": 0,
            **(CPU_FLAGS if device == "cpu" else {})}


class StageError(ValueError):
    """A stage cannot run with the given inputs (bad data file, unusable checkpoint, …)."""


#: how ponder builds its own models: they open ``<think>`` themselves (no pre-fill)
OWN_MODELS = Thinking("auto", "model", "ponder's own models open their think block themselves")


#: Parameters below which a model counts as one of ponder's tiny ones for the default learning rates.
TINY_PARAMS = 50_000_000
#: stage -> (learning rate for a tiny model, for a real one). Tiny randomly initialised models
#: need large steps; a pretrained 135M+ model at those rates is wrecked (SmolLM2 after 3 SFT
#: steps at 5e-4 ended every completion at its first token). The real-model rates are TRL's and
#: open-r1's.
DEFAULT_LR = {"sft": (5e-4, 2e-5), "grpo": (1e-4, 1e-6)}


#: LoRA's default learning rate is this multiple of full fine-tuning's: the best LoRA rate was
#: about 10x the best full fine-tuning rate across model sizes and ranks in Schulman et al.,
#: "LoRA Without Regret" (Thinking Machines, 2025); TRL's LoRA examples use 1e-4..2e-4 for SFT.
LORA_LR_FACTOR = 10.0


def default_lr(stage: str, model, lora: bool = False) -> float:
    """The learning rate a stage uses when none is given, chosen by the model's size (and
    ``LORA_LR_FACTOR`` times that when only a LoRA adapter trains)."""
    n = sum(p.numel() for p in model.parameters())
    tiny, real = DEFAULT_LR[stage]
    lr = (tiny if n < TINY_PARAMS else real) * (LORA_LR_FACTOR if lora else 1.0)
    log.info("%s: learning rate %.1e for a model of %.1fM parameters%s (set lr to override)", stage, lr, n / 1e6,
             " with LoRA" if lora else "")
    return lr


def load_for_training(path: str, lora: str = ""):
    """``(model, tokenizer, peft_config | None)`` for a stage that trains ``path``.

    Without ``lora`` the whole model trains (an adapter directory is merged onto its base first).
    With ``lora`` (a spec, ``ponder.models.lora``) the base is frozen and a new adapter is handed
    to TRL as ``peft_config``; when ``path`` is itself an adapter, that adapter keeps training
    (its shape must match the spec: two stacked adapters would not save as one PEFT directory).
    """
    from ponder.models import is_adapter, load
    from ponder.models import lora as lora_mod

    spec = lora_mod.parse_lora(lora)
    if spec is None:
        model, tok = load(path)
        return model, tok, None
    if is_adapter(path):
        diff = lora_mod.matches(lora_mod.adapter_config(path), spec)
        if diff:
            raise ConfigError(f"lora: {path} is an adapter of another shape ({'; '.join(diff)}); give its own "
                              "spec, or merge it first (ponder models merge) to train a new adapter on the result")
        model, tok = lora_mod.load_peft(path, trainable=True)
        return model, tok, None
    model, tok = load(path)
    return model, tok, lora_mod.lora_config(spec)


def check_targets(model, peft_config) -> None:
    """A ConfigError naming the modules when a LoRA spec's targets are not in ``model``."""
    if peft_config is None or peft_config.target_modules == "all-linear":
        return
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = sorted(set(peft_config.target_modules) - names)
    if missing:
        import torch

        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError(f"lora.targets: no module named {', '.join(missing)} in the model; its linear layers: "
                          f"{', '.join(linear)}")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (``ru_maxrss``: KiB on Linux)."""
    import resource
    import sys

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def thinking_for(tokenizer, config: Any = None, mode: str = "auto") -> Thinking:
    """The thinking decision of a model being trained (``ponder.format.decide_thinking``)."""
    return decide_thinking(mode, tokenizer, config)


def prompt_for(question: str, tokenizer, thinking: Thinking = OWN_MODELS, system: str | None = None) -> str:
    """The prompt text a model sees for ``question`` (see the module docstring); ``tokenizer``
    None renders ponder's plain layout."""
    return render(question, tokenizer, thinking, system=system).text


def record_thinking(model, thinking: Thinking) -> None:
    """Store the start a model was trained with in its config (``--thinking auto`` reads it)."""
    if thinking.start in ("prefill", "model", "skip"):
        model.config.ponder_thinking = thinking.start


def task_specs(task: Any) -> list[str]:
    """A task spec, a ';'-separated string of specs, or a list of specs → list of specs.

    Specs contain commas (``addition:digits=3,n_train=100``), so several specs on one command
    line are separated by ';'.
    """
    if isinstance(task, str):
        specs = [s.strip() for s in task.split(";") if s.strip()]
    elif isinstance(task, (list, tuple)):
        specs = [str(s).strip() for s in task if str(s).strip()]
    else:
        raise ConfigError(f"task must be a spec string or a list of specs, got {type(task).__name__}")
    if not specs:
        raise ConfigError("task: no task spec given (e.g. addition:digits=3)")
    return specs


def config_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (saved beside every final model)."""
    return asdict(cfg) if is_dataclass(cfg) else dict(cfg)


def check_out(out: str | os.PathLike | None, what: str) -> Path:
    """``out`` as a Path; None or an existing file is a ConfigError."""
    if out is None or str(out).strip() == "":
        raise ConfigError(f"{what}: out (the run directory) is required")
    p = Path(out).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what}: out {str(p)!r} is a file, not a directory")
    return p


def already_done(out: Path, name: str) -> Path | None:
    """``<out>/final`` when the stage finished earlier (it is then skipped), else None.

    Also discards checkpoints a kill left half-written, so a resume never reads one.
    """
    if is_done(out):
        log.info("%s: %s is done, skipping (delete it to train again)", name, out)
        return out / "final"
    discard_incomplete(out)
    return None


def begin(cfg: Any, stage: str) -> tuple[Path, Path | None]:
    """Start training stage ``stage`` of ``cfg``: ``(out, <out>/final)`` when it finished earlier
    (``already_done``: nothing to do), else ``(out, None)`` with torch's threads set to ``cfg.threads``."""
    out = check_out(cfg.out, stage)
    done = already_done(out, stage)
    if done is None:
        set_threads(cfg.threads)
    return out, done


def save_final(out: Path, model, tokenizer, cfg: Any, extra: dict[str, Any] | None = None,
               thinking: Thinking | None = None) -> Path:
    """Write ``<out>/final`` atomically (model, tokenizer, ponder_config.json), then the done marker.

    ``thinking``: the decision the stage trained under, recorded in the model's config."""
    if thinking is not None:
        record_thinking(model, thinking)
    from ponder.models import lora

    summary: dict[str, Any] = {}
    with atomic_dir(out / "final") as tmp:
        if lora.is_peft(model):  # PEFT's format: adapter_config.json (absolute base) + adapter weights
            lora.save_adapter(model, tokenizer, tmp)
            trainable, total = lora.trainable_params(model)
            summary = {"lora": True, "trainable_params": trainable, "total_params": total}
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
        (tmp / CONFIG_FILE).write_text(json.dumps(config_dict(cfg), indent=2, default=str))
    write_json_atomic(out / DONE_FILE, {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                        **summary, **(extra or {}), "peak_rss_mb": peak_rss_mb()})
    return out / "final"


def train_and_save(trainer, out: Path, cfg: Any, extra: dict[str, Any] | None = None,
                   thinking: Thinking | None = None) -> Path:
    """Run a transformers/TRL ``trainer`` to the end and write ``<out>/final``.

    Resumes from the newest complete ``checkpoint-N`` in ``out`` (a kill loses at most the steps
    since it); only the main process saves, and every process waits for it before returning.
    """
    from ponder.train.checkpoint import last_complete_checkpoint

    resume = last_complete_checkpoint(out)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if trainer.is_world_process_zero():
        save_final(out, trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class, cfg,
                   {"steps": trainer.state.global_step, **(extra or {}), "processes": trainer.args.world_size},
                   thinking=thinking)
    trainer.accelerator.wait_for_everyone()
    return out / "final"


def read_jsonl_pairs(path: str | os.PathLike, what: str = "data") -> list[dict[str, Any]]:
    """Rows ``{prompt, completion}`` of an SFT JSONL file; errors name the file and line number.

    ``prompt`` and ``completion`` are strings (the prompt as the model sees it, see
    ``prompt_for``), or lists of chat messages (TRL then applies the tokenizer's chat template).
    Other fields (provenance, ids) are ignored.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise StageError(f"{what}: {p}: no such file")
    rows = []
    for i, row in json_objects(p, StageError):
        missing = [k for k in ("prompt", "completion") if k not in row]
        if missing:
            raise StageError(f"{p}:{i}: missing field(s) {', '.join(missing)} (each line needs prompt and completion)")
        for k in ("prompt", "completion"):
            v = row[k]
            if not (isinstance(v, str) and v) and not (isinstance(v, list) and v):
                raise StageError(f"{p}:{i}: {k} must be a non-empty string or list of messages, got {v!r:.60}")
        rows.append({"prompt": row["prompt"], "completion": row["completion"]})
    if not rows:
        raise StageError(f"{p}: no examples (the file is empty)")
    return rows


def trainer_progress(total: int, description: str):
    """A transformers ``TrainerCallback`` that draws a rich progress bar over the optimizer steps."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def __init__(self) -> None:
            self.bar = None

        def on_train_begin(self, args, state, control, **kw):
            if state.is_world_process_zero:
                self.bar = progress_bar()
                self.bar.start()
                self.task = self.bar.add_task(description, total=total, completed=state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)

        def on_train_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    return _Progress()


def progress_bar():
    """A rich progress bar with step counts, rate and time left (on stderr, so stdout stays clean)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    )


def quiet_transformers() -> None:
    """Silence per-step dict printing and advisory warnings; the progress bar and metrics file say enough."""
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights", "Writing model shards"
    import datasets

    datasets.disable_progress_bars()  # TRL's "Tokenizing train dataset" bars
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def drop_printer(trainer) -> None:
    """Remove the callback that prints every log dict to stdout (disable_tqdm=True adds it)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def positive(cfg: Any, names: Iterable[str], where: str) -> None:
    """ConfigError unless every field in ``names`` is a number > 0."""
    for n in names:
        v = getattr(cfg, n)
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ConfigError(f"{where}.{n} must be > 0, got {v!r}")


def JsonlLogger(path: str | os.PathLike, row=None):
    """A ``TrainerCallback`` appending one JSON line per logged training step to ``path``.

    ``row(logs) -> dict | None`` maps transformers' log dict to the record (None skips it; the
    default keeps logs that carry a ``loss``). On a fresh run the file is emptied; on a resume,
    lines after the resumed step are dropped, so the file always has one line per step.
    """
    from transformers import TrainerCallback

    path = Path(path)

    def default(logs):
        return dict(logs) if "loss" in logs else None

    mapper = row or default

    class _Logger(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if not state.is_world_process_zero:
                return
            keep = []
            if state.global_step > 0 and path.exists():
                for line in path.read_text().splitlines():
                    try:
                        if json.loads(line).get("step", 0) <= state.global_step:
                            keep.append(line)
                    except ValueError:
                        pass  # a line cut by a kill
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(k + "\n" for k in keep))
            self.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs:
                return
            rec = mapper(logs)
            if rec is None:
                return
            rec = {"step": state.global_step, **rec, "seconds": round(time.perf_counter() - self.t0, 3),
                   "peak_rss_mb": peak_rss_mb()}
            with path.open("a") as f:
                f.write(json.dumps(rec) + "\n")

    return _Logger()


def thread_guards(threads: int) -> list:
    """``[ThreadGuard().callback]`` for a Trainer stage on auto threads (``threads`` <= 0), else ``[]``."""
    return [ThreadGuard().callback] if threads <= 0 else []


class ThreadGuard:
    """Re-decides auto's thread count before every optimizer step (a TrainerCallback's
    ``on_step_begin``): a job that starts mid-stage drops the stage to one thread at the next
    step, rather than leaving its threads stalled behind it for the rest of the stage; the count
    goes back up only after ``patience`` quiet steps in a row. ``counts`` records the thread
    count of each step."""

    def __init__(self, patience: int = 5):
        from transformers import TrainerCallback

        guard = self
        self.patience, self.quiet, self.counts = patience, 0, []
        thread_choice.default_threads()  # before any change

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                guard.step()

        self.callback = _CB()

    def step(self) -> int:
        import torch

        # one /proc sample per step (set_threads takes three, 10 ms apart: too slow for every step)
        want = thread_choice.decide(thread_choice.other_runnable())
        now = torch.get_num_threads()
        if want < now:
            self.quiet = 0
            torch.set_num_threads(want)
        elif want > now:
            self.quiet += 1
            if self.quiet >= self.patience:
                self.quiet = 0
                torch.set_num_threads(want)
        else:
            self.quiet = 0
        self.counts.append(torch.get_num_threads())
        return self.counts[-1]
