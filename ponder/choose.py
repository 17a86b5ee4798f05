"""Choosing a reasoning model on evidence: a catalog of declared traits, your measured runs, and a
weighted decision matrix with explicit normalisation and explicit missing values.

Catalog. ``ponder/catalog/*.yaml`` holds one model per file (user dirs/files add more; a user
entry with the same name replaces the built-in one). Every declared trait names its source::

    name: DeepSeek-R1
    provider: DeepSeek
    architecture: Mixture-of-Experts transformer, 671B total / 37B active parameters
    open_weights: true
    licence: MIT
    context_length: 131072          # tokens
    reasoning_controls: []          # knobs the API exposes for thinking (effort, budget…)
    price: {input_per_m: 0.55, output_per_m: 2.19, as_of: 2025-01}   # USD per million tokens
    benchmarks: {aime2024: 79.8, math500: 97.3}                       # % pass@1 as published
    strengths: [...]
    aliases: [deepseek-reasoner]    # names an eval run's model may carry
    sources: {architecture: URL, licence: URL, context_length: URL, price: URL, benchmarks: URL, ...}

``null`` (or an absent key) means *unknown*: it is never read as 0.

Factors (``--weights name=w``): each maps a model to a number or None (missing).

========== ==================================================== =========== =========
factor     value                                                better      scale
========== ==================================================== =========== =========
accuracy   published MATH-500 pass@1 (%)                        higher      linear
aime       published AIME 2024 pass@1 (%)                       higher      linear
measured   pass@1 measured by ``ponder eval`` (``--runs``)      higher      linear
cost       output price, USD per million tokens                 lower       log10
open       open weights (1) or not (0)                          higher      linear
context    context length in tokens                             higher      log10
controls   number of reasoning controls the API exposes         higher      linear
========== ==================================================== =========== =========

Output price stands for cost because a reasoning model's bill is dominated by its thinking
tokens, which are billed as output. Cost and context span orders of magnitude, so they are
compared as logarithms (a model 10× cheaper gains as much as one 10× dearer loses).

Normalisation (per factor, over the models that have a value, "lower is better" factors negated
first): ``minmax`` (x - min)/(max - min) in [0, 1] (all equal → 1); ``zscore`` (x - mean)/sd
(population sd; sd = 0 → 0); ``rank`` (average rank - 1)/(m - 1) in [0, 1].

Score: ``Σ_f w_f · z_f / Σ_f w_f`` over the factors the model *has*; a missing factor is left
out and the weights renormalised, the model is flagged with what is missing, and ``coverage``
(the share of the total weight that was available) is shown so a high score on thin evidence is
visible.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"
NORMS = ("minmax", "zscore", "rank")
#: trait -> the key in ``sources`` that must back it when it is declared
SOURCED = {"architecture": "architecture", "open_weights": "licence", "licence": "licence",
           "context_length": "context_length", "reasoning_controls": "reasoning_controls",
           "price": "price", "benchmarks": "benchmarks"}


class ChooseError(ValueError):
    """Bad catalog entry, weights or options; the message names the file or factor."""


@dataclass(frozen=True)
class Factor:
    name: str
    help: str
    get: Callable[[dict], float | None]
    higher_is_better: bool = True
    log: bool = False
    unit: str = ""


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, (int, float)) and not math.isnan(x):
        return float(x)
    return None


def _bench(key: str) -> Callable[[dict], float | None]:
    return lambda m: _num((m.get("benchmarks") or {}).get(key))


FACTORS: dict[str, Factor] = {f.name: f for f in (
    Factor("accuracy", "published MATH-500 pass@1 (%)", _bench("math500"), unit="%"),
    Factor("aime", "published AIME 2024 pass@1 (%)", _bench("aime2024"), unit="%"),
    Factor("measured", "pass@1 measured by ponder eval (%)", lambda m: _num((m.get("measured") or {}).get("pass@1")), unit="%"),
    Factor("cost", "output price, USD per million tokens (log scale, lower is better)",
           lambda m: _num((m.get("price") or {}).get("output_per_m")), higher_is_better=False, log=True, unit="$/M"),
    Factor("open", "open weights (1) or not (0)",
           lambda m: None if m.get("open_weights") is None else float(bool(m["open_weights"]))),
    Factor("context", "context length in tokens (log scale)", lambda m: _num(m.get("context_length")), log=True),
    Factor("controls", "number of reasoning controls exposed",
           lambda m: None if m.get("reasoning_controls") is None else float(len(m["reasoning_controls"]))),
)}


# ---------------------------------------------------------------------------- catalog


def _check_entry(entry: Any, where: str) -> dict:
    if not isinstance(entry, dict):
        raise ChooseError(f"{where}: a catalog entry must be a mapping, got {type(entry).__name__}")
    if not isinstance(entry.get("name"), str) or not entry["name"].strip():
        raise ChooseError(f"{where}: every model needs a non-empty 'name'")
    sources = entry.get("sources") or {}
    if not isinstance(sources, dict):
        raise ChooseError(f"{where}: 'sources' must map traits to URLs or citations")
    for trait, key in SOURCED.items():
        value = entry.get(trait)
        declared = value is not None and value != {} and not (trait == "benchmarks" and not any(
            v is not None for v in value.values()))
        if declared and not sources.get(key):
            raise ChooseError(f"{where}: model {entry['name']!r} declares {trait!r} without sources.{key}")
    for key in ("context_length",):
        if entry.get(key) is not None and _num(entry[key]) is None:
            raise ChooseError(f"{where}: {entry['name']}: {key} must be a number or null, got {entry[key]!r}")
    price = entry.get("price")
    if price is not None:
        if not isinstance(price, dict):
            raise ChooseError(f"{where}: {entry['name']}: price must be a mapping (input_per_m, output_per_m)")
        for k in ("input_per_m", "output_per_m"):
            if price.get(k) is not None and (_num(price[k]) is None or price[k] < 0):
                raise ChooseError(f"{where}: {entry['name']}: price.{k} must be a number >= 0 or null, got {price[k]!r}")
    for k, v in (entry.get("benchmarks") or {}).items():
        if v is not None and (_num(v) is None or not 0 <= v <= 100):
            raise ChooseError(f"{where}: {entry['name']}: benchmarks.{k} must be a percentage 0..100 or null, got {v!r}")
    if entry.get("reasoning_controls") is not None and not isinstance(entry["reasoning_controls"], list):
        raise ChooseError(f"{where}: {entry['name']}: reasoning_controls must be a list (empty: none)")
    return {**entry, "catalog_file": where}


def _yaml_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml")))
        elif p.is_file():
            files.append(p)
        else:
            raise ChooseError(f"{p}: no such catalog file or directory")
    return files


def load_catalog(extra: Iterable[Path] = (), builtin: bool = True) -> list[dict]:
    """Every catalog model: the built-in ones, then user files (same name replaces)."""
    models: dict[str, dict] = {}
    for f in _yaml_files(([CATALOG_DIR] if builtin else []) + list(extra)):
        try:
            data = yaml.safe_load(f.read_text())
        except yaml.YAMLError as e:
            raise ChooseError(f"{f}: invalid YAML ({e})") from None
        entries = data.get("models") if isinstance(data, dict) and "models" in data else [data]
        if not isinstance(entries, list):
            raise ChooseError(f"{f}: 'models' must be a list of model entries")
        for i, e in enumerate(entries):
            m = _check_entry(e, f"{f}" + (f"[{i}]" if len(entries) > 1 else ""))
            models[m["name"].lower()] = m
    return list(models.values())


# ---------------------------------------------------------------------------- runs


def _run_dirs(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if (p / "metrics.json").is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(m.parent for m in p.rglob("metrics.json"))
        else:
            raise ChooseError(f"{p}: not an eval run or a folder of runs")
    return found


def model_label(spec: str) -> str:
    """A display name for an eval run's model spec (``openai:o3-mini@http://…`` → ``o3-mini``)."""
    if spec.startswith("openai:"):
        return spec[len("openai:"):].rsplit("@", 1)[0]
    return Path(spec.rstrip("/")).name or spec


