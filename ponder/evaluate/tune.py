"""``ponder tune``: find the compute-optimal strategies for a model on a task and map effort levels to them.

1. **Split.** ``split="dev"``: the task's test problems (the first ``limit``) are divided by a
   hash of their id -- ``blake2b(id) < dev_frac`` goes to dev, the rest is held out -- so the
   split is the same on every run and machine and does not depend on the order or on ``limit``.
   ``split="A:B"`` uses the task's own splits instead (tune on A, hold out B).
2. **Sweep on dev.** For each thinking budget, ``max(ns)`` samples per dev problem are drawn
   once (``sample_and_score``); every strategy x n then runs through its real code on a replay
   backend that hands out those samples in order. What is shared: all strategies and all n of
   one budget see the *same* samples (majority@4 uses the first 4 of majority@16's 16,
   adaptive_majority and deepconf stop somewhere in the same sequence), so the sweep costs one
   sampling pass per budget and the differences between points are the strategies', not
   sampling noise. Tokens are those of the samples a strategy consumed (deepconf's early-stopped
   traces count up to their stop). ``single`` is the first sample.
3. **Pareto front** of (mean tokens per problem, accuracy): a point is on it when no other point
   is at least as accurate with no more tokens (and better in one).
4. **Effort rule** (``choose_efforts``): high = the most accurate point (ties: the cheapest);
   medium = the cheapest point within ``medium_tolerance`` of the reference majority@max(n)
   (the most accurate of those over budgets); low = the cheapest point within ``low_tolerance``
   of high. Every choice is a front point, and low <= medium <= high in tokens.
5. **Held-out.** New samples on the held-out problems; the chosen points and the reference run
   there, so the report gives dev and held-out numbers side by side.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ponder.config import ConfigError, SamplingOptions, check_choice, check_given, check_range, option, shared
from ponder.evaluate.metrics import wilson
from ponder.generate.scoring import sample_and_score
from ponder.generate.types import Backend, Budget, Capabilities, SamplingParams
from ponder.io import write_json_atomic

#: the strategies a sweep knows how to replay (``single`` takes n = 1 only)
SWEEPABLE = ("single", "majority", "weighted_majority", "adaptive_majority", "best_of_n", "deepconf")
LEVELS = ("low", "medium", "high")


@dataclass
class TuneConfig(SamplingOptions):
    """Options of ``ponder tune``."""

    model: str = shared("model", "")
    task: str = shared("task", "")
    split: str = option("dev", "dev: split the test problems by id hash into dev (tuned on) and held-out; or A:B to tune on the task's split A and hold out split B.")
    dev_frac: float = option(0.5, "With split dev: the share of problems (by id hash) that go to dev.")
    limit: int | None = shared("limit", None)
    strategies: list[str] = option(list(SWEEPABLE), "Strategies to sweep (single, majority, weighted_majority, adaptive_majority, best_of_n, deepconf).")
    ns: list[int] = option([2, 4, 8, 16], "Sample counts to sweep for every strategy but single; the largest is drawn once per problem and budget.")
    budgets: list[int] = option([], "Thinking budgets to sweep (empty: no budget, the model thinks freely).")
    thinking: str = shared("thinking", "auto")
    temperature: float = shared("temperature", 1.0)
    top_p: float = shared("top_p", 1.0)
    batch_size: int = option(16, "Problems per generate call for a local model.")
    low_tolerance: float = option(0.05, "low = the cheapest front point within this accuracy of the best.")
    medium_tolerance: float = option(0.01, "medium = the cheapest front point within this accuracy of majority@max(ns).")
    out: str = option("runs/tune", "Output directory: report.md, tune.json, pareto.png, serve.yaml.")

    def __post_init__(self) -> None:
        check_given(self, ("model", "task"))
        if self.split != "dev" and (self.split.count(":") != 1 or "" in self.split.split(":")):
            raise ConfigError(f"split must be 'dev' or 'A:B' (tune on split A, hold out B), got {self.split!r}")
        check_choice(self, "thinking", ("auto", "on", "off"))
        if not 0 < self.dev_frac < 1:
            raise ConfigError(f"dev_frac must be in (0, 1), got {self.dev_frac}")
        if self.limit is not None and self.limit < 2:
            raise ConfigError(f"limit must be >= 2 (dev and held-out each need a problem), got {self.limit}")
        bad = [s for s in self.strategies if s not in SWEEPABLE]
        if bad or not self.strategies:
            raise ConfigError(f"strategies: {', '.join(bad) or '(none)'} cannot be swept; choose from {', '.join(SWEEPABLE)}")
        if not self.ns or any(not isinstance(k, int) or k < 1 for k in self.ns):
            raise ConfigError(f"ns must be ints >= 1, got {self.ns}")
        if any(not isinstance(b, int) or b < 0 for b in self.budgets) or len(set(self.budgets)) != len(self.budgets):
            raise ConfigError(f"budgets must be distinct ints >= 0, got {self.budgets}")
        check_range(self, ("low_tolerance", "medium_tolerance"), 0, 1)
        if self.max_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_tokens and batch_size must be >= 1")
        self.ns = sorted(set(self.ns))
        SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)


# ---------------------------------------------------------------------------- split


def dev_share(example_id: str) -> float:
    """Where an id falls in [0, 1): the first 8 bytes of its blake2b hash."""
    h = hashlib.blake2b(str(example_id).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def split_problems(task, split: str = "dev", dev_frac: float = 0.5, limit: int | None = None
                   ) -> tuple[list[dict], list[dict]]:
    """(dev, held-out) problems (module docstring, step 1); an empty side is an error."""
    if split == "dev":
        exs = list(task.examples("test"))[:limit]
        dev = [e for e in exs if dev_share(e["id"]) < dev_frac]
        held = [e for e in exs if dev_share(e["id"]) >= dev_frac]
    else:
        a, b = split.split(":")
        dev, held = list(task.examples(a))[:limit], list(task.examples(b))[:limit]
        shared = {e["id"] for e in dev} & {e["id"] for e in held}
        if shared:
            raise ConfigError(f"splits {a} and {b} share {len(shared)} problem ids (e.g. {sorted(shared)[0]!r})")
    if not dev or not held:
        raise ConfigError(f"the {split} split left {len(dev)} dev and {len(held)} held-out problems; both need one "
                          "(raise --limit or change --dev-frac)")
    return dev, held


# ---------------------------------------------------------------------------- pareto front and efforts


def pareto_front(points: Sequence[dict]) -> list[int]:
    """Indices of the points no other point dominates (``tokens`` <= and ``accuracy`` >=, one of
    them strictly), cheapest first; of identical points only the first is kept."""
    order = sorted(range(len(points)), key=lambda i: (points[i]["tokens"], -points[i]["accuracy"], i))
    front, best = [], -math.inf
    for i in order:
        if points[i]["accuracy"] > best:
            front.append(i)
            best = points[i]["accuracy"]
    return front


def choose_efforts(points: Sequence[dict], reference: int | None, low_tolerance: float = 0.05,
                   medium_tolerance: float = 0.01) -> dict[str, int]:
    """{level: point index} by the rule of the module docstring (step 4). ``reference``: the
    index of majority@max(n) (None: medium falls back to high's accuracy)."""
    front = pareto_front(points)
    acc = lambda i: points[i]["accuracy"]
    high = max(front, key=lambda i: (acc(i), -points[i]["tokens"]))
    target = acc(reference) if reference is not None else acc(high)
    medium = next(i for i in front if acc(i) >= target - medium_tolerance - 1e-12)
    low = next(i for i in front if acc(i) >= acc(high) - low_tolerance - 1e-12)
    if points[low]["tokens"] > points[medium]["tokens"]:
        low = medium
    return {"low": low, "medium": medium, "high": high}


def serve_efforts(points: Sequence[dict], chosen: dict[str, int]) -> dict[str, dict]:
    """The ``efforts`` mapping of ``ponder serve``'s config for the chosen points."""
    return {lvl: {"strategy": points[i]["strategy"], "n": points[i]["n"], "thinking_budget": points[i]["budget"]}
            for lvl, i in chosen.items()}


# ---------------------------------------------------------------------------- sampling and replay


class Replay:
    """A backend that hands out pre-drawn completions in order, per prompt (``reset`` rewinds).
    It decodes with the real backend's tokenizer, so deepconf can cut a trace as an early stop
    would; it has no ``stop_hook`` (nothing is generated)."""

    def __init__(self, backend: Backend, pools: dict[Any, list]):
        self.pools, self.used = pools, {p: 0 for p in pools}
        self.capabilities = replace(backend.capabilities, stop_hook=False) if isinstance(
            getattr(backend, "capabilities", None), Capabilities) else Capabilities(
            local=True, token_level=False, streaming=False, concurrent=False, logprobs=True)
        self.thinking, self.tokenizer = backend.thinking, backend.tokenizer
        self.effort_table, self.name = backend.effort_table, backend.name
        self.max_positions, self.eos_ids = backend.max_positions, backend.eos_ids
        self._decode = getattr(backend, "decode", None) if backend.tokenizer is not None else None

    def decode(self, ids):
        if self._decode is None:
            raise AttributeError("decode")
        return self._decode(ids)

    def reset(self) -> None:
        self.used = {p: 0 for p in self.pools}

    def generate(self, prompts, n=1, sampling=None, budget=None):
        out = []
        for p in prompts:
            key = _key(p)
            i = self.used[key]
            if i + n > len(self.pools[key]):
                raise ConfigError(f"replay pool exhausted: {i + n} samples asked of {len(self.pools[key])}")
            out.append(self.pools[key][i:i + n])
            self.used[key] = i + n
        return out


def _key(payload) -> Any:
    return payload if isinstance(payload, str) else repr(payload)


def draw(backend: Backend, task, problems: list[dict], n: int, cfg: TuneConfig, budget: int | None,
         seed: int, progress=None) -> list[list]:
    """``n`` judged samples (``Scored``) per problem at thinking ``budget``."""
    sp = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=seed)
    b = Budget(thinking_budget=budget) if budget is not None else None
    out = []
    for group in sample_and_score(backend, task, problems, n=n, sampling=sp, budget=b, batch=cfg.batch_size):
        out.append(group)
        if progress is not None:
            progress()
    return out


