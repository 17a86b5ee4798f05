"""Where a GRPO step's memory goes: RSS before, peak during and after each phase of the first steps.

Runs one GRPO stage in this process and wraps the rollout, each micro-batch's forward + loss and
its backward. A phase's peak is the process's high-water mark from the phase's start: Linux
resets it through ``/proc/self/clear_refs`` (so ``ru_maxrss`` here is no longer the whole run's).
The defaults are recipes/smollm2-r1-zero.yaml's GRPO step (LoRA ``default``, 4 prompts x 4
completions of at most 96 tokens, its system prompt):

    .venv/bin/python bench/grpo_memory.py --model runs/models/smollm2 --micro-batch-size 16   # one forward
    .venv/bin/python bench/grpo_memory.py --model runs/models/smollm2                           # auto
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SYSTEM = ("You are a helpful assistant. You first think about the reasoning process step by step and then give the "
          "user the answer. The reasoning is enclosed within <think> </think> tags and the final answer, a single "
          "number, follows it: <think> reasoning here </think> answer")


def _mib(key: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"no {key} in /proc/self/status (Linux only)")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _wrap(obj, name: str, label: str, rows: list) -> None:
    inner = getattr(obj, name)

    def timed(*a, **k):
        before, t0 = _mib("VmRSS"), time.perf_counter()
        _reset_peak()
        out = inner(*a, **k)
        rows.append((label, before, _mib("VmHWM"), _mib("VmRSS"), time.perf_counter() - t0))
        return out

    setattr(obj, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="runs/models/smollm2")
    ap.add_argument("--micro-batch-size", default="auto")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--lora", default="default")
    args = ap.parse_args()

    import torch

    from ponder.train import grpo

    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp(prefix="grpo-memory-"))
    cfg = grpo.GRPOConfig(model=args.model, lora=args.lora, lr=2e-4, thinking="on", system=SYSTEM,
                          rewards="accuracy=1,format=0.5", steps=args.steps, batch_size=4, num_generations=4,
                          max_completion_length=96, task="addition:digits=2", out=str(out), threads=1,
                          save_every=10_000, micro_batch_size=args.micro_batch_size)
    loaded = _mib("VmRSS")
    trainer, rollout = grpo.build_trainer(cfg, out)
    a = trainer.args
    print(f"RSS {loaded} MiB after imports, {_mib('VmRSS')} MiB with the trainer built; "
          f"micro-batch {a.per_device_train_batch_size} x {a.gradient_accumulation_steps} accumulation steps")
    rows: list = []
    _wrap(rollout, "_sample", "rollout", rows)
    _wrap(trainer, "compute_loss", "forward+loss", rows)
    _wrap(trainer.accelerator, "backward", "backward", rows)
    t0 = time.perf_counter()
    trainer.train()
    print(f"{args.steps} steps in {time.perf_counter() - t0:.1f} s")
    print("| phase | RSS before, MiB | peak, MiB | RSS after, MiB | s |\n|---|---|---|---|---|")
    for label, before, peak, after, s in rows:
        print(f"| {label} | {before} | {peak} | {after} | {s:.2f} |")
    print(f"highest phase peak: {max(r[2] for r in rows)} MiB")


if __name__ == "__main__":
    main()