def merge_runs(models: list[dict], paths: Iterable[Path], task: str | None = None) -> list[dict]:
    """Fill ``measured`` from eval runs. A run's model matches a catalog model by name or alias
    (case-insensitive); an unmatched run adds its own row. Several runs of one model: the one
    with the most problems counts (all are listed in ``measured.runs``)."""
    out = [dict(m) for m in models]
    index = {}
    for m in out:
        for a in [m["name"], *(m.get("aliases") or [])]:
            index[str(a).lower()] = m
    dirs = _run_dirs(paths)
    used = 0
    for d in dirs:
        met = json.loads((d / "metrics.json").read_text())
        if "sweep" in met or "per_problem" not in met:
            continue  # a budget sweep's root: its budget-<B>/ runs are picked up themselves
        if task is not None and met.get("task") != task:
            continue
        used += 1
        label = model_label(met["model"])
        m = index.get(label.lower()) or index.get(met["model"].lower())
        if m is None:
            local = not met["model"].startswith("openai:")
            m = {"name": label, "provider": "your run", "open_weights": True if local else None,
                 "catalog_file": str(d), "sources": {"measured": str(d)}}
            out.append(m)
            index[label.lower()] = m
        entry = {"pass@1": 100 * met["pass@1"]["mean"], "task": met["task"], "problems": met["complete_problems"],
                 "run": str(d)}
        prev = m.get("measured")
        runs = (prev or {}).get("runs", []) + [str(d)]
        if prev is None or entry["problems"] > prev["problems"]:
            m["measured"] = {**entry, "runs": runs}
        else:
            prev["runs"] = runs
        m.setdefault("sources", {})["measured"] = m["measured"]["run"]
    if not used:
        raise ChooseError("no usable eval run found in --runs" + (f" for task {task!r}" if task else ""))
    return out


