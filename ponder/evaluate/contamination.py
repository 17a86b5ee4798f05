"""Contamination check: which eval problems share a word 13-gram with the training data.

The method is GPT-3's (Brown et al. 2020, "Language Models are Few-Shot Learners", appendix C:
an eval example is *dirty* when any of its N-grams occurs in any training document, *clean*
otherwise, and scores are reported on the clean subset too) with N fixed at 13 and the text
normalisation of lm-evaluation-harness (``lm_eval/decontamination/janitor.py``: ``Janitor``
lowercases, deletes ``string.punctuation``, then ``word_ngrams`` splits on whitespace).

Where ponder differs (docs/evaluation.md, "Contamination"):

* Normalisation also folds non-ASCII text: NFKC, Unicode lowercasing and deleting every Unicode
  punctuation character (lm-eval lowercases A-Z only and keeps a curly apostrophe, so
  ``Janet’s`` and ``Janet's`` would not match there).
* Short problems. A problem with fewer than N tokens has no N-gram, so lm-eval can never flag
  it. Here a problem of ``short_min`` <= k < N tokens is checked *whole*: flagged when its k
  normalised tokens occur contiguously in a training text; one under ``short_min`` tokens is
  reported ``too short`` (unchecked, counted clean as in lm-eval). ``short_min = N`` is
  lm-eval's behaviour. The default 8 is GPT-3's smallest N ("spurious collisions at lower
  values").
* Provenance: every problem gets its shared N-grams counted and the training file:line they
  came from (lm-eval keeps only the set of dirty document ids).
* N-grams are stored as Python ``hash`` values of the joined tokens (64 bits, one process),
  not strings: the eval side is indexed (a few ×10^5 hashes), the training side streamed
  through it, so memory is O(eval set) whatever the training size. A false match needs a 64-bit
  collision (about 10^-8 for 10^6 × 10^5 grams).

Inputs. Training data: JSONL files (SFT ``prompt``/``completion`` or ``messages``, task data,
anything with a text field; ``fields`` names them, else the first present of ``TEXT_FIELDS``
are used, every one found) or a task spec, whose ``train`` split is read (a GRPO prompt pool is
such a split). Eval: a task spec (its ``test`` split by default) or a JSONL file.
"""

from __future__ import annotations

import string
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ponder.io import json_objects

NGRAM = 13
#: fields read from a training row when none are named (every one present is used)
TEXT_FIELDS = ("text", "prompt", "question", "problem", "completion", "messages")
#: fields tried in order for an eval row's problem text when none is named
EVAL_FIELDS = ("problem", "question", "prompt", "text", "messages")
SHORT_MIN = 8  # GPT-3's smallest N
MAX_SOURCES = 20  # training lines listed per problem in the report (all are counted)
SOURCE_CAP = 1000  # training lines remembered per problem while scanning
CONTAMINATION = "contamination.json"

_ASCII_TABLE = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)


class ContaminationError(ValueError):
    """Unreadable training or eval data; the message names the file and line."""


def normalize(text: str) -> str:
    """lm-eval's normalisation (A-Z lowercased, ASCII punctuation deleted), extended to Unicode."""
    if text.isascii():
        return text.translate(_ASCII_TABLE)
    text = unicodedata.normalize("NFKC", text).lower().translate(_ASCII_TABLE)
    return "".join(ch for ch in text if ch.isascii() or not unicodedata.category(ch).startswith("P"))


def tokens(text: str) -> list[str]:
    """Normalised whitespace tokens: ``"Janet’s ducks, 16!"`` -> ``["janets", "ducks", "16"]``."""
    return normalize(text).split()


def gram_hashes(toks: Sequence[str], n: int) -> set[int]:
    """Hashes of the distinct n-grams of ``toks`` (none when it is shorter than n)."""
    return {hash(" ".join(toks[i:i + n])) for i in range(len(toks) - n + 1)}


# ---------------------------------------------------------------------------- reading