def evaluate_point(backend: Backend, task, scored: list[list], strategy: str, n: int) -> dict:
    """Accuracy (Wilson 95%) and mean tokens of ``strategy`` with ``n`` on pre-drawn samples."""
    from ponder.strategies import run_batch
    from ponder.tasks import judge

    prompts = [g[0].prompt for g in scored]
    payloads = [p.payload if hasattr(p, "payload") else p for p in prompts]
    pools = {_key(pl): [s.completion for s in g] for pl, g in zip(payloads, scored)}
    if len(pools) != len(scored):  # two problems with the same prompt: replay them one by one
        results = [run_batch(strategy, Replay(backend, {_key(pl): [s.completion for s in g]}), [p], n=n,
                             task=task, examples=[g[0].example])[0] for p, pl, g in zip(prompts, payloads, scored)]
    else:
        results = run_batch(strategy, Replay(backend, pools), prompts, n=n, task=task,
                            examples=[g[0].example for g in scored], chunk=len(prompts))
    verdicts = {id(s.completion): s.verdict for g in scored for s in g}
    ok = 0
    for r, g in zip(results, scored):
        c = r.completion
        if r.answer is not None and c is not None:
            v = verdicts.get(id(c)) or judge(task, c, g[0].example)
            ok += bool(v.correct)
    m = len(results)
    acc, lo, hi = wilson(ok, m)
    return {"accuracy": acc, "ci_low": lo, "ci_high": hi, "correct": ok, "problems": m,
            "tokens": sum(r.tokens for r in results) / m, "samples": sum(len(r.samples) for r in results) / m}


