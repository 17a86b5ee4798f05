"""An LLM judge for free-form answers: ``ponder eval … --judge MODEL``.

Where a programmatic verifier cannot decide (free-form answers) a second model grades each sample
against the gold answer. The judge is any backend spec ponder takes (checkpoint, adapter dir,
``openai:<model>@<url>``); it gets a rubric (a prompt template with ``{question}``, ``{gold}`` and
``{answer}``; ``rubrics/default.txt`` unless ``--judge-rubric``) rendered with the problem, the
gold and the sample's answer part (its reasoning is never shown to the judge).

Verdicts. The rubric asks for a last line ``VERDICT: CORRECT`` / ``VERDICT: INCORRECT``; a bare
last line ``CORRECT``/``INCORRECT`` or ``A``/``B`` (simple-evals' letter grades) is read too. The
judge's own reasoning (``<think>``) is cut off first with ``ponder.format.parse``. Lines are read
from the bottom and the first that holds a verdict decides, after dropping markdown emphasis,
backticks, ``\\boxed{}``/``\\text{}`` and ``[[ ]]``. A verdict line with anything else in it
("VERDICT: CORRECT or INCORRECT", "VERDICT: maybe"), or no verdict line at all, is ``unparsed``:
counted and reported, never mapped to correct or incorrect (in replace mode it scores as incorrect,
and the count says how many). simple-evals' SimpleQA grader instead searches the first ``A|B|C``
anywhere and defaults to C, and lighteval maps an unknown reply to 0.0 with a warning: both fold
parse failures into the score.

Modes. ``compare`` (the default when the task's verifier can read every gold): the verifier
decides ``correct`` and the judge runs beside it; metrics report their agreement (accuracy,
Cohen's kappa, false-positive and false-negative rates of the judge against the verifier, with
counts). ``replace`` (the default otherwise): the judge decides ``correct`` of every sample; the
verifier's verdict stays in ``verifier_correct``.

Cache. Every judge call is keyed by sha256 of (judge spec, rubric sha256, judge sampling, question,
gold, answer text) and appended to ``judge_cache.jsonl`` in the run dir (and in ``--judge-cache
DIR`` when given, shared between runs), so ``--resume`` and re-runs ask again only for new answers.
Failed calls are not cached. Records carry ``judge: {verdict, why, raw (clipped), cached}``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.config import check_range
from ponder.format import parse, start_of
from ponder.generate.backends import load_backend, prompt
from ponder.generate.types import SamplingParams
from ponder.io import RecordWriter, read_records, write_text_atomic

MODES = ("replace", "compare")
VERDICTS = ("correct", "incorrect", "unparsed", "error")
DEFAULT_RUBRIC = Path(__file__).with_name("rubrics") / "default.txt"
PLACEHOLDERS = ("question", "gold", "answer")
CACHE = "judge_cache.jsonl"
RAW_CHARS = 2000  # judge text kept per record and cache line: the tail, where the verdict is
ANSWER_CHARS = 6000  # most answer characters shown to the judge (the tail: the final result is last)


class JudgeError(ValueError):
    """Bad judge input (rubric, mode) or a judge that keeps failing; the message names it."""


@dataclass(frozen=True)
class Rubric:
    text: str
    source: str  # the file it came from
    sha256: str


def load_rubric(path: str = "") -> Rubric:
    """The rubric at ``path`` (default: the shipped one), checked: it must use ``{question}``,
    ``{gold}`` and ``{answer}`` and nothing else in braces (literal braces are doubled: ``{{``)."""
    p = Path(path).expanduser() if path else DEFAULT_RUBRIC
    if not p.is_file():
        raise JudgeError(f"judge rubric {str(p)!r} does not exist (a text file with {{question}}, {{gold}}, {{answer}})")
    text = p.read_text(encoding="utf-8")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as e:
        raise JudgeError(f"judge rubric {p}: {e} (write a literal brace as {{{{ or }}}})") from None
    missing = [n for n in PLACEHOLDERS if n not in names]
    if missing:
        raise JudgeError(f"judge rubric {p} lacks the placeholder(s) {', '.join('{' + n + '}' for n in missing)}")
    extra = sorted(names - set(PLACEHOLDERS))
    if extra:
        raise JudgeError(f"judge rubric {p} has unknown placeholder(s) {', '.join('{' + n + '}' for n in extra)}; "
                         "only {question}, {gold}, {answer} (write a literal brace as {{ or }})")
    return Rubric(text, str(p), hashlib.sha256(text.encode()).hexdigest())


def check_config(cfg) -> None:
    """The judge options of an ``EvalConfig``, checked before any work (raises ``JudgeError``)."""
    if not cfg.judge:
        if cfg.judge_mode or cfg.judge_rubric or cfg.judge_cache:
            raise JudgeError("--judge-mode, --judge-rubric and --judge-cache need --judge MODEL")
        return
    if cfg.judge_mode not in ("", *MODES):
        raise JudgeError(f"judge_mode must be replace or compare, got {cfg.judge_mode!r}")
    check_range(cfg, ("judge_max_tokens",), 1, error=JudgeError)
    load_rubric(cfg.judge_rubric)


def default_mode(task, examples: list[dict]) -> str:
    """compare where the task's verifier can read every gold (it decides), else replace."""
    verifiable = getattr(task, "gold_verifiable", None)
    ok = verifiable is not None and all(verifiable(str(e["gold"])) for e in examples)
    return "compare" if ok else "replace"


# ---------------------------------------------------------------------------- verdicts

_TOKENS = {"correct": "correct", "a": "correct", "incorrect": "incorrect", "not correct": "incorrect",
           "b": "incorrect"}
_WRAPS = re.compile(r"\\(?:boxed|text|textbf|mathrm)\s*\{([^{}]*)\}|\[\[([^\[\]]*)\]\]")
_VERDICT = re.compile(r"\b(?:final\s+)?(?:verdict|grade)\b\s*(?:is\b)?\s*[:=\-]?\s*(.*)$", re.IGNORECASE)


def _normal(line: str) -> str:
    for _ in range(3):  # nested wraps: \boxed{\text{CORRECT}}
        line = _WRAPS.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), line)
    line = re.sub(r"[*`#>$]", "", line).replace("_", " ")
    return " ".join(line.split()).strip(" .!:;,\"'()[]")