def _texts_of(value: Any, name: str, where: str) -> list[str]:
    """The text in one field: a string, a list of strings, or chat messages (their contents)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("content"), str):
                out.append(item["content"])
            elif isinstance(item, dict) and isinstance(item.get("content"), list):  # OpenAI content parts
                out += [p["text"] for p in item["content"] if isinstance(p, dict) and isinstance(p.get("text"), str)]
            else:
                raise ContaminationError(f"{where}: field {name!r} holds a {type(item).__name__}, not text or messages")
        return out
    raise ContaminationError(f"{where}: field {name!r} is a {type(value).__name__}, not text")


def row_texts(row: dict, fields: Sequence[str], where: str) -> list[str]:
    """Every text of a training row: the named ``fields`` present, else all of ``TEXT_FIELDS``."""
    names = [f for f in (fields or TEXT_FIELDS) if f in row]
    if not names:
        looked = ", ".join(fields or TEXT_FIELDS)
        hint = "" if fields else "; name the field with --field"
        raise ContaminationError(f"{where}: no text field (looked for {looked}){hint}")
    return [t for f in names for t in _texts_of(row[f], f, where)]


def _is_file_arg(spec: str) -> bool:
    return Path(spec).is_file() or spec.endswith((".jsonl", ".json")) or "/" in spec.split(":")[0]


def _task_examples(spec: str, split: str, what: str):
    from ponder.tasks import TaskError, get_task

    try:
        return get_task(spec).examples(split)
    except TaskError as e:
        raise ContaminationError(f"{what} {spec!r}: not a file, and not a task spec ({e})") from None


def training_texts(spec: str, fields: Sequence[str] = (), split: str = "train") -> Iterator[tuple[str, int, list[str]]]:
    """``(file, line, texts)`` per training row of a JSONL file, or of a task's ``split``."""
    if _is_file_arg(spec):
        if not Path(spec).is_file():
            raise ContaminationError(f"{spec}: no such training file")
        for n, row in json_objects(spec, ContaminationError):
            yield spec, n, row_texts(row, fields, f"{spec}:{n}")
        return
    for i, ex in enumerate(_task_examples(spec, split, "training data")):
        meta = ex.get("meta") or {}
        yield str(meta.get("source", f"{spec} ({split})")), int(meta.get("line", i + 1)), [ex["prompt"]]


@dataclass
class Problem:
    """One eval problem: its id and text, and what the scan found."""

    id: str
    text: str
    toks: list[str] = field(default_factory=list)
    check: str = "ngram"  # ngram | whole (short, matched as one k-gram) | too short
    grams: dict[int, str] = field(default_factory=dict)  # hash -> n-gram text (for the report)
    found: set[int] = field(default_factory=set)
    sources: dict[tuple[str, int], int] = field(default_factory=dict)  # (file, line) -> shared grams
    source_lines: int = 0


def eval_problems(spec: str, split: str = "test", field_name: str | None = None) -> list[Problem]:
    """The eval problems of a task spec (``split``) or a JSONL file (``field_name`` or the first
    of ``EVAL_FIELDS``; the id from ``id``/``unique_id``, else ``<file>:<line>``)."""
    if not _is_file_arg(spec):
        return [Problem(str(ex["id"]), ex["prompt"]) for ex in _task_examples(spec, split, "eval set")]
    if not Path(spec).is_file():
        raise ContaminationError(f"{spec}: no such eval file")
    out, seen = [], {}
    for n, row in json_objects(spec, ContaminationError):
        where = f"{spec}:{n}"
        names = [field_name] if field_name else EVAL_FIELDS
        name = next((f for f in names if f in row), None)
        if name is None:
            raise ContaminationError(f"{where}: no problem text field (looked for {', '.join(names)})"
                                     + ("" if field_name else "; name it with --eval-field"))
        text = "\n".join(_texts_of(row[name], name, where))
        pid = str(row.get("id", row.get("unique_id", where)))
        if pid in seen:  # results are keyed by id: two problems under one id would merge
            raise ContaminationError(f"{where}: duplicate id {pid!r} (first on line {seen[pid]})")
        seen[pid] = n
        out.append(Problem(pid, text))
    if not out:
        raise ContaminationError(f"{spec}: no eval problems")
    return out


# ---------------------------------------------------------------------------- the scan


