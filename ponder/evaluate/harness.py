"""``ponder eval``: sample a model on a task, score every sample, and keep an auditable record.

Layout of a run directory (``--out``)::

    config.json        the EvalConfig (what was asked; --resume refuses a different one)
    samples.jsonl      one record per (problem, sample), appended and flushed as produced
    strategy.jsonl     one record per problem when --strategy is a ponder.strategies name
    protocol.json      with --protocol: the protocol (source, file hash) and the fields overridden
    metrics.json       every number of the report, recomputed from the records
    card.json          the reproduction card: hashes of every input, versions, seeds, headline metrics
    report.md + *.png  the human-readable report (``ponder.evaluate.report``)
    budget-<B>/        one such run per thinking budget of a --budgets sweep

Prompts and verdicts. Every prompt is ``ponder.format.render`` of the question under the
model's thinking decision (``--thinking auto|on|off``), the same prompt training, ``ask`` and
``serve`` give the model; every sample is judged by ``ponder.tasks.judge``, the definition of
correct the ``accuracy`` reward uses. A protocol (``--protocol``, ``ponder.evaluate.protocol``)
can change the wording, add few-shot examples, send raw text instead of the chat template and
judge with another extraction rule; the run then records which protocol and what differed.

Reproducibility. Each request's sampling seed is derived from ``--seed``, the problem id and
the first sample index of the request (``request_seed``); against an endpoint every problem is
its own request (and, with ``n > 1``, every sample: the backend gives each its own seed), so
samples are independent across problems. The same config gives the same records with a seeded
backend; a resumed run asks only for the missing samples (new request, new derived seed): the
same distribution, not bit-identical text.

Crash safety. Records are appended with one ``write`` + ``flush`` each, so a killed run keeps
every record whose line was complete; ``--resume`` drops a torn last line, reads the rest and
skips finished ``(id, sample)`` pairs. Metrics never depend on process state: they are
recomputed from ``samples.jsonl`` (``ponder.evaluate.report.compute_metrics``).

Endpoints. Requests run in a thread pool of ``concurrency`` workers (local models: 1, they
batch instead). The backend retries a failed request ``retries`` times with exponential
backoff; a request the server refuses outright (4xx) stops the run at once, and after
``max_failures`` requests in a row have failed for good the run stops too, with
``EndpointError`` naming the last error -- every record already written stays, and
``--resume`` continues. A run that ends with failed requests exits non-zero.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Iterable

from ponder.config import (
    ModelOptions,
    PromptOptions,
    SamplingOptions,
    check_choice,
    check_given,
    check_range,
    option,
    shared,
)
from ponder.evaluate.card import write_card
from ponder.evaluate.judge import JudgeError, default_mode, run_judge
from ponder.evaluate.judge import check_config as check_judge
from ponder.evaluate.protocol import PromptBuilder, also_judged, check_extract, load_protocol, scoring_task
from ponder.evaluate.protocol import record as protocol_record
from ponder.evaluate.report import METRICS, compute_metrics, write_budget_report, write_report
from ponder.format import MODES, looped
from ponder.generate.backends import load_backend, prompt
from ponder.generate.scoring import BatchShapeError, score_batch
from ponder.generate.types import Backend, Budget, Completion, GenerationError, SamplingParams
from ponder.io import RecordWriter, check_resume, read_records, write_json_atomic

SAMPLES = "samples.jsonl"
STRATEGY = "strategy.jsonl"
CONFIG = "config.json"
STATE = "state.json"
PROTOCOL = "protocol.json"
#: config fields that change what is generated: --resume refuses a run whose values differ.
GENERATION_KEYS = (
    "model", "task", "split", "n", "strategy", "effort", "thinking_budget", "temperature",
    "top_p", "max_tokens", "seed", "template", "thinking", "system", "extra_body", "tokenizer",
    "min_thinking", "min_thinking_frac", "max_waits", "loop_guard", "protocol", "prompt_template", "shots",
    "chat_template", "stop", "extract",
)  # fmt: skip  (not limit: resuming with a larger --limit extends a run to more problems)


#: fields a protocol may set (the rest name the run, not the measurement).
PROTOCOL_KEYS = (
    "split", "n", "strategy", "effort", "thinking_budget", "temperature", "top_p", "max_tokens", "seed", "template",
    "thinking", "system", "min_thinking", "max_waits", "loop_guard", "prompt_template", "shots", "chat_template",
    "stop", "extract",
)  # fmt: skip


class EvalError(ValueError):
    """Bad evaluation input or an unusable run directory; the message names the problem."""


class EndpointError(EvalError):
    """The endpoint failed ``max_failures`` requests in a row; finished samples are kept."""


@dataclass
class EvalConfig(PromptOptions, SamplingOptions, ModelOptions):
    """Options of ``ponder eval`` (also the content of ``config.json``)."""

    task: str = shared("task", "")
    split: str = shared("split", "test")
    n: int = shared("n", 8)
    strategy: str = option("majority", "'majority' (vote over the n samples: no extra generation) or a ponder.strategies name run once per problem.")
    effort: str | None = option(None, "Thinking effort low|medium|high (the model's effort table); excludes thinking_budget.")
    thinking_budget: int | None = option(None, "Most reasoning tokens per sample (cut off with </think>); excludes effort.")
    max_tokens: int = shared("max_tokens", 512)
    limit: int | None = shared("limit", None)
    out: str | None = option(None, "Run directory (default runs/eval/<model>-<task>-<time>).")
    resume: bool = option(False, "Continue the run in --out, skipping finished (problem, sample) pairs.")
    budgets: list[int] = option([], "Thinking budgets to sweep (e.g. 64,128,256): one sub-run each + accuracy-vs-budget CSV and plot.")
    min_thinking: int = option(0, "Budget forcing (s1): replace an earlier </think> with 'Wait' until this many reasoning tokens.")
    min_thinking_frac: float = option(0.0, "With --budgets: force at least this share of each budget with 'Wait' (0 = cut-off only).")
    max_waits: int = option(2, "Most 'Wait's inserted per sample by budget forcing.")
    loop_guard: str = option("", "Reasoning-loop breaker: close (force </think> on a loop), stop (end the sample there) or '' (off); local models and ponder serve.")
    by: list[str] = option([], "Meta fields to break results down by (e.g. subject,level or digits).")
    template: str = shared("template", "think")
    concurrency: int = option(8, "Concurrent requests against an endpoint (local models run one batch at a time).")
    batch_size: int = option(16, "Problems per generate call for a local model (each with its n samples).")
    retries: int = option(3, "Retries per failed endpoint request (exponential backoff from 0.5 s).")
    max_failures: int = option(3, "Stop after this many requests in a row failed for good.")
    timeout: float = shared("timeout", 600.0)
    protocol: str = option("", "Evaluation protocol (ponder eval protocols): r1, lm-eval-gsm8k, qwen-math, ponder or a .yaml file; its fields are defaults that flags and --set override.")
    prompt_template: str = option("", "User text with {question} replaced by the problem (empty: the bare question).")
    shots: int = option(0, "Worked examples from the task's train split put before each question (few-shot).")
    chat_template: bool = option(True, "Render with the model's chat template; off sends raw text (an endpoint then needs --tokenizer).")
    stop: list[str] = option([], "Strings that end a completion (cut before the first one).")
    extract: list[str] = option([], "Extraction rules: the first decides correct, the rest are reported beside it (lm-eval-strict, lm-eval-flexible, ponder; empty: the task's own).")
    check_contamination: list[str] = option([], "Training data (JSONL files or task specs, comma-separated) to check the problems against for shared 13-grams: writes contamination.json, reports pass@1 on the clean subset too.")
    # the LLM judge (ponder.evaluate.judge)
    judge: str = option("", "LLM judge for free-form answers: a checkpoint dir, adapter dir or openai:<model>@<base_url> (empty: none).")
    judge_rubric: str = option("", "Judge prompt template with {question}, {gold} and {answer} (empty: the shipped rubric).")
    judge_mode: str = option("", "replace (the judge decides correct) or compare (the verifier decides, agreement is reported); empty: compare where the task's verifier reads every gold, else replace.")
    judge_max_tokens: int = option(512, "Most tokens per judge reply (greedy sampling).")
    judge_cache: str = option("", "Directory of a judge cache shared between runs (judge_cache.jsonl; the run dir always keeps its own).")

    def __post_init__(self) -> None:
        check_given(self, ("model", "task"), error=EvalError)
        check_range(self, ("n", "concurrency", "batch_size", "max_failures", "limit"), 1, error=EvalError)
        check_range(self, ("retries",), 0, error=EvalError)
        if any(b < 0 for b in self.budgets):
            raise EvalError(f"budgets must be >= 0, got {self.budgets}")
        if self.budgets and (self.effort or self.thinking_budget is not None):
            raise EvalError("--budgets sweeps the thinking budget: do not also give --effort or --thinking-budget")
        if len(set(self.budgets)) != len(self.budgets):
            raise EvalError(f"budgets has duplicates: {self.budgets}")
        check_range(self, ("min_thinking_frac",), 0, 1, error=EvalError)
        if self.min_thinking_frac and not self.budgets:
            raise EvalError("--min-thinking-frac is a share of each budget of --budgets: use --min-thinking for one run")
        if self.min_thinking < 0 or self.max_waits < 0:
            raise EvalError("min_thinking and max_waits must be >= 0")
        check_range(self, ("shots",), 0, error=EvalError)
        if self.prompt_template and "{question}" not in self.prompt_template:
            raise EvalError("prompt_template must contain {question} (where the problem goes)")
        try:
            check_extract(self.extract)
            if self.protocol:
                load_protocol(self.protocol, PROTOCOL_KEYS)  # a bad name or file fails before any work
        except ValueError as e:
            raise EvalError(str(e)) from None
        try:
            check_judge(self)
        except JudgeError as e:
            raise EvalError(str(e)) from None
        if self.loop_guard not in ("", "close", "stop"):
            raise EvalError(f"loop_guard must be close, stop or '' (off), got {self.loop_guard!r}")
        check_choice(self, "thinking", MODES, error=EvalError)
        check_choice(self, "template", ("think", "r1-zero"), error=EvalError)
        if self.strategy != "majority" and not self.strategy.strip():
            raise EvalError("strategy must be 'majority' or a ponder.strategies name")
        try:
            self.sampling(0)
            self.budget()
        except GenerationError as e:
            raise EvalError(str(e)) from None

    def sampling(self, seed: int) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=seed,
                              stop=tuple(self.stop))

    def budget(self) -> Budget | None:
        if self.effort is None and self.thinking_budget is None and not self.min_thinking and not self.loop_guard:
            return None
        return Budget(thinking_budget=self.thinking_budget, effort=self.effort, min_thinking=self.min_thinking,
                      max_waits=self.max_waits, loop_guard=self.loop_guard or None)

    @property
    def forcing(self) -> bool:
        return bool(self.min_thinking or self.min_thinking_frac)


# ---------------------------------------------------------------------------- backends


def load_model(spec: str, thinking: str = "auto", **remote_kw) -> Backend:
    """A backend for ``spec`` (``ponder.generate.load_backend``); ``remote_kw`` (e.g.
    ``concurrency``, ``max_retries``) go to an endpoint backend only."""
    return load_backend(spec, thinking=thinking, **(remote_kw if spec.startswith("openai:") else {}))


def request_seed(seed: int, example_id: str, first_sample: int) -> int:
    """The sampling seed of a request: derived from the run's seed, the problem and the sample."""
    h = hashlib.blake2b(f"{seed}|{example_id}|{first_sample}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "big") & 0x7FFFFFFF


# ---------------------------------------------------------------------------- records


def sample_record(example: dict, j: int, prompt_text, c: Completion, verdict, seconds: float,
                  budget: int | None, seed: int | None = None) -> dict:
    """The audit record of one sample (the format is documented in docs/evaluation.md)."""
    return {
        "id": example["id"],
        "sample": j,
        "prompt": prompt_text,
        "completion": c.text,
        "prefilled_think": c.prefilled,
        "think_closed": c.think_closed,
        "unclosed": c.unclosed,
        "reasoning": c.reasoning,
        "answer_text": c.answer,
        "answer": verdict.answer,
        "gold": example["gold"],
        "correct": bool(verdict.correct),
        "reason": verdict.reason,
        "reasoning_tokens": c.reasoning_tokens,
        "answer_tokens": c.answer_tokens,
        "tokens": c.reasoning_tokens + c.answer_tokens,
        "finish_reason": c.finish_reason,
        "truncated": c.finish_reason == "length",
        "forced_close": c.forced_close,
        "looped": looped(c.reasoning or c.answer),  # a model that does not think loops in its answer
        "loop_breaks": c.loop_breaks,
        "waits": c.waits,
        "tokens_estimated": c.estimated,
        "thinking_budget": budget,
        "seed": seed,
        "seconds": round(seconds, 6),
        "meta": {k: v for k, v in example["meta"].items() if isinstance(v, (str, int, float, bool)) and k not in ("solution", "source", "line")},
    }


# ---------------------------------------------------------------------------- run


@dataclass
class RunResult:
    out: Path
    metrics: dict
    new_samples: int


def default_out(cfg: EvalConfig) -> Path:
    model = cfg.model.rstrip("/").split("/")[-1].split("@")[0].replace(":", "-") or "model"
    task = cfg.task.split(":")[0]
    return Path("runs") / "eval" / f"{model}-{task}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"


def prepare_out(cfg: EvalConfig, out: Path) -> None:
    """Create ``out`` or check it for --resume: the same generation settings, else an error."""
    cfg_path = out / CONFIG
    if cfg_path.is_file():
        if not cfg.resume:
            raise EvalError(f"{out} already holds a run: pass --resume to continue it or choose another --out")
        # a key a run from an older ponder lacks counts as that field's default
        check_resume(cfg_path, asdict(cfg), GENERATION_KEYS, defaults={f.name: f.default for f in fields(EvalConfig)},
                     error=EvalError)
    elif cfg.resume and (out / SAMPLES).is_file():
        raise EvalError(f"{out}: samples.jsonl without config.json; cannot tell what to resume")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg_path, asdict(cfg))


