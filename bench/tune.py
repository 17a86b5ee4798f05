"""Benchmark: ``ponder tune`` on a tiny addition model -- does the tuned ``medium`` effort match
majority@16's accuracy (within 1 point) with <= 40% of its tokens, on the held-out split?

The model: a tiny Llama (hidden 64, 2 layers, ~127k parameters) trained here from scratch for
``--steps`` SFT steps on the task's reference solutions (column addition written out in
``<think>``; a ``--no-think`` share answers at once), so that one sample is right only part of
the time; or any local checkpoint (``--model PATH``). The trained model is saved to ``--save`` so
a rerun reuses it (``--model /tmp/ponder-bench-tune``).

Measurement, in one run: ``run_tune`` (``ponder.evaluate.tune``) on ``--problems`` test problems
split by id hash into dev and held-out halves, sweeping every strategy x ``--budgets`` x n on
dev, then the chosen low/medium/high and majority@16 on held-out; the script prints the tuned
``medium`` beside majority@16 (accuracy, Wilson 95% interval, tokens per problem) and whether
the target is met. Everything ``ponder tune`` writes (report.md, tune.json, pareto.png,
serve.yaml) goes to ``--out``.

    .venv/bin/python bench/tune.py                      # trains (~3 min here), then tunes
    .venv/bin/python bench/tune.py --model /tmp/ponder-bench-tune
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strategies import train  # noqa: E402  (bench/strategies.py: SFT of a tiny model on reference completions)

from ponder.tasks import get_task  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a local checkpoint (default: train one here and save it to --save)")
    ap.add_argument("--save", default="/tmp/ponder-bench-tune")
    ap.add_argument("--task", default="addition:min_digits=2,max_digits=3")
    ap.add_argument("--steps", type=int, default=700, help="SFT steps when training")
    ap.add_argument("--no-think", type=float, default=0.25, help="share of training examples without reasoning")
    ap.add_argument("--problems", type=int, default=200, help="test problems, split by id hash into dev / held-out")
    ap.add_argument("--ns", default="2,4,8,16")
    ap.add_argument("--budgets", default="48,96", help="thinking budgets to sweep ('' for none)")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/ponder-bench-tune-run")
    args = ap.parse_args()
    from ponder.evaluate.tune import TuneConfig, run_tune
    from ponder.generate.backends import load_backend

    torch.manual_seed(args.seed)
    path = Path(args.model or args.save)
    if args.model is None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # fastest for a model this small on a shared machine
        print(f"training on {args.task} for {args.steps} steps -> {path}")
        secs = train(get_task(args.task), "tiny", args.steps, 32, 3e-3, args.seed, path, args.no_think)
        print(f"  trained in {secs:.0f}s")
        torch.set_num_threads(threads)
    cfg = TuneConfig(model=str(path), task=args.task, limit=args.problems, ns=[int(k) for k in args.ns.split(",")],
                     budgets=[int(b) for b in args.budgets.split(",") if b.strip()], temperature=args.temperature,
                     max_tokens=args.max_tokens, seed=args.seed, out=args.out, thinking="on")
    t0 = time.time()
    # the model was trained on prompts that pre-fill <think> (its tokenizer splits the tag)
    data = run_tune(cfg, backend=load_backend(str(path), thinking="on"))
    med, ref = data["efforts"]["medium"], data["reference_held_out"]
    print(f"tuned in {time.time() - t0:.0f}s; dev {len(data['dev_ids'])} problems, held-out {len(data['held_out_ids'])}")
    print(f"front: {', '.join(data['front'])}")
    for lvl, e in data["efforts"].items():
        h = e["held_out"]
        print(f"  {lvl:>6}: {e['point']:<28} dev {e['dev']['accuracy']:.3f} ({e['dev']['tokens']:.1f} tok)  "
              f"held-out {h['accuracy']:.3f} [{h['ci_low']:.3f}, {h['ci_high']:.3f}] {h['tokens']:.1f} tok")
    print(f"  {data['reference']} (reference) held-out {ref['accuracy']:.3f} [{ref['ci_low']:.3f}, "
          f"{ref['ci_high']:.3f}] {ref['tokens']:.1f} tok")
    gap = 100 * (ref["accuracy"] - med["held_out"]["accuracy"])
    share = med["held_out"]["tokens"] / ref["tokens"]
    ok = gap <= 1.0 and share <= 0.40
    print(f"target (held-out medium within 1 point of {data['reference']} with <= 40% of its tokens): "
          f"{'MET' if ok else 'MISSED'} -- gap {gap:+.1f} points, {100 * share:.0f}% of the tokens")
    print(f"report: {Path(args.out) / 'report.md'}")


if __name__ == "__main__":
    main()