# ---------------------------------------------------------------------------- matrix


def parse_weights(spec: str | dict) -> dict[str, float]:
    """``"accuracy=3,cost=2,open=1"`` → ``{"accuracy": 3.0, …}``; unknown factors are an error."""
    items = spec.items() if isinstance(spec, dict) else (
        item.split("=", 1) if "=" in item else (item, None) for item in str(spec).split(",") if item.strip())
    weights: dict[str, float] = {}
    for name, value in items:
        name = name.strip()
        if name not in FACTORS:
            raise ChooseError(f"unknown factor {name!r}; factors: {', '.join(FACTORS)}")
        try:
            w = float(value)
        except (TypeError, ValueError):
            raise ChooseError(f"weight of {name!r} must be a number (name=weight), got {value!r}") from None
        if w < 0 or math.isnan(w):
            raise ChooseError(f"weight of {name!r} must be >= 0, got {w}")
        weights[name] = w
    if not weights or sum(weights.values()) == 0:
        raise ChooseError("give at least one factor with a positive weight, e.g. accuracy=3,cost=2,open=1")
    return weights


def normalise(values: dict[str, float], method: str) -> dict[str, float]:
    """Normalise ``{model: value}`` (higher = better) by ``method`` (module docstring)."""
    if method not in NORMS:
        raise ChooseError(f"unknown normalisation {method!r}; choose {', '.join(NORMS)}")
    if not values:
        return {}
    xs = list(values.values())
    if method == "minmax":
        lo, hi = min(xs), max(xs)
        return {k: 1.0 if hi == lo else (v - lo) / (hi - lo) for k, v in values.items()}
    if method == "zscore":
        mean = sum(xs) / len(xs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
        return {k: 0.0 if sd == 0 else (v - mean) / sd for k, v in values.items()}
    ordered = sorted(xs)
    m = len(xs)

    def avg_rank(v: float) -> float:  # 1-based average rank of ties
        first = ordered.index(v)
        last = m - 1 - ordered[::-1].index(v)
        return (first + last) / 2 + 1

    return {k: 1.0 if m == 1 else (avg_rank(v) - 1) / (m - 1) for k, v in values.items()}


@dataclass
class Matrix:
    """The decision matrix: raw values, normalised values, scores, coverage and what is missing."""

    weights: dict[str, float]
    norm: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # sorted best first
    min_coverage: float = 0.5

    def to_frame(self):
        """A pandas DataFrame (one row per model) for notebooks."""
        import pandas as pd

        recs = []
        for r in self.rows:
            rec = {"rank": r["rank"], "model": r["model"], "score": r["score"], "coverage": r["coverage"],
                   "missing": ", ".join(r["missing"])}
            for f in self.weights:
                rec[f] = r["raw"][f]
                rec[f"{f} (norm)"] = r["norm"][f]
            recs.append(rec)
        return pd.DataFrame(recs).set_index("model")


def build_matrix(models: list[dict], weights: dict[str, float], norm: str = "minmax",
                 min_coverage: float = 0.5) -> Matrix:
    """Score every model on the weighted, normalised factors (missing values excluded + flagged).

    Models whose ``coverage`` is below ``min_coverage`` keep their score but are not ranked:
    they are listed after the ranked ones (rank None), since a score from a sliver of the
    weights is not comparable with one from all of them.
    """
    if not 0 <= min_coverage <= 1:
        raise ChooseError(f"min_coverage must be in [0, 1], got {min_coverage}")
    if norm not in NORMS:
        raise ChooseError(f"unknown normalisation {norm!r}; choose {', '.join(NORMS)}")
    if not models:
        raise ChooseError("no models to compare")
    raw = {m["name"]: {f: FACTORS[f].get(m) for f in weights} for m in models}
    normed: dict[str, dict[str, float | None]] = {m["name"]: {} for m in models}
    for f in weights:
        fac = FACTORS[f]
        present = {}
        for name, vals in raw.items():
            v = vals[f]
            if v is None:
                continue
            if fac.log:
                v = math.log10(max(v, 1e-3))
            present[name] = v if fac.higher_is_better else -v
        z = normalise(present, norm)
        for name in raw:
            normed[name][f] = z.get(name)
    total = sum(weights.values())
    rows = []
    for m in models:
        name = m["name"]
        have = [f for f in weights if normed[name][f] is not None and weights[f] > 0]
        wsum = sum(weights[f] for f in have)
        score = sum(weights[f] * normed[name][f] for f in have) / wsum if wsum else None
        rows.append({"model": name, "provider": m.get("provider", ""), "raw": raw[name], "norm": normed[name],
                     "score": score, "coverage": wsum / total,
                     "missing": [f for f in weights if normed[name][f] is None and weights[f] > 0],
                     "sources": m.get("sources", {})})
    ranked = lambda r: r["score"] is not None and r["coverage"] >= min_coverage - 1e-12  # noqa: E731
    rows.sort(key=lambda r: (not ranked(r), r["score"] is None, -(r["score"] or 0.0), r["model"].lower()))
    for i, r in enumerate(rows, 1):
        r["rank"] = i if ranked(r) else None
    return Matrix(dict(weights), norm, rows, min_coverage)


# ---------------------------------------------------------------------------- output


def _raw(f: str, v: float | None) -> str:
    if v is None:
        return "missing"
    if f == "open":
        return "yes" if v else "no"
    if f == "context":
        return f"{v / 1000:,.0f}k"
    if f == "cost":
        return f"${v:g}"
    return f"{v:g}"


def _columns(matrix: Matrix) -> list[str]:
    return ["rank", "model", *(f"{f} (w={matrix.weights[f]:g})" for f in matrix.weights), "score", "coverage", "missing"]


def _cells(matrix: Matrix, r: dict) -> list[str]:
    cells = [str(r["rank"]) if r["rank"] else "–", r["model"]]
    for f in matrix.weights:
        z = r["norm"][f]
        cells.append(_raw(f, r["raw"][f]) + ("" if z is None else f" ({z:.2f})"))
    cells += ["–" if r["score"] is None else f"{r['score']:.3f}", f"{100 * r['coverage']:.0f}%",
              ", ".join(r["missing"]) or ""]
    return cells


def describe(matrix: Matrix) -> str:
    return (f"normalisation: {matrix.norm}; cells are raw value (normalised); score = weighted mean of the "
            "normalised factors a model has; missing factors are excluded and flagged, weights renormalised; "
            f"models with coverage < {100 * matrix.min_coverage:.0f}% are listed unranked (–)")


def render(matrix: Matrix, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title="decision matrix", caption=describe(matrix))
    longest = max((len(r["model"]) for r in matrix.rows), default=5)
    for c in _columns(matrix):  # model names are never cut: the other columns wrap instead
        t.add_column(c, justify="left" if c in ("model", "missing") else "right",
                     min_width=longest if c == "model" else None, no_wrap=c == "model")
    for r in matrix.rows:
        cells = _cells(matrix, r)
        cells[-1] = f"[yellow]{cells[-1]}[/]" if cells[-1] else ""
        t.add_row(*cells)
    console.print(t)


def to_csv(matrix: Matrix) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "model", *(x for f in matrix.weights for x in (f, f"{f}_norm")), "score", "coverage",
                "missing", "norm"])
    for r in matrix.rows:
        w.writerow(["" if r["rank"] is None else r["rank"], r["model"], *(x for f in matrix.weights for x in (
            "" if r["raw"][f] is None else r["raw"][f], "" if r["norm"][f] is None else round(r["norm"][f], 6))),
            "" if r["score"] is None else round(r["score"], 6), round(r["coverage"], 6), ";".join(r["missing"]),
            matrix.norm])
    return buf.getvalue()


def to_markdown(matrix: Matrix) -> str:
    cols = _columns(matrix)
    lines = [f"_{describe(matrix)}_", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in _cells(matrix, r)) + " |" for r in matrix.rows]
    return "\n".join(lines) + "\n"