def run_eval(cfg: EvalConfig, backend: Backend | None = None, *, progress: bool = True,
             console=None) -> RunResult:
    """Run ``cfg`` (one run, or a sweep with ``cfg.budgets``); writes records, metrics and report."""
    from ponder.tasks import get_task

    task = scoring_task(get_task(cfg.task), cfg.extract)  # the protocol's extraction decides correct
    examples = list(islice(task.examples(cfg.split), cfg.limit))
    if not examples:
        raise EvalError(f"task {cfg.task!r} has no {cfg.split} examples")
    for f in cfg.by:
        if not any(f in e["meta"] for e in examples):
            fields = sorted({k for e in examples for k in e["meta"]} - {"solution", "source", "line"})
            raise EvalError(f"--by {f}: no {cfg.task} example has meta field {f!r}; available: {', '.join(fields) or 'none'}")
    if cfg.strategy != "majority":
        from ponder.strategies import STRATEGIES

        if cfg.strategy not in STRATEGIES:
            raise EvalError(f"unknown strategy {cfg.strategy!r}; choose majority or one of {', '.join(STRATEGIES)}")
    if cfg.judge and not cfg.judge_mode:  # recorded in config.json: the mode this run used
        cfg = replace(cfg, judge_mode=default_mode(getattr(task, "base", task), examples))
    out = Path(cfg.out) if cfg.out else default_out(cfg)
    if cfg.out is None:
        cfg = replace(cfg, out=str(out))
    if backend is None:
        backend = load_model(cfg.model, cfg.thinking, concurrency=cfg.concurrency, max_retries=cfg.retries,
                             timeout=cfg.timeout, extra_body=cfg.extra_body or None, tokenizer=cfg.tokenizer or None)
    if cfg.loop_guard and not backend.capabilities.loop_guard:
        raise EvalError("--loop-guard watches every token as it is decoded: it needs a local checkpoint or a "
                        "`ponder serve` endpoint")
    if cfg.forcing and not backend.capabilities.forcing:
        raise EvalError("budget forcing (--min-thinking) rewrites the reasoning as it is written: it needs a local "
                        "checkpoint, an endpoint with --tokenizer (raw completions) or a `ponder serve` endpoint")
    try:
        builder = PromptBuilder(cfg, getattr(task, "base", task), backend)
    except ValueError as e:
        raise EvalError(str(e)) from None
    if not cfg.budgets:
        res = _run_one(cfg, out, task, examples, backend, progress, console, builder)
        write_card(out, cfg, task, examples, backend, res.metrics, out / SAMPLES)  # card.json (ponder.evaluate.card)
        return res
    prepare_out(cfg, out)
    results = []
    for b in cfg.budgets:  # one ordinary run per budget: records, resume and metrics as for any run
        sub = replace(cfg, budgets=[], thinking_budget=b, min_thinking=cfg.min_thinking or int(cfg.min_thinking_frac * b),
                      min_thinking_frac=0.0, out=str(out / f"budget-{b}"),
                      resume=cfg.resume and (out / f"budget-{b}" / CONFIG).is_file())
        results.append((b, _run_one(sub, out / f"budget-{b}", task, examples, backend, progress, console, builder)))
    note = None
    if backend.budget_honoured is False:  # only max_tokens = budget + answer bounded the reasoning
        note = "the server ignored the thinking budget: this sweeps max_tokens = budget + max_tokens"
        if console is not None:
            console.print(f"[yellow]warning:[/] {note}", highlight=False)
    metrics = write_budget_report(out, cfg, [(b, r.metrics) for b, r in results], note=note)
    write_card(out, cfg, task, examples, backend, metrics, out / f"budget-{cfg.budgets[0]}" / SAMPLES)  # one card per sweep
    return RunResult(out, metrics, sum(r.new_samples for _, r in results))


