"""Rejection sampling: N samples per prompt, keep the verified-correct ones, write SFT JSONL.

``ponder sample`` is both the R1 recipe's rejection-sampling stage (sample the RL model on the
train split, keep what the verifier accepts, fine-tune on it) and the teacher-trace generator of
distillation. Each kept sample is one JSONL line::

    {"prompt": <prompt text>, "completion": "<think>…</think>answer",
     "provenance": {"model", "task", "id", "sample_index", "seed", "temperature", "correct"}}

``prompt`` is the question as the sampled model sees it (``ponder.generate.prompt``: its chat
template and thinking decision, the text every ponder stage shows a model; the student of a
distillation shares the template), and ``completion`` is exactly what the model wrote after it,
so prompt + completion is the sequence SFT trains (a pre-filled ``<think>`` stays in the prompt;
``provenance.prefilled_think`` says so).

Selection per prompt: verified-correct samples (``ponder.tasks.judge``), de-duplicated by text when
``dedup`` (the first occurrence survives), then ``keep=all`` (up to ``max_per_prompt``) or
``keep=shortest`` (the one correct sample with the fewest tokens; ties: lowest sample index).

Resume: after each batch of prompts the kept lines are appended to ``out`` and one line per
finished prompt to ``<out>.progress.jsonl``, both flushed. A restarted run skips the finished
ids and drops lines of a prompt whose progress line was never written (a kill between the two
writes). Batches are fixed slices of the prompt list with seed ``seed·1000003 + batch index``,
so a resumed run draws the same samples for the batches it still has to do as a fresh run would
(up to a batch a kill cut in half). ``<out>.stats.json`` marks the run done.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterable

from ponder.config import ConfigError, ModelOptions, PromptOptions, SamplingOptions, check_range, option, shared
from ponder.io import RecordWriter, read_records, write_json_atomic, write_text_atomic


class SampleError(ValueError):
    """Bad rejection-sampling input or state; the message names the problem."""


#: ``limit`` of the commands that sample traces (where 0 means the whole split).
LIMIT_HELP = "Use only the first LIMIT prompts of the split (0 = all)."


@dataclass
class TraceOptions:
    """How traces are sampled and which become SFT data (``ponder sample``; ``ponder train distill``'s teacher)."""

    task: str = shared("task", "addition:digits=3")
    limit: int = option(0, LIMIT_HELP)
    n: int = shared("n", 4)
    temperature: float = shared("temperature", 0.8)
    max_tokens: int = shared("max_tokens", 256)
    keep: str = option("all", "all: every correct sample; shortest: the correct sample with fewest tokens.")
    dedup: bool = option(True, "Drop correct samples whose text repeats an earlier one of the same prompt.")
    verify: bool = option(True, "Keep only verified-correct samples (False: keep every sample, unfiltered traces).")


@dataclass
class SampleConfig(TraceOptions, PromptOptions, SamplingOptions, ModelOptions):
    """Options of ``ponder sample`` (rejection sampling / teacher traces)."""

    out: str = option("runs/samples.jsonl", "Output SFT JSONL ({prompt, completion, provenance}).")
    split: str = shared("split", "train")
    top_p: float = shared("top_p", 1.0)
    max_per_prompt: int = option(0, "With keep=all: at most this many samples per prompt (0 = no cap).")
    batch_prompts: int = option(16, "Prompts per generation call (rows = batch_prompts * n).")

    def check(self) -> None:
        if self.keep not in ("all", "shortest"):
            raise ConfigError(f"keep must be 'all' or 'shortest', got {self.keep!r}")
        if self.split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test', got {self.split!r}")
        check_range(self, ("n", "max_tokens", "batch_prompts"), 1)
        check_range(self, ("limit", "max_per_prompt", "temperature"), 0)
        if not self.model:
            raise ConfigError("model is required: the checkpoint directory to sample from")


def paths(out: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(samples JSONL, progress JSONL, stats JSON) of a run writing ``out``."""
    out = Path(out)
    return out, out.with_name(out.name + ".progress.jsonl"), out.with_name(out.name + ".stats.json")


def is_done(out: str | os.PathLike) -> bool:
    """The run writing ``out`` finished (its stats file exists)."""
    return paths(out)[2].is_file()


def select(samples: list[tuple[int, Any]], correct: list[bool], keep: str, dedup: bool,
           max_per_prompt: int = 0) -> list[tuple[int, Any]]:
    """Which (sample_index, completion) pairs of one prompt to keep.

    ``samples[i][1]`` needs ``.text`` and ``.token_ids``. Order of the result: sample order.
    """
    chosen, seen = [], set()
    for (idx, c), ok in zip(samples, correct):
        if not ok:
            continue
        key = c.text.strip()
        if dedup and key in seen:
            continue
        seen.add(key)
        chosen.append((idx, c))
    if keep == "shortest" and chosen:
        return [min(chosen, key=lambda p: (len(p[1].token_ids), p[0]))]
    if max_per_prompt:
        chosen = chosen[:max_per_prompt]
    return chosen


def rejection_sample(backend, task, examples: Iterable[dict], cfg: SampleConfig, model_name: str,
                     progress: bool = True) -> dict:
    """Sample ``cfg.n`` completions per example with ``backend``, keep, append to ``cfg.out``.

    ``backend`` is any ``ponder.generate.Backend``; its ``tokenizer`` (when it has one) supplies
    the chat template. Returns the stats (also written to ``<out>.stats.json``).
    """
    from ponder.generate import SamplingParams
    from ponder.generate.scoring import sample_and_score

    cfg.check()
    out, prog_path, stats_path = paths(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    examples = list(examples)
    if not examples:
        raise SampleError(f"task {cfg.task!r} split {cfg.split!r} has no examples to sample")
    # resume: finished ids, and drop lines of a prompt whose progress line is missing
    done = {r["id"]: r for r in read_records(prog_path, repair=True, error=SampleError) if "id" in r}
    kept_rows = read_records(out, repair=True, error=SampleError)
    valid = [r for r in kept_rows if r.get("provenance", {}).get("id") in done]
    if len(valid) != len(kept_rows):
        write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in valid))
    totals = {"prompts": len(done), "samples": sum(r["samples"] for r in done.values()),
              "correct": sum(r["correct"] for r in done.values()), "kept": sum(r["kept"] for r in done.values()),
              "prompts_with_correct": sum(r["correct"] > 0 for r in done.values())}
    batches = [examples[i:i + cfg.batch_prompts] for i in range(0, len(examples), cfg.batch_prompts)]
    bar = _progress(progress)
    with bar:
        tid = bar.add_task("sampling", total=len(examples), completed=len(done))
        for b, batch in enumerate(batches):
            todo = [ex for ex in batch if ex["id"] not in done]
            if not todo:
                continue
            seed = cfg.seed * 1_000_003 + b
            sp = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=seed)
            lines, plines = [], []
            for scored in sample_and_score(backend, task, todo, n=cfg.n, sampling=sp, batch=len(todo),
                                           system=cfg.system or None,
                                           seed_of=lambda i, exs: seed if i == 0 else seed + i):
                ex, prompt = scored[0].example, scored[0].prompt
                group = [s.completion for s in scored]
                verdicts = [s.verdict.correct for s in scored]
                # an empty completion is never SFT data, even unverified
                keep_mask = [(v or not cfg.verify) and bool(c.text.strip()) for v, c in zip(verdicts, group)]
                chosen = select(list(enumerate(group)), keep_mask, cfg.keep, cfg.dedup, cfg.max_per_prompt)
                for idx, c in chosen:
                    lines.append({
                        # the pair trains what follows the prompt: a pre-filled <think> is in the prompt
                        "prompt": prompt.payload,
                        "completion": c.text,
                        "provenance": {"model": model_name, "task": cfg.task, "id": ex["id"], "sample_index": idx,
                                       "seed": scored[idx].seed, "temperature": cfg.temperature,
                                       "correct": verdicts[idx], "prefilled_think": c.prefilled},
                    })
                plines.append({"id": ex["id"], "samples": len(group), "correct": sum(verdicts), "kept": len(chosen)})
                totals["samples"] += len(group)
                totals["correct"] += sum(verdicts)
                totals["kept"] += len(chosen)
                totals["prompts_with_correct"] += sum(verdicts) > 0
            totals["prompts"] += len(todo)
            # samples first, then the progress lines that make them count (see module docstring)
            _append(out, lines)
            _append(prog_path, plines)
            bar.update(tid, advance=len(todo),
                       description=f"sampling (kept {totals['kept']}, {totals['correct'] / max(1, totals['samples']):.0%} correct)")
    stats = {**totals, "sample_accuracy": totals["correct"] / max(1, totals["samples"]),
             "config": asdict(cfg), "model": model_name}
    write_json_atomic(stats_path, stats)
    return stats


def _append(path: Path, rows: list[dict]) -> None:
    with RecordWriter(path, fsync=True) as w:
        w.write_all(rows)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


def run(cfg: SampleConfig, backend=None, progress: bool = True) -> Path:
    """Rejection-sample ``cfg.model`` on ``cfg.task``; returns the JSONL path. Skips a finished run.

    A finished or half-finished run with different settings is an error (the lines would mix).
    """
    from ponder.tasks import get_task

    cfg.check()
    out, _, stats_path = paths(cfg.out)
    cfg_path = out.with_name(out.name + ".config.json")
    mine = asdict(cfg)
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        diff = sorted(k for k in set(old) | set(mine) if k not in ("batch_prompts",) and old.get(k) != mine.get(k))
        if diff:
            raise SampleError(
                f"{out} was written with different settings ({', '.join(f'{k}: {old.get(k)!r} -> {mine.get(k)!r}' for k in diff)}); "
                "choose another --out or delete it")
    if is_done(out):
        return out
    task = get_task(cfg.task)
    examples = task.examples(cfg.split)
    if cfg.limit:
        examples = islice(examples, cfg.limit)
    if backend is None:
        from ponder.generate import load_backend

        backend = load_backend(cfg.model, thinking=cfg.thinking, extra_body=cfg.extra_body or None,
                               tokenizer=cfg.tokenizer or None)
    write_json_atomic(cfg_path, mine)  # only once the inputs are known good
    rejection_sample(backend, task, examples, cfg, model_name=str(cfg.model), progress=progress)
    return out
