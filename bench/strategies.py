"""Benchmark: accuracy and tokens of single / majority@k / adaptive_majority / best_of_n / weighted
majority on a task where a tiny model is imperfect; baseline: majority@16.

The model: by default a tiny Llama (``--preset tiny``: hidden 64, 2 layers, ~127k parameters)
trained here from scratch for ``--steps`` SFT steps on the ``addition`` task's reference
solutions (column addition written out in ``<think>``; a ``--no-think`` share answer at once),
so that it is right often but not always (~70% of samples at temperature 1); or any local
checkpoint (``--model PATH``). The trained model is saved to ``--save`` so a rerun can reuse it.

Measurement, in one run on ``--problems`` test problems, sampling at ``--temperature``:

1. **majority@16, live**: ``run_batch("majority", engine, n=16)``, timed. Its 16 samples per
   problem are kept as a pool.
2. **Paired comparison on that pool**: single, majority@4/8/16, best_of_n@16 (mean log-prob),
   weighted_majority@16 and adaptive_majority (n=16; ``--batch``/``--confidence``, default 2 /
   0.9, plus rows for the other settings of 2-4 / 0.9-0.95) run through the real
   strategy code on a replay backend that hands out the pool's samples in order, so every
   strategy sees the *same* samples and differences are the strategies', not sampling noise.
   Tokens are the tokens of the samples each strategy consumed.
3. **adaptive_majority, live**: on the engine itself (new samples, batched over undecided
   problems), timed — its accuracy differs from the paired row by sampling noise only.

With ``--others``: beam, mcts and refine (oracle feedback from the gold answer) live, for
reference. With ``--router``: ``router_report`` under greedy decoding — never-think (thinking budget 0),
always-think, and the router (length difficulty) — accuracy and tokens per problem.

Target: adaptive_majority within 1 point of majority@16's accuracy with <= 50% of
its tokens.

    .venv/bin/python bench/strategies.py --router             # train (~4 min here), then measure
    .venv/bin/python bench/strategies.py --model /tmp/ponder-bench-strategies
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.evaluate.metrics import mean_ci  # noqa: E402
from ponder.evaluate.tune import Replay  # noqa: E402 - replays pre-drawn samples, as the tuner does
from ponder.format import decide_thinking, render  # noqa: E402
from ponder.generate import DEFAULT_CLOSE_TEXT, LocalEngine, SamplingParams  # noqa: E402
from ponder.models.build import build_model, load, save  # noqa: E402
from ponder.models.tokenizer import train_tokenizer  # noqa: E402
from ponder.strategies import run_batch  # noqa: E402
from ponder.strategies.router import router_report  # noqa: E402
from ponder.tasks import get_task  # noqa: E402

TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 192}


def prompt_of(question: str) -> str:
    # ponder's plain layout with <think> pre-filled: short, no system turn
    return render(question, None, decide_thinking("on")).text


def train(task, preset: str, steps: int, batch: int, lr: float, seed: int, out: Path, no_think: float = 0.0):
    """SFT from scratch on reference completions (loss on completion tokens only).

    A ``no_think`` share of the examples answer at once ("\n</think>\n" then the answer, what
    a zero thinking budget forces), so the router's fast path has something to run.
    """
    exs = list(task.examples("train"))
    rng = random.Random(seed)
    rng.shuffle(exs)
    pairs = [(prompt_of(e["prompt"]), f"{DEFAULT_CLOSE_TEXT}{e['gold']}" if rng.random() < no_think
              else task.reference_completion(e).removeprefix("<think>")) for e in exs]
    tok = train_tokenizer([p + c for p, c in pairs[:3000]], vocab_size=512)
    model = build_model(TINY if preset == "tiny" else preset, tok, seed=seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    enc = [(tok(p, add_special_tokens=False)["input_ids"], tok(c, add_special_tokens=False)["input_ids"]
            + [tok.eos_token_id]) for p, c in pairs]
    torch.manual_seed(seed)
    start, loss_avg = time.time(), None
    for step in range(steps):
        rows = [enc[(step * batch + i) % len(enc)] for i in range(batch)]
        width = max(len(p) + len(c) for p, c in rows)
        ids = torch.full((batch, width), tok.pad_token_id)
        labels = torch.full((batch, width), -100)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, (p, c) in enumerate(rows):
            ids[i, : len(p) + len(c)] = torch.tensor(p + c)
            labels[i, len(p): len(p) + len(c)] = torch.tensor(c)
            mask[i, : len(p) + len(c)] = 1
        for g in opt.param_groups:  # linear warm-up, cosine decay
            g["lr"] = lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lv = float(loss.detach())
        loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
        if (step + 1) % 50 == 0 or step + 1 == steps:
            print(f"  step {step + 1}/{steps}  loss {loss_avg:.3f}  ({time.time() - start:.0f}s)", flush=True)
    model.eval()
    save(model, tok, out)
    return time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a local checkpoint to evaluate (default: train one here)")
    ap.add_argument("--save", default="/tmp/ponder-bench-strategies", help="where the trained model is written")
    ap.add_argument("--task", default="addition:min_digits=2,max_digits=3", help="task spec")
    ap.add_argument("--preset", default="tiny", help="'tiny' (hidden 64, 2 layers, ~127k parameters) or a "
                    "ponder.models preset (nano, micro, mini)")
    ap.add_argument("--steps", type=int, default=1500, help="SFT steps when training")
    ap.add_argument("--train-threads", type=int, default=1,
                    help="torch threads for training (1 is fastest on a shared 2-core machine)")
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--no-think", type=float, default=0.25, help="share of training examples without reasoning")
    ap.add_argument("--router", action="store_true", help="also run router_report (greedy) on the problems")
    ap.add_argument("--others", action="store_true", help="also run beam, mcts and refine live")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2, help="adaptive_majority samples per round")
    ap.add_argument("--confidence", type=float, default=0.9,
                    help="adaptive_majority stopping confidence (the library default, the paper's 0.95, is a row too)")
    ap.add_argument("--temperature", type=float, default=1.0)  # the tiny model is right ~2/3 of the time here
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    task = get_task(args.task)
    path = Path(args.model or args.save)
    if args.model is None:
        print(f"training a {args.preset} model on {args.task} for {args.steps} steps -> {path}")
        threads = torch.get_num_threads()
        torch.set_num_threads(args.train_threads)
        secs = train(task, args.preset, args.steps, args.train_batch, args.lr, args.seed, path, args.no_think)
        torch.set_num_threads(threads)
        print(f"  trained in {secs:.0f}s")
    model, tok = load(path)
    engine = LocalEngine(model, tok)
    exs = list(task.examples("test"))[: args.problems]
    prompts = [prompt_of(e["prompt"]) for e in exs]
    sp = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)

    def accuracy(results) -> tuple[float, float, float]:
        # the final text, as the task reads it (the prompts pre-fill <think>)
        ok = [float(task.score(r.text if "<think>" in r.text else "<think>" + r.text, ex).correct)
              for r, ex in zip(results, exs)]
        return mean_ci(ok)

    rows = []
    t0 = time.time()
    maj16 = run_batch("majority", engine, prompts, n=args.n, sampling=sp, task=task, examples=exs, progress=True)
    t_maj = time.time() - t0
    pool = {p: r.samples for p, r in zip(prompts, maj16)}
    per_sample = [task.score(c, ex).correct for r, ex in zip(maj16, exs) for c in r.samples]
    print(f"pass@1 (mean over {len(per_sample)} samples): {sum(per_sample) / len(per_sample):.3f}")

    def paired(name, label, **kw):
        rs = run_batch(name, Replay(engine, pool), prompts, sampling=sp, task=task, examples=exs, **kw)
        rows.append((label, accuracy(rs), sum(r.tokens for r in rs) / len(rs), None, rs))

    paired("single", "single (paired)")
    for k in (4, 8):
        paired("majority", f"majority@{k} (paired)", n=k)
    rows.append((f"majority@{args.n} (live, baseline)", accuracy(maj16), sum(r.tokens for r in maj16) / len(maj16),
                 t_maj, maj16))
    paired("best_of_n", f"best_of_n@{args.n} logprob (paired)", n=args.n)
    paired("weighted_majority", f"weighted_majority@{args.n} (paired)", n=args.n)
    for b, conf in [(4, 0.95), (2, 0.95), (4, 0.9), (2, 0.9)]:  # other stopping-rule settings, same samples
        if (b, conf) != (args.batch, args.confidence):
            paired("adaptive_majority", f"adaptive b={b} conf={conf} (paired)", n=args.n, batch=b, confidence=conf)
    paired("adaptive_majority", f"adaptive_majority b={args.batch} conf={args.confidence} (paired)", n=args.n,
           batch=args.batch, confidence=args.confidence)
    t0 = time.time()
    live = run_batch("adaptive_majority", engine, prompts, n=args.n, sampling=sp, task=task, examples=exs,
                     batch=args.batch, confidence=args.confidence, progress=True, chunk=len(prompts))
    rows.append((f"adaptive_majority b={args.batch} conf={args.confidence} (live)", accuracy(live), sum(r.tokens for r in live) / len(live),
                 time.time() - t0, live))

    others = []
    if args.others:  # step-level search and verifier feedback, live on the engine
        for name, label, kw in [("beam", "beam width 2, expand 2, logprob", {"n": 2, "expand": 2}),
                                ("mcts", "mcts 8 iterations, expand 2", {"n": 8, "expand": 2}),
                                ("refine", "refine 2 rounds (oracle feedback)", {"rounds": 2})]:
            t0 = time.time()
            rs = run_batch(name, engine, prompts, sampling=sp, task=task, examples=exs, progress=True, **kw)
            others.append((label + " (live)", accuracy(rs), sum(r.tokens for r in rs) / len(rs), time.time() - t0, rs))
    base_acc, base_tok = rows[3][1][0], rows[3][2]
    print(f"\n{len(exs)} problems of {args.task}, temperature {args.temperature}, model {path}")
    print(f"{'strategy':40} {'accuracy':>9} {'95% CI':>15} {'tokens/problem':>15} {'vs maj@16':>10} {'wall s':>7}")
    for label, (acc, lo, hi), toks, wall, _ in rows + others:
        w = f"{wall:7.1f}" if wall is not None else "      -"
        print(f"{label:40} {acc:9.3f} {f'[{lo:.3f}, {hi:.3f}]':>15} {toks:15.1f} {toks / base_tok:9.2f}x {w}")
    ad = rows[-2]
    used = sum(r.trace["samples_used"] for r in ad[4]) / len(exs)
    stops = {}
    for r in ad[4]:
        stops[r.trace["stopped"]] = stops.get(r.trace["stopped"], 0) + 1
    print(f"\nadaptive (paired): {used:.1f} samples/problem on average; stopped: {stops}")
    gap = (base_acc - ad[1][0]) * 100
    share = ad[2] / base_tok
    print(f"target: accuracy within 1 point of majority@{args.n} -> gap {gap:+.1f} points "
          f"({'met' if gap <= 1.0 else 'MISSED'}); tokens <= 50% -> {share:.0%} ({'met' if share <= 0.5 else 'MISSED'})")
    if args.router:
        greedy = SamplingParams(temperature=0, max_tokens=args.max_tokens)
        rep = router_report(engine, task, exs, prompts, sampling=greedy, budget=None, fast_budget=0,
                            difficulty="length", progress=True)
        print("\nrouter, greedy; difficulty = digits/3 + words/25 of the question (\"length\")")
        print(f"{'path':28} {'accuracy':>9} {'tokens/problem':>15} {'vs always-think':>16} {'think share':>12}")
        always = rep["always_think"]["mean_tokens"]
        rows_r = [("never_think", rep["never_think"]["accuracy"], rep["never_think"]["mean_tokens"], 0.0)]
        for th in (1.5, 2.0, 2.5):  # the same two runs, re-routed at other thresholds
            pick = ["think" if e["difficulty"] >= th else "fast" for e in rep["examples"]]
            acc = sum(e[f"{p}_correct"] for e, p in zip(rep["examples"], pick)) / len(pick)
            tok_ = sum(e[f"{p}_tokens"] for e, p in zip(rep["examples"], pick)) / len(pick)
            rows_r.append((f"router, threshold {th}", acc, tok_, pick.count("think") / len(pick)))
        rows_r.append(("always_think", rep["always_think"]["accuracy"], always, 1.0))
        for name, acc, tok_, share in rows_r:
            print(f"{name:28} {acc:9.3f} {tok_:15.1f} {tok_ / always:15.2f}x {share:12.0%}")


if __name__ == "__main__":
    main()