@dataclass
class Overlap:
    """The result of a scan: per problem what was shared, and the settings that decided it."""

    problems: list[Problem]
    n: int
    min_overlap: int
    short_min: int
    train: list[dict]
    seconds: float

    def flagged(self, p: Problem) -> bool:
        if p.check == "whole":
            return bool(p.found)
        return p.check == "ngram" and len(p.found) >= self.min_overlap

    @property
    def flagged_ids(self) -> set[str]:
        return {p.id for p in self.problems if self.flagged(p)}

    def to_json(self, eval_source: str = "", split: str = "") -> dict:
        rows = []
        for p in self.problems:
            total = len(p.grams)
            example = next((p.grams[h] for h in p.grams if h in p.found), None)
            srcs = sorted(p.sources.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_SOURCES]
            rows.append({"id": p.id, "tokens": len(p.toks), "check": p.check, "ngrams": total,
                         "overlap": len(p.found), "share": len(p.found) / total if total else 0.0,
                         "flagged": self.flagged(p), "example": example, "source_lines": p.source_lines,
                         "sources": [{"file": f, "line": ln, "shared": k} for (f, ln), k in srcs]})
        return {
            "ngram": self.n, "min_overlap": self.min_overlap, "short_min": self.short_min,
            "normalisation": "NFKC, lowercase, punctuation deleted, whitespace tokens (lm-eval's Janitor, Unicode-wide)",
            "eval": {"source": eval_source, "split": split, "problems": len(self.problems)},
            "train": self.train,
            "flagged": sum(r["flagged"] for r in rows),
            "checked_whole": sum(p.check == "whole" for p in self.problems),
            "too_short": sum(p.check == "too short" for p in self.problems),
            "seconds": round(self.seconds, 3),
            "flagged_ids": [r["id"] for r in rows if r["flagged"]],
            "problems": rows,
        }


def _count_lines(spec: str) -> int | None:
    if not Path(spec).is_file():
        return None
    with open(spec, "rb") as f:
        return sum(1 for line in f if line.strip())


def scan(train: Sequence[str], problems: list[Problem], *, n: int = NGRAM, min_overlap: int = 1,
         short_min: int = SHORT_MIN, fields: Sequence[str] = (), train_split: str = "train",
         progress: bool = False, console=None) -> Overlap:
    """Index the ``problems``' n-grams, stream every training text through the index.

    Cost: one normalise + split + ``hash`` per training n-gram (and per k-gram for each length
    k of the short problems checked whole, at most n - short_min extra passes)."""
    if n < 1 or min_overlap < 1 or short_min < 1:
        raise ContaminationError(f"ngram, min_overlap and short_min must be >= 1, got {n}, {min_overlap}, {short_min}")
    if not train:
        raise ContaminationError("no training data given")
    t0 = time.perf_counter()
    index: dict[int, list[int]] = {}  # n-gram hash -> problems that have it
    short: dict[int, dict[int, list[int]]] = {}  # k -> whole-problem hash -> problems
    for i, p in enumerate(problems):
        p.toks = tokens(p.text)
        k = len(p.toks)
        if k >= n:
            p.grams = {hash(g): g for g in (" ".join(p.toks[j:j + n]) for j in range(k - n + 1))}
            for h in p.grams:
                index.setdefault(h, []).append(i)
        elif k >= short_min:
            p.check = "whole"
            whole = " ".join(p.toks)
            p.grams = {hash(whole): whole}
            short.setdefault(k, {}).setdefault(hash(whole), []).append(i)
        else:
            p.check = "too short"
    lookups = [(n, index)] + sorted(short.items())
    stats = []
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]overlap[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, disable=not progress, transient=True) as bar:
        for spec in train:
            job = bar.add_task(spec, total=_count_lines(spec))
            rows = texts = grams = 0
            for file, line, row in training_texts(spec, fields, train_split):
                rows += 1
                hit: dict[int, set[int]] = {}  # problem -> its distinct n-grams in this row
                for text in dict.fromkeys(row):  # a row repeating a text (question = problem) counts it once
                    toks = tokens(text)
                    texts += 1
                    grams += max(0, len(toks) - n + 1)
                    for k, lookup in lookups:
                        if len(toks) < k or not lookup:
                            continue
                        for h in gram_hashes(toks, k):
                            for i in lookup.get(h, ()):
                                problems[i].found.add(h)
                                hit.setdefault(i, set()).add(h)
                for i, shared in hit.items():
                    p = problems[i]
                    p.source_lines += 1
                    if len(p.sources) < SOURCE_CAP:  # boilerplate shared by every row must not grow without bound
                        p.sources[(file, line)] = len(shared)
                bar.advance(job)
            stats.append({"source": spec, "rows": rows, "texts": texts, "ngrams": grams})
    return Overlap(problems, n, min_overlap, short_min, stats, time.perf_counter() - t0)