def label(p: dict) -> str:
    s = p["strategy"] if p["strategy"] == "single" else f"{p['strategy']}@{p['n']}"
    return s + (f" b={p['budget']}" if p["budget"] is not None else "")


def sweep(backend: Backend, task, problems: list[dict], cfg: TuneConfig, seed: int, progress=None,
          points: Sequence[dict] | None = None) -> list[dict]:
    """Every (strategy, n, budget) of ``cfg`` -- or only ``points`` -- on ``problems``: one
    sampling pass of the largest n needed per budget, every point replayed on it."""
    if points is None:
        want = [{"strategy": s, "n": k, "budget": b} for b in (cfg.budgets or [None]) for s in cfg.strategies
                for k in ([1] if s == "single" else cfg.ns)]
    else:
        want = [{"strategy": p["strategy"], "n": p["n"], "budget": p["budget"]} for p in points]
    out: list[dict] = [dict(w) for w in want]
    for b in dict.fromkeys(w["budget"] for w in want):
        idx = [i for i, w in enumerate(want) if w["budget"] == b]
        n_max = max(want[i]["n"] for i in idx)
        scored = draw(backend, task, problems, n_max, cfg, b, seed + (b or 0), progress)
        for i in idx:
            out[i].update(evaluate_point(backend, task, scored, want[i]["strategy"], want[i]["n"]))
            out[i]["label"] = label(out[i])
    return out


