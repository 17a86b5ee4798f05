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

    .venv/bin/python bench/train.py            # ~3-6 min on a shared 2-core CPU
    .venv/bin/python bench/train.py --quick    # fewer steps, a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def _pretrained(root: Path) -> Path:
    from ponder.train import pretrain

    cfg = pretrain.PretrainConfig(out=str(root / "base"), preset="micro", steps=1, n_examples=256, batch_size=8)
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


def grpo_rate(name: str, base: Path, root: Path, steps: int, prompts: int, group: int, max_len: int) -> dict:
    """Run ``steps`` GRPO steps in configuration ``name``; steps/s and generated tokens/s after step 1."""
    from ponder.train import common, grpo

    cfg = grpo.GRPOConfig(model=str(base), task="addition:digits=3", out=str(root / name), steps=steps,
                          batch_size=prompts, num_generations=group, max_completion_length=max_len,
                          n_prompts=64, save_every=10_000, rewards="accuracy=1,format=0.2",
                          generator="local" if name == "ponder" else "trl",
                          device="cpu")
    # trl-defaults: TRL's GRPOConfig defaults (bf16, gradient checkpointing) with only use_cpu=True, the
    # one flag without which transformers refuses to start on a machine without a GPU.
    over = {"bf16": True, "gradient_checkpointing": True} if name == "trl-defaults" else {}
    args = grpo.trainer_args(cfg, root / name, **over)
    timer = _Timer()
    lengths: list[float] = []

    from transformers import TrainerCallback

    class Lengths(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    trainer, _ = grpo.build_trainer(cfg, root / name, [timer.callback, Lengths()], args=args)
    common.drop_printer(trainer)
    trainer.train()
    times, lens = timer.times[1:], lengths[1:]
    tokens = sum(lens) * prompts * group
    return {"config": name, "steps": len(times), "steps_per_s": len(times) / sum(times),
            "gen_tokens_per_s": tokens / sum(times), "mean_completion_len": sum(lens) / len(lens)}


def sft_rate(base: Path, root: Path, steps: int) -> dict:
    """SFT tokens/s (prompt + completion tokens through forward+backward) with the CPU flags."""
    from ponder.models import load
    from ponder.tasks import get_task, reference_completion
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="GRPO steps per configuration (first excluded)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the configurations (median reported)")
    ap.add_argument("--quick", action="store_true", help="3 steps, 4x4 completions, 32 tokens, 1 round")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = ponder's auto choice)")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.prompts, a.group, a.max_len, a.rounds = 3, 4, 4, 32, 1
    from ponder.train.common import quiet_transformers, set_threads

    quiet_transformers()
    threads = set_threads(a.threads)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        base = _pretrained(root)
        # Rounds of A, B, C in turn: a change of machine load hits every configuration alike; the
        # median round per configuration is reported.
        names = ("trl-defaults", "ponder-trl-gen", "ponder")
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for r in range(a.rounds):
            for n in names:
                runs[n].append(grpo_rate(n, base, root / f"r{r}", a.steps, a.prompts, a.group, a.max_len))
        rows = [sorted(runs[n], key=lambda x: x["steps_per_s"])[len(runs[n]) // 2] for n in names]
        s = sft_rate(base, root, a.steps)
    ref = rows[0]
    print(f"\nGRPO, micro model, {a.prompts} prompts x {a.group} completions <= {a.max_len} tokens per step, "
          f"{a.steps - 1} timed steps, median of {a.rounds} rounds; "
          f"torch threads {threads}; load average at start {load:.1f}; torch {torch.__version__}")
    print(f"{'configuration':<16} {'steps/s':>9} {'gen tok/s*':>10} {'mean len':>9} {'vs TRL defaults':>16}")
    for r in rows:
        print(f"{r['config']:<16} {r['steps_per_s']:>9.3f} {r['gen_tokens_per_s']:>10.0f} {r['mean_completion_len']:>9.1f} "
              f"{r['steps_per_s'] / ref['steps_per_s']:>15.2f}x")
    print("* completion tokens generated per second of whole-step time (generation + scoring + backward)")
    print(f"\nSFT (CPU flags), batch 16: {s['steps_per_s']:.2f} steps/s, {s['tokens_per_s']:.0f} tokens/s")
    json.dump({"grpo": runs, "sft": s}, sys.stderr)


if __name__ == "__main__":
    main()