def check(train: Sequence[str], eval_spec: str, *, split: str = "test", eval_field: str | None = None,
          **kw) -> Overlap:
    """``scan`` of the eval set named by ``eval_spec`` (task spec or JSONL file)."""
    return scan(train, eval_problems(eval_spec, split, eval_field), **kw)


# ---------------------------------------------------------------------------- in an eval run


def check_run(out: Path, train: Sequence[str], examples: Iterable[dict], task: str, split: str,
              progress: bool = False, console=None) -> set[str]:
    """The flagged problem ids of an eval run's ``examples``; writes ``out/contamination.json``."""
    from ponder.io import write_json_atomic

    result = scan(train, [Problem(str(e["id"]), e["prompt"]) for e in examples], progress=progress, console=console)
    write_json_atomic(out / CONTAMINATION, result.to_json(task, split))
    return result.flagged_ids


def clean_metrics(metrics: dict, flagged: set[str], train: Sequence[str]) -> dict:
    """pass@1 (95% interval as for the main metric) and maj@n on the clean and the flagged
    complete problems of ``metrics["per_problem"]``."""
    from ponder.evaluate.metrics import mean_ci

    def part(ids: list[str]) -> dict:
        pp = metrics["per_problem"]
        mean, low, high = mean_ci([pp[i]["c"] / pp[i]["n"] for i in ids])
        maj = [float(pp[i]["maj"]) for i in ids]
        return {"problems": len(ids), "pass@1": {"mean": mean, "low": low, "high": high},
                "maj@n": sum(maj) / len(maj) if maj else float("nan")}

    ids = list(metrics["per_problem"])
    return {"train": list(train), "ngram": NGRAM, "file": CONTAMINATION, "flagged_problems": len(flagged),
            "clean": part([i for i in ids if i not in flagged]), "flagged": part([i for i in ids if i in flagged])}


def report_lines(metrics: dict) -> list[str]:
    """The report's "Contamination" section (empty without a check)."""
    c = metrics.get("contamination")
    if not c:
        return []

    def row(name: str, part: dict) -> str:
        p = part["pass@1"]
        pct = lambda x: "–" if x != x else f"{100 * x:.1f}%"  # noqa: E731  (nan: no problems)
        return f"| {name} | {part['problems']} | {pct(p['mean'])} [{pct(p['low'])}, {pct(p['high'])}] | {pct(part['maj@n'])} |"

    return ["## Contamination", "",
            f"{c['flagged_problems']} problems share a word {c['ngram']}-gram (lm-eval's normalisation) with "
            f"{', '.join(f'`{t}`' for t in c['train'])}; per problem counts and training lines are in `{c['file']}`.", "",
            "| subset | problems | pass@1 [95% CI] | maj@n |", "|---|---|---|---|",
            row("all", {"problems": metrics["complete_problems"], "pass@1": metrics["pass@1"],
                        "maj@n": metrics["maj@k"][str(metrics["n"])]}),
            row("clean (no shared n-gram)", c["clean"]), row("flagged", c["flagged"]), ""]


def console_line(metrics: dict) -> str | None:
    """The eval console's line for the clean subset (None without a check)."""
    c = metrics.get("contamination")
    if not c:
        return None
    p = c["clean"]["pass@1"]
    if not c["clean"]["problems"]:
        return f"clean subset: empty, every problem shares a {c['ngram']}-gram with the training data ({c['file']})"
    return (f"clean subset (no {c['ngram']}-gram shared with the training data): pass@1 {100 * p['mean']:.1f}% "
            f"[95% CI {100 * p['low']:.1f}, {100 * p['high']:.1f}] over {c['clean']['problems']} problems; "
            f"{c['flagged_problems']} flagged ({c['file']})")