# ---------------------------------------------------------------------------- the run


def run_tune(cfg: TuneConfig, backend: Backend | None = None, console=None) -> dict:
    """Split, sweep dev, choose efforts, check them on held-out; writes ``cfg.out`` (module
    docstring) and returns the content of ``tune.json``."""
    from rich.progress import Progress

    from ponder.evaluate.tune_report import plot_front, write_report
    from ponder.tasks import get_task

    task = get_task(cfg.task)
    dev, held = split_problems(task, cfg.split, cfg.dev_frac, cfg.limit)
    if backend is None:
        from ponder.generate.backends import load_backend

        backend = load_backend(cfg.model, thinking=cfg.thinking)
    n_budgets = len(cfg.budgets or [None])
    with Progress(disable=console is None, console=console, transient=True) as bar:
        job = bar.add_task(f"dev sweep ({len(dev)} problems x {n_budgets} budget(s))", total=len(dev) * n_budgets)
        points = sweep(backend, task, dev, cfg, cfg.seed, lambda: bar.advance(job))
        front = pareto_front(points)
        for i, p in enumerate(points):
            p["front"] = i in front
        ref = _reference(points, max(cfg.ns))
        chosen = choose_efforts(points, ref, cfg.low_tolerance, cfg.medium_tolerance)
        check = [points[chosen[lvl]] for lvl in LEVELS]
        if ref is not None:
            check.append(points[ref])
        uniq = list({label(p): p for p in check}.values())
        job2 = bar.add_task(f"held-out ({len(held)} problems)", total=len(held) * len({p["budget"] for p in uniq}))
        held_rows = sweep(backend, task, held, cfg, cfg.seed + 7_919, lambda: bar.advance(job2), points=uniq)
    held_of = {r["label"]: r for r in held_rows}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    efforts = serve_efforts(points, chosen)
    data = {
        "config": asdict(cfg), "model": getattr(backend, "name", cfg.model),
        "dev_ids": [e["id"] for e in dev], "held_out_ids": [e["id"] for e in held],
        "points": points, "front": [points[i]["label"] for i in front],
        "reference": points[ref]["label"] if ref is not None else None,
        "efforts": {lvl: {"point": points[i]["label"], "dev": _nums(points[i]), "held_out": _nums(held_of[points[i]["label"]])}
                    for lvl, i in chosen.items()},
        "reference_held_out": _nums(held_of[points[ref]["label"]]) if ref is not None else None,
        "serve": {"efforts": efforts},
    }
    write_json_atomic(out / "tune.json", data)
    import yaml

    (out / "serve.yaml").write_text("# written by ponder tune: ponder serve MODEL --config serve.yaml\n"
                                    + yaml.safe_dump({"efforts": efforts}, sort_keys=False))
    plot_front(points, front, chosen, out / "pareto.png", title=f"{cfg.task} dev ({len(dev)} problems)")
    write_report(data, out / "report.md")
    return data


def _reference(points: Sequence[dict], n_max: int) -> int | None:
    """majority@n_max: of its budgets, the most accurate (ties: the cheapest)."""
    cand = [i for i, p in enumerate(points) if p["strategy"] == "majority" and p["n"] == n_max]
    return max(cand, key=lambda i: (points[i]["accuracy"], -points[i]["tokens"])) if cand else None


def _nums(p: dict) -> dict:
    return {k: p[k] for k in ("accuracy", "ci_low", "ci_high", "tokens", "samples", "problems")}