def _run_one(cfg, out, task, examples, backend, show_progress, console, builder) -> RunResult:
    prepare_out(cfg, out)
    if cfg.protocol:
        write_json_atomic(out / PROTOCOL, protocol_record(cfg))
    flagged = None  # contamination check: before generating, so bad training data fails fast
    if cfg.check_contamination:
        from ponder.evaluate.contamination import check_run

        flagged = check_run(out, cfg.check_contamination, examples, cfg.task, cfg.split, show_progress, console)
    records = read_records(out / SAMPLES, repair=True)
    known = {e["id"] for e in examples}
    done: dict[str, set[int]] = {}
    for r in records:
        if r.get("id") in known and isinstance(r.get("sample"), int) and 0 <= r["sample"] < cfg.n:
            done.setdefault(r["id"], set()).add(r["sample"])
    todo = [(ex, [j for j in range(cfg.n) if j not in done.get(ex["id"], set())]) for ex in examples]
    todo = [(ex, miss) for ex, miss in todo if miss]
    state_path = out / STATE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"wall_seconds": 0.0, "sessions": 0}
    state["sessions"] += 1
    t0 = time.perf_counter()
    base_wall = state["wall_seconds"]

    def save_state() -> None:
        write_json_atomic(state_path, {**state, "wall_seconds": base_wall + time.perf_counter() - t0})

    current = [r for r in records if r.get("id") in known and 0 <= r.get("sample", -1) < cfg.n]
    new, failed = _generate(cfg, out, task, todo, backend, current, show_progress, console, save_state, builder)
    if cfg.strategy != "majority":
        _run_strategy(cfg, out, task, examples, backend, show_progress, console, builder)
    if cfg.judge:  # adds a judge verdict to every record (replace mode: the judge's `correct`)
        try:
            run_judge(cfg, out, examples, backend, SAMPLES, show_progress, console)
        except JudgeError as e:
            raise EvalError(str(e)) from None
    save_state()
    state = json.loads(state_path.read_text())
    records = read_records(out / SAMPLES)
    strategy_records = read_records(out / STRATEGY) if cfg.strategy != "majority" else None
    metrics = compute_metrics(records, examples, cfg, wall_seconds=state["wall_seconds"], strategy_records=strategy_records)
    metrics["failed_requests"] = len(failed)
    metrics["last_error"] = failed[-1] if failed else None
    if flagged is not None:  # pass@1 on the problems that share no 13-gram with the training data
        from ponder.evaluate.contamination import clean_metrics

        metrics["contamination"] = clean_metrics(metrics, flagged, cfg.check_contamination)
    write_json_atomic(out / METRICS, metrics)
    write_report(out, cfg, metrics, records)
    return RunResult(out, metrics, new)


