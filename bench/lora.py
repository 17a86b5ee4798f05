"""LoRA vs full fine-tuning in GRPO: trainable parameters, seconds per step, peak RSS, and the
cost of keeping the rollout engine on base + adapter.

Each configuration runs in its own child process, so ``peak_rss_mb`` (``ru_maxrss``) is that
configuration's alone. The GRPO shape is ``--prompts`` x ``--group`` completions of at most
``--max-len`` tokens, rollouts through ponder's LocalEngine (the default). The first step
(warm-up) is excluded from ``s/step``.

Two ways to make the engine decode base + adapter, side by side per GRPO step:

* ``merge`` (what ponder does): after each optimizer step, ``refresh_weights`` re-reads the
  weights with ``W + scale·B A`` merged into the fused copies -- once per step, measured;
* ``fused delta`` (the alternative): keep the base copies and add ``(x Aᵀ) Bᵀ · scale`` for every
  adapted matrix in each decode step. Its cost is measured from those low-rank matmuls alone
  (B rows, every layer's adapted matrices) times the decode steps of one rollout, a lower bound
  (it leaves out the Python overhead of the extra ops).

    .venv/bin/python bench/lora.py                          # tiny micro model, full vs LoRA (~2 min)
    .venv/bin/python bench/lora.py --model runs/models/smollm2 --only lora --steps 3   # a real model
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(spec: dict) -> dict:
    import torch

    from ponder.train import grpo
    from ponder.train.common import peak_rss_mb

    timer: list[float] = []
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            timer.append(time.perf_counter() - self.t0)

    out = Path(spec["out"])
    cfg = grpo.GRPOConfig(model=spec["model"], task=spec["task"], out=str(out), steps=spec["steps"],
                          batch_size=spec["prompts"], num_generations=spec["group"],
                          max_completion_length=spec["max_len"], save_every=10_000, lora=spec["lora"],
                          threads=spec["threads"])
    trainer, rollout = grpo.build_trainer(cfg, out, callbacks=[Timer()])
    trainer.train()
    model = trainer.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    steps = timer[1:] or timer
    result = {"config": spec["name"], "trainable": trainable, "total": total,
              "s_per_step": sum(steps) / len(steps), "peak_rss_mb": peak_rss_mb(),
              "rollout_tokens_per_s": rollout.tokens / rollout.seconds if rollout.seconds else None}
    engine = rollout.engine
    t0 = time.perf_counter()
    for _ in range(5):
        engine.refresh_weights()
    result["refresh_ms"] = (time.perf_counter() - t0) / 5 * 1000
    if spec["lora"]:
        # the alternative: the low-rank delta applied in every decode step, B rows at a time
        rows = spec["prompts"] * spec["group"]
        pairs = [(m.lora_A["default"].weight.detach(), m.lora_B["default"].weight.detach(), m.scaling["default"])
                 for m in model.modules() if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})]
        xs = [torch.randn(rows, a.shape[1]) for a, _, _ in pairs]
        with torch.inference_mode():
            for _ in range(3):
                [((x @ a.t()) @ b.t()) * s for x, (a, b, s) in zip(xs, pairs)]
            reps = 50
            t0 = time.perf_counter()
            for _ in range(reps):
                [((x @ a.t()) @ b.t()) * s for x, (a, b, s) in zip(xs, pairs)]
            per_token = (time.perf_counter() - t0) / reps
        result["fused_delta_ms_per_step"] = per_token * spec["max_len"] * 1000
        result["adapted_matrices"] = len(pairs)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="", help="Checkpoint to train (default: a freshly built tiny micro model).")
    ap.add_argument("--task", default="addition:digits=3")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=48)
    ap.add_argument("--lora", default="default", help="The LoRA spec to compare with full fine-tuning.")
    ap.add_argument("--only", choices=("full", "lora"), default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if not model:
            from ponder.train import pretrain

            model = str(pretrain.run(pretrain.PretrainConfig(out=f"{tmp}/base", preset="micro", steps=1,
                                                             n_examples=256, batch_size=8)))
        results = []
        for name, lora in (("full", ""), ("lora", a.lora)):
            if a.only and a.only != name:
                continue
            spec = dict(name=name, model=model, task=a.task, out=f"{tmp}/{name}", steps=a.steps, prompts=a.prompts,
                        group=a.group, max_len=a.max_len, lora=lora, threads=a.threads)
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                  text=True, cwd=ROOT)
            if proc.returncode:
                sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"GRPO, {a.prompts}x{a.group} completions <= {a.max_len} tokens, {a.steps} steps, model {a.model or 'micro'}")
    print(f"{'config':<6} {'trainable':>12} {'total':>12} {'s/step':>8} {'peak RSS MiB':>13} {'rollout tok/s':>14}"
          f" {'merge ms/step':>14} {'fused delta ms/step':>20}")
    for r in results:
        fused = f"{r['fused_delta_ms_per_step']:.1f}" if "fused_delta_ms_per_step" in r else "-"
        merge = f"{r['refresh_ms']:.1f}"
        print(f"{r['config']:<6} {r['trainable']:>12,} {r['total']:>12,} {r['s_per_step']:>8.2f} {r['peak_rss_mb']:>13.0f}"
              f" {r['rollout_tokens_per_s'] or 0:>14.0f} {merge:>14} {fused:>20}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