def parse_verdict(text: str) -> tuple[str, str]:
    """``(verdict, why)`` of a judge's answer text (its reasoning already removed): verdict is
    correct, incorrect or unparsed (see the module docstring for the rules)."""
    for line in reversed(text.splitlines()):
        norm = _normal(line)
        if not norm:
            continue
        m = _VERDICT.search(norm)
        body = m.group(1) if m else norm
        token = _normal(body).lower()
        if token in _TOKENS:
            return _TOKENS[token], f"verdict line {norm[:60]!r}"
        if m:
            return "unparsed", f"a verdict line that is neither CORRECT nor INCORRECT: {norm[:60]!r}"
    return "unparsed", "no VERDICT line" if text.strip() else "empty judge answer"


def verdict_of(completion) -> tuple[str, str]:
    """The verdict of a judge ``Completion``: its reasoning cut off (``ponder.format.parse``),
    then ``parse_verdict`` of the answer part."""
    p = parse(completion.text, start_of(completion.prefilled))
    part = p.answer_text(completion.finish_reason)
    if not part.strip() and p.thinking and not p.think_closed:
        return "unparsed", "the judge's reasoning never closed (no answer part)"
    return parse_verdict(part)


def clip_tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


# ---------------------------------------------------------------------------- cache


def cache_key(judge: str, rubric: Rubric, max_tokens: int, question: str, gold: str, answer: str) -> str:
    """sha256 of everything that decides a judge's reply (greedy sampling: the reply is fixed)."""
    blob = json.dumps([judge, rubric.sha256, 0.0, max_tokens, question, gold, answer], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgeCache:
    """Judge replies by key, read from and appended to one or two ``judge_cache.jsonl`` files."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.entries: dict[str, dict] = {}
        for path in paths:
            for r in read_records(path, repair=True, error=JudgeError):
                if isinstance(r.get("key"), str) and r.get("verdict") in ("correct", "incorrect", "unparsed"):
                    self.entries.setdefault(r["key"], r)
        self.writers: list[RecordWriter] = []

    def put(self, entry: dict) -> None:
        if not self.writers:
            for path in self.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.writers.append(RecordWriter(path))
        self.entries[entry["key"]] = entry
        for w in self.writers:
            w.write(entry)

    def close(self) -> None:
        for w in self.writers:
            w.close()


# ---------------------------------------------------------------------------- the pass


def _load_judge(cfg, backend):
    if cfg.judge == cfg.model and backend.capabilities.local and cfg.thinking == "auto":
        return backend  # the model judging itself: the same weights, loaded once
    return load_backend(cfg.judge, thinking="auto", concurrency=cfg.concurrency, max_retries=cfg.retries,
                        timeout=cfg.timeout)


def run_judge(cfg, out: Path, examples: list[dict], backend, samples: str, show_progress: bool = True,
              console=None) -> dict[str, int]:
    """Judge every record of ``out/samples`` whose problem is in ``examples``, rewrite the file
    with their ``judge`` fields (and, in replace mode, ``correct``); returns the verdict counts of
    this pass plus ``asked`` and ``cached``. After ``cfg.max_failures`` failed calls in a row it
    stops with ``JudgeError`` (the replies so far are cached)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    rubric = load_rubric(cfg.judge_rubric)
    path = out / samples
    records = read_records(path)
    by_id = {e["id"]: e for e in examples}
    scope = [r for r in records if r.get("id") in by_id and 0 <= r.get("sample", -1) < cfg.n]
    caches = [out / CACHE] + ([Path(cfg.judge_cache).expanduser() / CACHE] if cfg.judge_cache else [])
    cache = JudgeCache(caches)
    keys, todo = {}, {}
    for r in scope:
        answer = clip_tail(str(r.get("answer_text") or ""), ANSWER_CHARS)
        k = cache_key(cfg.judge, rubric, cfg.judge_max_tokens, by_id[r["id"]]["prompt"], str(r["gold"]), answer)
        keys[id(r)] = k
        if k not in cache.entries:
            todo.setdefault(k, (by_id[r["id"]]["prompt"], str(r["gold"]), answer))
    fresh: dict[str, str] = {}  # key -> the error of a failed call
    asked = 0
    if todo:
        judge = _load_judge(cfg, backend)
        sampling = SamplingParams(temperature=0.0, max_tokens=cfg.judge_max_tokens, seed=0)
        local = judge.capabilities.local
        per_call, workers = (cfg.batch_size, 1) if local else (1, cfg.concurrency)
        items = list(todo.items())
        calls = [items[i:i + per_call] for i in range(0, len(items), per_call)]

        def work(call):
            prompts = [prompt(judge, rubric.text.format(question=q, gold=g, answer=a)).payload for _, (q, g, a) in call]
            return judge.generate(prompts, n=1, sampling=sampling)

        failures, last = 0, ""
        bar = Progress(TextColumn("[bold]judge[/] " + cfg.judge.split("/")[-1][:40]), BarColumn(), MofNCompleteColumn(),
                       console=console, disable=not show_progress)
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            with bar:
                tid = bar.add_task("judge", total=len(items))
                pending = {pool.submit(work, c): c for c in calls[:workers * 2]}
                queue = iter(calls[workers * 2:])
                while pending:
                    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for fut in done:
                        call = pending.pop(fut)
                        try:
                            groups = fut.result()
                        except Exception as e:  # noqa: BLE001 - a judge failure is recorded, then counted
                            failures += 1
                            last = f"{type(e).__name__}: {e}"
                            for k, _ in call:
                                fresh[k] = last
                            if failures >= cfg.max_failures:
                                raise JudgeError(
                                    f"judge {cfg.judge}: {failures} calls in a row failed (last: {last}); the samples "
                                    f"and the {len(cache.entries)} judge replies so far are kept -- fix the judge and "
                                    "rerun with --resume") from None
                        else:
                            failures = 0
                            asked += len(call)
                            for (k, _), group in zip(call, groups):
                                c = group[0]
                                verdict, why = verdict_of(c)
                                cache.put({"key": k, "verdict": verdict, "why": why, "raw": clip_tail(c.text, RAW_CHARS),
                                           "judge": cfg.judge, "rubric_sha256": rubric.sha256, "time": time.time()})
                        bar.advance(tid, len(call))
                        nxt = next(queue, None)
                        if nxt is not None:
                            pending[pool.submit(work, nxt)] = nxt
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            cache.close()
    counts = {v: 0 for v in VERDICTS} | {"asked": asked, "cached": 0}
    for r in scope:
        k = keys[id(r)]
        verifier = r.get("verifier_correct", r.get("correct"))
        if k in cache.entries:
            e = cache.entries[k]
            cached = k not in todo  # known before this pass: no call made for it
            r["judge"] = {"verdict": e["verdict"], "why": e.get("why", ""), "raw": e.get("raw", ""), "cached": cached}
            counts["cached"] += cached
        else:
            r["judge"] = {"verdict": "error", "why": fresh.get(k, "not judged"), "raw": "", "cached": False}
        counts[r["judge"]["verdict"]] += 1
        r["verifier_correct"] = bool(verifier)
        r["correct"] = (r["judge"]["verdict"] == "correct") if cfg.judge_mode == "replace" else bool(verifier)
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return counts


# ---------------------------------------------------------------------------- metrics


def agreement(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    """Agreement of judge verdicts with the verifier's over ``(judge, verifier)`` pairs.

    tp: both correct; tn: both incorrect; fp: the judge says correct, the verifier incorrect; fn:
    the reverse. accuracy = (tp + tn) / n; Cohen's kappa (Cohen 1960) = (p_o - p_e) / (1 - p_e)
    with p_e the agreement by chance from the two marginals (undefined, NaN, when p_e = 1: both
    always say the same one class); false-positive rate = fp / (fp + tn), false-negative rate =
    fn / (fn + tp) (NaN without any such sample)."""
    tp = sum(j and v for j, v in pairs)
    tn = sum(not j and not v for j, v in pairs)
    fp = sum(j and not v for j, v in pairs)
    fn = sum(v and not j for j, v in pairs)
    n = len(pairs)
    nan = float("nan")
    po = (tp + tn) / n if n else nan
    pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n) if n else nan
    kappa = (po - pe) / (1 - pe) if n and pe < 1 else nan
    return {"n": n, "tp": tp, "tn": tn, "fp": fp, "fn": fn, "accuracy": po, "kappa": kappa,
            "false_positive_rate": fp / (fp + tn) if fp + tn else nan,
            "false_negative_rate": fn / (fn + tp) if fn + tp else nan}


def judge_metrics(records: list[dict], cfg) -> dict[str, Any]:
    """The ``judge`` block of metrics.json from the records that carry a ``judge`` field."""
    judged = [r for r in records if isinstance(r.get("judge"), dict)]
    counts = {v: sum(r["judge"].get("verdict") == v for r in judged) for v in VERDICTS}
    try:
        rubric = load_rubric(cfg.judge_rubric)
        source, sha = rubric.source, rubric.sha256
    except JudgeError:
        source, sha = cfg.judge_rubric, None
    m: dict[str, Any] = {
        "model": cfg.judge, "mode": cfg.judge_mode, "rubric": source, "rubric_sha256": sha,
        "max_tokens": cfg.judge_max_tokens, "samples": len(judged), "verdicts": counts,
        "cache_hits": sum(bool(r["judge"].get("cached")) for r in judged),
    }
    pairs = [(r["judge"]["verdict"] == "correct", bool(r.get("verifier_correct", r.get("correct")))) for r in judged
             if r["judge"].get("verdict") in ("correct", "incorrect")]
    if cfg.judge_mode == "compare":
        m["agreement"] = agreement(pairs)
    else:  # replace: what the judge's verdict changed against the verifier
        m["changed"] = sum(j != v for j, v in pairs) + sum(
            bool(r.get("verifier_correct")) for r in judged if r["judge"].get("verdict") in ("unparsed", "error"))
    return m


def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def report_lines(metrics: dict) -> list[str]:
    """The report's "LLM judge" section (none without a judge)."""
    j = metrics.get("judge")
    if not j:
        return []
    v = j["verdicts"]
    lines = ["## LLM judge", "",
             f"Judge `{j['model']}`, mode **{j['mode']}**, rubric `{j['rubric']}` (sha256 {str(j['rubric_sha256'])[:12]}), "
             f"greedy, at most {j['max_tokens']} tokens; {j['samples']} samples judged, {j['cache_hits']} from the cache.",
             "", "| verdict | samples |", "|---|---|",
             *(f"| {k} | {v[k]} |" for k in VERDICTS), ""]
    if "agreement" in j:
        a = j["agreement"]
        lines += [f"Agreement with the verifier over the {a['n']} samples with a parsed verdict (unparsed and failed "
                  "calls left out):", "", "| | verifier correct | verifier incorrect |", "|---|---|---|",
                  f"| judge correct | {a['tp']} | {a['fp']} (false positive) |",
                  f"| judge incorrect | {a['fn']} (false negative) | {a['tn']} |", "",
                  f"Accuracy {_pct(a['accuracy'])}, Cohen's kappa {_num(a['kappa'])}, false-positive rate "
                  f"{_pct(a['false_positive_rate'])} ({a['fp']}/{a['fp'] + a['tn']}), false-negative rate "
                  f"{_pct(a['false_negative_rate'])} ({a['fn']}/{a['fn'] + a['tp']}).", ""]
    else:
        lines += [f"The judge decides `correct` (unparsed and failed verdicts count as incorrect); it changed "
                  f"{j['changed']} verdicts of the task's verifier.", ""]
    return lines


def console_line(metrics: dict) -> str:
    j = metrics["judge"]
    v = j["verdicts"]
    head = (f"judge {j['mode']}: {v['correct']} correct, {v['incorrect']} incorrect, {v['unparsed']} unparsed, "
            f"{v['error']} failed; {j['cache_hits']} cache hits")
    if "agreement" in j:
        a = j["agreement"]
        head += (f"; agreement with the verifier {_pct(a['accuracy'])} over {a['n']}, kappa {_num(a['kappa'])}, "
                 f"FP rate {_pct(a['false_positive_rate'])} ({a['fp']}), FN rate {_pct(a['false_negative_rate'])} "
                 f"({a['fn']})")
    return head