def split_concurrency(backend, cfg: EvalConfig) -> tuple[int, int]:
    """(worker threads, problems per generate call): a local engine runs one thread with
    ``batch_size`` problems per call (it batches rows itself); an endpoint gets one problem per
    call from ``concurrency`` threads, so every problem has its own seed and request."""
    if backend.capabilities.local:
        return 1, cfg.batch_size
    return cfg.concurrency, 1


def _call_with_retries(backend, prompts, n, sampling, budget, retries: int, stop: threading.Event):
    """``backend.generate``, retried with exponential backoff for a remote backend that does not
    retry itself (``capabilities.retries``); a local engine is never retried."""
    caps = backend.capabilities
    if caps.local or caps.retries:
        retries = 0
    delay = 0.5
    for attempt in range(retries + 1):
        try:
            return backend.generate(prompts, n=n, sampling=sampling, budget=budget)
        except Exception:
            if attempt == retries or stop.is_set():
                raise
            stop.wait(delay)
            delay = min(delay * 2, 8.0)


def _generate(cfg, out, task, todo, backend, records, show_progress, console, save_state,
              builder) -> tuple[int, list[str]]:
    """Generate the missing samples of ``todo``; returns how many records were written and the
    last error of every request that failed for good (its problem stays incomplete)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    remote = not backend.capabilities.local
    workers, per_call = split_concurrency(backend, cfg)
    # group problems with the same missing samples into calls (all of them on a fresh run)
    calls: list[list[tuple[dict, list[int]]]] = []
    for ex, miss in todo:
        last = calls[-1] if calls else None
        if last and len(last) < per_call and last[0][1] == miss:
            last.append((ex, miss))
        else:
            calls.append([(ex, miss)])
    budget = cfg.budget()
    tb = budget.resolve(backend.effort_table) if budget else None
    correct = sum(1 for r in records if r.get("correct"))
    seen = len(records)
    total = seen + sum(len(m) for _, m in todo)
    writer = RecordWriter(out / SAMPLES)
    stop = threading.Event()
    written = 0
    failures = 0
    failed: list[str] = []  # the last error of every request that failed for good
    last_save = time.perf_counter()

    def work(call):
        ex0, miss = call[0]
        seed = request_seed(cfg.seed, ex0["id"], miss[0])
        t = time.perf_counter()
        exs = [ex for ex, _ in call]
        scored = score_batch(backend, task, exs, sampling=cfg.sampling(seed), budget=budget, prompts=builder.prompts(exs),
                             system=cfg.system or None, template=cfg.template, samples=miss,
                             generate=lambda ps, n, sp, b: _call_with_retries(backend, ps, n, sp, b, cfg.retries, stop))
        return scored, time.perf_counter() - t, seed

    bar = Progress(TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("acc {task.fields[acc]}"), TimeRemainingColumn(),
                   console=console, disable=not show_progress, transient=False)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        with bar:
            tid = bar.add_task(cfg.task, total=total, completed=seen, acc=f"{correct / seen:.3f}" if seen else "-")
            pending: dict[Future, list] = {}
            queue = iter(calls)

            def fill() -> None:
                while len(pending) < workers * 2 and not stop.is_set():
                    call = next(queue, None)
                    if call is None:
                        return
                    pending[pool.submit(work, call)] = call

            fill()
            while pending:
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in finished:
                    pending.pop(fut)
                    try:
                        scored, seconds, seed = fut.result()
                    except EvalError:
                        raise
                    except BatchShapeError as e:
                        raise EvalError(str(e)) from None
                    except GenerationError as e:
                        if not remote:  # a local engine refuses only bad input: no point going on
                            raise EvalError(f"generation failed: {e}") from None
                        failures += 1
                        failed.append(str(e))
                        if "refused the request" in str(e):  # a 4xx: every other request would fail too
                            stop.set()
                            raise EndpointError(f"{cfg.model}: {e}; the {seen} finished samples are kept in "
                                                f"{out / SAMPLES}") from None
                    except Exception as e:  # an endpoint failure after its retries
                        if not remote:
                            raise
                        failures += 1
                        failed.append(f"{type(e).__name__}: {e}")
                    else:
                        failures = 0
                    if failures:
                        if failures >= cfg.max_failures:
                            stop.set()
                            raise EndpointError(
                                f"{cfg.model}: {failures} requests in a row failed after retries "
                                f"(last: {failed[-1]}); the {seen} finished samples are kept in "
                                f"{out / SAMPLES} -- fix the endpoint and rerun with --resume") from None
                        continue
                    per_sample = seconds / max(1, sum(len(g) for g in scored))
                    for s in (s for group in scored for s in group):
                        shown = s.prompt.text if s.prompt.text is not None else s.prompt.messages
                        rec = sample_record(s.example, s.sample, shown, s.completion, s.verdict, per_sample, tb, seed)
                        if len(cfg.extract) > 1:  # the protocol's other extraction rules, same completion
                            rec["extractions"] = also_judged(getattr(task, "base", task), cfg.extract, s.completion,
                                                             s.example, cfg.template)
                        writer.write(rec)
                        written += 1
                        seen += 1
                        correct += bool(s.verdict.correct)
                    bar.update(tid, completed=seen, acc=f"{correct / seen:.3f}")
                    if time.perf_counter() - last_save > 5:
                        save_state()
                        last_save = time.perf_counter()
                fill()
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        save_state()
    return written, failed


def _run_strategy(cfg, out, task, examples, backend, show_progress: bool = True, console=None, builder=None) -> None:
    """``ponder.strategies.run_batch`` over the problems not yet in strategy.jsonl, in chunks
    (``batch_size`` problems locally, ``concurrency`` against an endpoint) whose records are
    appended as each chunk finishes, so an interrupted strategy pass resumes like the samples."""
    try:
        from ponder.strategies import STRATEGIES, run_batch
    except ImportError as e:
        raise EvalError(f"strategy {cfg.strategy!r} needs ponder.strategies ({e})") from None
    if cfg.strategy not in STRATEGIES:
        raise EvalError(f"unknown strategy {cfg.strategy!r}; choose majority or one of {', '.join(STRATEGIES)}")
    from rich.progress import Progress

    from ponder.tasks import Verdict

    done = {r.get("id") for r in read_records(out / STRATEGY, repair=True)}
    todo = [ex for ex in examples if ex["id"] not in done]
    chunk = cfg.batch_size if backend.capabilities.local else cfg.concurrency
    n = 1 if cfg.strategy == "single" else cfg.n  # "single" is one sample by definition
    writer = RecordWriter(out / STRATEGY)
    try:
        with Progress(console=console, disable=not show_progress) as bar:
            job = bar.add_task(f"strategy {cfg.strategy}", total=len(todo))
            for s in range(0, len(todo), chunk):
                exs = todo[s:s + chunk]
                prompts = (builder.prompts(exs) if builder is not None else None) or [
                    prompt(backend, ex["prompt"], cfg.system or None) for ex in exs]
                t = time.perf_counter()
                results = run_batch(cfg.strategy, backend, prompts, n=n,
                                    sampling=cfg.sampling(request_seed(cfg.seed, exs[0]["id"], -1)),
                                    budget=cfg.budget(), task=task, examples=exs, chunk=chunk)
                seconds = (time.perf_counter() - t) / len(exs)
                for ex, res in zip(exs, results):
                    # the strategy's answer was extracted by the judge (the strategies' answer_of);
                    # the verdict is the task's check of that answer
                    v = (task.check(res.answer, ex) if res.answer is not None
                         else Verdict(False, "the strategy found no answer"))
                    writer.write({
                        "id": ex["id"], "strategy": cfg.strategy, "answer": res.answer if res.answer is not None else v.answer,
                        "gold": ex["gold"], "correct": bool(v.correct), "reason": v.reason, "text": res.text,
                        "tokens": res.tokens, "reasoning_tokens": res.reasoning_tokens, "answer_tokens": res.answer_tokens,
                        "seconds": round(seconds, 6),
                    })
                bar.advance(job, len(exs))
    finally:
        writer.close()


def iter_examples(records: Iterable[dict]) -> dict[str, list[dict]]:
    """Records grouped by problem id, samples in index order (first occurrence of a duplicate wins)."""
    by: dict[str, dict[int, dict]] = {}
    for r in records:
        by.setdefault(r["id"], {}).setdefault(r["sample"], r)
    return {k: [v[j] for j in sorted(v)] for k, v in by.items()}


__all__ = ["EvalConfig", "EvalError", "EndpointError", "RunResult", "run_eval", "load_model", "read_records",
           "iter_examples"]
