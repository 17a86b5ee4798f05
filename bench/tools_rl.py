"""GRPO with the python tool in the loop vs without, on a task where the tool helps.

Multiplication of two 3-digit numbers is hard for a 1M-parameter model that works it out digit
by digit, and trivial with a calculator. From one start checkpoint, two GRPO runs of the same
length and settings differ only in ``grpo.tools``: in one a fenced python block the model writes
runs in the sandbox and its output is inserted (masked out of the loss); in the other the same
block is just text, and whatever the model writes after it is its own guess.

1. ``start``: ``ponder train pretrain`` of a ``nano`` model on the task's train split, each
   problem written one of three ways: the bare answer, the worked long multiplication, or (share
   ``--tool-share`` of the solutions) a tool call in the ``tools`` strategy's format
   (``ponder.strategies.tools``: the fences, then the ``output`` block with the real product,
   then the answer). So the start model knows all three and picks one by its first tokens.
2. ``grpo-tools`` and ``grpo-plain``: GRPO from ``start``, same seed, steps, rewards and
   prompts, ``tools`` on and off; the two run in parallel, one torch thread each.
3. Held-out evaluation (``ponder eval``'s harness, the task's test split, first ``--limit``
   problems, greedy): every checkpoint once with ``--strategy tools`` (the tool runs at inference)
   which also records one plain sample per problem (no tool: a fenced block is plain text).
   95% Wilson intervals from the harness.

Writes ``<work>/tools_rl.json`` (every number) and ``<work>/tools_rl.png`` (reward, sampled
accuracy and tool use per GRPO step, both runs). Stages already done in ``--work`` are reused.

    .venv/bin/python bench/tools_rl.py --work /tmp/ponder-tools-rl     # 9-14 min on a shared 2-core CPU
    .venv/bin/python bench/tools_rl.py --quick                          # a smoke test of the plumbing
    .venv/bin/python bench/tools_rl.py --digits min_digits=2,max_digits=3  # mixed sizes, broken down by size
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

TASK = "multiplication"
CORPUS = "multiplication-with-tool-corpus"


def tool_solution(a: int, b: int) -> str:
    """The reasoning of a tool-using answer: the python block and the output the sandbox prints."""
    from ponder.strategies.tools import OPEN_FENCE, output_block

    return f"{OPEN_FENCE}print({a} * {b})\n{output_block(str(a * b))}"


def corpus_task(tool_share: float):
    """The base's corpus task: multiplication whose worked solutions are, for ``tool_share`` of the
    problems (by a hash of the id), a tool call instead of long multiplication."""
    import zlib

    from ponder.format import format_completion
    from ponder.tasks.synthetic import MultiplicationTask

    class ToolCorpus(MultiplicationTask):
        name = CORPUS

        def reference_completion(self, example, template="think"):
            if zlib.crc32(example["id"].encode()) % 1000 < tool_share * 1000:
                meta = example["meta"]
                return format_completion(tool_solution(meta["a"], meta["b"]), example["gold"], template)
            return super().reference_completion(example, template)

    return ToolCorpus


def base(work: Path, a) -> Path:
    """The start checkpoint: ``ponder train pretrain`` on the corpus task (see the module docstring)."""
    from ponder.tasks import TASKS
    from ponder.train import pretrain

    if CORPUS not in TASKS:
        TASKS.register(CORPUS, corpus_task(a.tool_share))
    return pretrain.run(pretrain.PretrainConfig(
        out=str(work / "base"), task=f"{CORPUS}:{a.digits}", preset="nano", steps=a.base_steps, batch_size=32,
        seq_len=160, n_examples=4000, solution_share=a.solution_share, warmup_steps=20, save_every=10_000,
        threads=a.threads, seed=a.seed))


def grpo_run(start_dir: str, out: str, tools: bool, a: dict) -> str:
    """One GRPO run (in its own process: one torch thread each, the two side by side)."""
    from ponder.train import grpo

    cfg = grpo.GRPOConfig(model=start_dir, task=f"{TASK}:{a['digits']}", out=out, steps=a["steps"], batch_size=a["batch_size"],
                          num_generations=a["group"], max_completion_length=a["max_len"], lr=a["lr"],
                          rewards="accuracy=1", tools=tools, max_tool_calls=1, save_every=10_000,
                          threads=a["threads"], seed=a["seed"], n_prompts=2000, temperature=1.0)
    return str(grpo.run(cfg))


def evaluate(model: Path, out: Path, a) -> dict:
    """Greedy held-out pass@1 without the tool and with it (the ``tools`` strategy), 95% intervals."""
    from ponder.evaluate.harness import EvalConfig, run_eval

    cfg = EvalConfig(model=str(model), task=f"{TASK}:{a.digits}", split="test", n=1, strategy="tools", temperature=0.0, top_p=1.0,
                     max_tokens=a.max_len, limit=a.limit, out=str(out), resume=out.is_dir(), seed=a.seed,
                     batch_size=50)
    from ponder.evaluate.metrics import wilson

    m = run_eval(cfg, progress=False).metrics
    strategy = [json.loads(x) for x in (out / "strategy.jsonl").read_text().splitlines() if x.strip()]
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines() if x.strip()]
    called = sum("```output" in r["text"] for r in strategy)
    by: dict[str, dict] = {}  # per operand size ("3x2": the larger and the smaller operand's digits)
    for kind, recs in (("plain", samples), ("tools", strategy)):
        groups: dict[str, list[bool]] = {}
        for r in recs:
            sizes = sorted((len(x) for x in r["id"].split("/")[-1].split("*")), reverse=True)
            groups.setdefault("x".join(map(str, sizes)), []).append(bool(r["correct"]))
        for size, oks in sorted(groups.items()):
            by.setdefault(size, {})[kind] = dict(zip(("mean", "low", "high"), wilson(sum(oks), len(oks)))) | {
                "n": len(oks)}
    return {"plain": m["pass@1"], "tools": m["strategy"]["accuracy"], "tool_use": called / len(strategy),
            "problems": len(strategy), "by_size": by}


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("reward", "reward"), ("accuracy", "sampled accuracy"), ("tool_use_share", "rollouts with a tool call")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, title) in zip(axes, keys):
        for name, rows in curves.items():
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=name)
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ci(d: dict) -> str:
    return f"{100 * d['mean']:.1f}% [{100 * d['low']:.1f}, {100 * d['high']:.1f}]"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/ponder-tools-rl"))
    p.add_argument("--digits", default="digits=3", help="operand sizes, as multiplication's options")
    p.add_argument("--base-steps", type=int, default=800)
    p.add_argument("--solution-share", type=float, default=0.8, help="corpus share with a worked or tool solution")
    p.add_argument("--tool-share", type=float, default=0.4, help="share of those solutions that call the tool")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny settings: checks the plumbing, the numbers mean nothing")
    a = p.parse_args(argv)
    if a.quick:
        a.base_steps, a.steps, a.batch_size, a.group, a.limit = 20, 2, 2, 4, 20
    a.work.mkdir(parents=True, exist_ok=True)
    from ponder.train import common

    common.set_threads(a.threads)
    times: dict[str, float] = {}
    t = time.perf_counter()
    start_dir = base(a.work, a)
    times["start (pretrain)"] = time.perf_counter() - t
    t = time.perf_counter()
    opts = {k: getattr(a, k) for k in ("digits", "steps", "batch_size", "group", "max_len", "lr", "threads", "seed")}
    runs = {"tools": a.work / "grpo-tools", "plain": a.work / "grpo-plain"}
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        futs = {k: pool.submit(grpo_run, str(start_dir), str(v), k == "tools", opts) for k, v in runs.items()}
        finals = {k: Path(f.result()) for k, f in futs.items()}
    times["grpo (both, in parallel)"] = time.perf_counter() - t
    t = time.perf_counter()
    evals = {"start": evaluate(start_dir, a.work / "eval-start", a)}
    for k in runs:
        evals[f"grpo-{k}"] = evaluate(finals[k], a.work / f"eval-grpo-{k}", a)
    times["eval"] = time.perf_counter() - t
    curves = {f"grpo {'with' if k == 'tools' else 'without'} tools": read_metrics(v) for k, v in runs.items()}
    plot(curves, a.work / "tools_rl.png")
    (a.work / "tools_rl.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "evals": evals,
                                                      "seconds": times, "curves": curves}, indent=1))
    print(f"held-out {TASK}:{a.digits}, first {a.limit} test problems, greedy, 95% Wilson intervals")
    print("| checkpoint | pass@1 without tool | pass@1 with tool (`tools` strategy) | answers that call the tool |")
    print("|---|---|---|---|")
    for name, e in evals.items():
        print(f"| {name} | {_ci(e['plain'])} | {_ci(e['tools'])} | {100 * e['tool_use']:.1f}% |")
    if any(len(e["by_size"]) > 1 for e in evals.values()):
        print("| checkpoint | operand digits | problems | pass@1 without tool | pass@1 with tool |\n|---|---|---|---|---|")
        for name, e in evals.items():
            for size, d in e["by_size"].items():
                print(f"| {name} | {size} | {d['tools']['n']} | {_ci(d['plain'])} | {_ci(d['tools'])} |")
    for name, rows in curves.items():
        first, last = rows[:3], rows[-3:]

        def mean(rs, k):
            vals = [r[k] for r in rs if r.get(k) is not None]
            return sum(vals) / len(vals) if vals else float("nan")
        print(f"{name}: sampled accuracy {mean(first, 'accuracy'):.2f} -> {mean(last, 'accuracy'):.2f}, tool use "
              f"{mean(first, 'tool_use_share'):.2f} -> {mean(last, 'tool_use_share'):.2f} (first vs last 3 steps)")
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) + f"; total {sum(times.values()):.0f}")
    print(f"plot: {a.work / 'tools_rl.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
