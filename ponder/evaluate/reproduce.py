"""``ponder eval reproduce CARD``: recompute a card's inputs, name every difference, re-run, compare.

1. Read the card (``card.json``, or the run directory holding it) and rebuild its ``EvalConfig``;
   ``--model`` says where the model is now (another path, another server), ``--out`` where the
   new run goes (default: ``<run>-reproduce-<time>`` beside the original).
2. Load the model and recompute every hashable input (``ponder.evaluate.card.inputs``): weights,
   model config, tokenizer, chat template, thinking decision, data files, examples, rendered
   prompts, library versions, machine. Every difference is named on one line ("chat template
   differs", "weights differ: model.safetensors sha256 da973b98e38e → 0c1f…",
   "transformers 5.23.0 → 5.24.0"). Differences in what the model is given or how it is judged
   (weights, model config, tokenizer, chat template, thinking decision, data, examples, prompts)
   stop here unless ``allow_mismatch``; the environment (library versions, ponder commit,
   machine, an endpoint's address or ``/v1/models`` listing) is reported and the run goes on --
   whether it still reproduces is what the comparison says.
3. Run the same config into the new directory (a sweep: every budget) and compare each run with
   the original by ``ponder.evaluate.compare.compare_runs`` -- the paired bootstrap of
   ``ponder eval compare`` -- and sample by sample (same ``(id, sample)``: same completion? same
   seed?). Greedy or seeded local runs on the same machine and versions give identical samples.

Reproduced: no paired difference is significant at ``alpha`` and the new run had no failed
requests (with ``exact``: also every shared sample identical). ``reproduction.json`` in the new
run directory keeps the differences, the tests and the verdict.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

from ponder.config import from_dict
from ponder.evaluate.card import CARD, CardError, inputs, load_card
from ponder.evaluate.compare import compare_runs, describe_tests, render
from ponder.evaluate.harness import EvalConfig, load_model, run_eval
from ponder.evaluate.report import METRICS
from ponder.io import read_records, write_json_atomic

REPORT = "reproduction.json"


@dataclass
class Mismatch:
    """One recomputed input that differs from the card; ``blocking``: it changes what is generated or judged."""

    what: str
    message: str
    blocking: bool


@dataclass
class Reproduction:
    card: Path
    original: Path
    out: Path | None
    mismatches: list[Mismatch]
    comparisons: list[dict] = field(default_factory=list)  # per run: budget, test, identical, seeds_differ
    reproduced: bool = False
    reasons: list[str] = field(default_factory=list)


def _short(h: Any) -> str:
    return str(h)[:12] if h else "none"


def _model_mismatches(om: dict, nm: dict) -> list[Mismatch]:
    out = []
    if om.get("kind") != nm.get("kind"):
        return [Mismatch("model", f"model differs: {om.get('kind')} {om.get('spec')} → {nm.get('kind')} {nm.get('spec')}",
                         True)]
    if om.get("kind") == "local":
        ow, nw = om.get("weights") or {}, nm.get("weights") or {}
        for name in sorted(set(ow) | set(nw)):
            a, b = ow.get(name), nw.get(name)
            if a != b:
                change = "missing now" if b is None else "not in the card" if a is None else f"sha256 {_short(a)} → {_short(b)}"
                out.append(Mismatch("weights", f"weights differ: {name} {change}", True))
        if om.get("config_sha256") != nm.get("config_sha256"):
            out.append(Mismatch("model config", "model config.json differs (architecture, thinking start, …)", True))
        if om.get("path") != nm.get("path"):
            out.append(Mismatch("model path", f"model path: {om.get('path')} → {nm.get('path')}", False))
    elif om.get("kind") == "openai":
        if (om.get("model"), om.get("base_url")) != (nm.get("model"), nm.get("base_url")):
            out.append(Mismatch("endpoint", f"endpoint: {om.get('model')}@{om.get('base_url')} → "
                                            f"{nm.get('model')}@{nm.get('base_url')}", False))
        os_, ns = om.get("served") or {}, nm.get("served") or {}
        if os_ != ns:
            detail = (f"served ids {os_.get('ids')} → {ns.get('ids')}" if os_.get("ids") != ns.get("ids")
                      else "the model's entry changed" if os_.get("model") != ns.get("model")
                      else f"{os_.get('error') or 'listed'} → {ns.get('error') or 'listed'}")
            out.append(Mismatch("server", f"server's /v1/models differs: {detail}", False))
    return out


def _data_mismatches(od: dict, nd: dict) -> list[Mismatch]:
    out = []
    old_files, new_files = od.get("files") or [], nd.get("files") or []
    new_sha = {f["sha256"] for f in new_files}
    old_sha = {f["sha256"] for f in old_files}
    new_by_path = {f["path"]: f for f in new_files}
    old_paths = {f["path"] for f in old_files}
    for f in old_files:
        if f["sha256"] in new_sha:
            continue  # the same bytes, wherever they live now
        now = new_by_path.get(f["path"])
        out.append(Mismatch("data", f"data file differs: {f['path']} (sha256 {_short(f['sha256'])} → "
                                    f"{_short(now['sha256'])})" if now else f"data file missing: {f['path']}", True))
    for f in new_files:
        if f["sha256"] not in old_sha and f["path"] not in old_paths:
            out.append(Mismatch("data", f"data file not in the card: {f['path']}", True))
    if od.get("examples_sha256") != nd.get("examples_sha256"):
        out.append(Mismatch("examples", f"task examples differ ({od.get('examples')} → {nd.get('examples')} problems)",
                            True))
    return out


def mismatches(old: dict, new: dict) -> list[Mismatch]:
    """Every difference between a card's inputs and the recomputed ones, blocking ones first."""
    out = _model_mismatches(old.get("model") or {}, new.get("model") or {})
    ot, nt = old.get("tokenizer") or {}, new.get("tokenizer") or {}
    if ot.get("sha256") != nt.get("sha256"):
        out.append(Mismatch("tokenizer", f"tokenizer differs ({ot.get('file') or nt.get('file')} sha256 "
                                         f"{_short(ot.get('sha256'))} → {_short(nt.get('sha256'))})", True))
    if old.get("chat_template_sha256") != new.get("chat_template_sha256"):
        out.append(Mismatch("chat template", f"chat template differs (sha256 {_short(old.get('chat_template_sha256'))} "
                                             f"→ {_short(new.get('chat_template_sha256'))})", True))
    oth, nth = old.get("thinking") or {}, new.get("thinking") or {}
    if (oth.get("mode"), oth.get("start")) != (nth.get("mode"), nth.get("start")):
        out.append(Mismatch("thinking", f"thinking decision differs: {oth.get('mode')}/{oth.get('start')} → "
                                        f"{nth.get('mode')}/{nth.get('start')} ({nth.get('reason')})", True))
    out += _data_mismatches(old.get("data") or {}, new.get("data") or {})
    op, np_ = (old.get("prompts") or {}).get("per_problem") or {}, (new.get("prompts") or {}).get("per_problem") or {}
    differ = [i for i in op if np_.get(i) != op[i]] + [i for i in np_ if i not in op]
    if differ:
        out.append(Mismatch("prompts", f"rendered prompts differ for {len(differ)} of {len(op)} problems "
                                       f"(first: {differ[0]})", True))
    ol, nl = old.get("libraries") or {}, new.get("libraries") or {}
    for name in [*ol, *(k for k in nl if k not in ol)]:
        if name in ol and name in nl and ol[name] != nl[name]:
            out.append(Mismatch("library", f"{name} {ol[name] or 'not installed'} → {nl[name] or 'not installed'}",
                                False))
    if old.get("python") != new.get("python"):
        out.append(Mismatch("python", f"python {old.get('python')} → {new.get('python')}", False))
    og, ng = (old.get("ponder") or {}).get("git") or {}, (new.get("ponder") or {}).get("git") or {}
    if og and ng and (og.get("commit"), og.get("dirty")) != (ng.get("commit"), ng.get("dirty")):
        out.append(Mismatch("ponder", f"ponder commit {og['commit'][:10]}{' (dirty)' if og.get('dirty') else ''} → "
                                      f"{ng['commit'][:10]}{' (dirty)' if ng.get('dirty') else ''}", False))
    om, nm = old.get("machine") or {}, new.get("machine") or {}
    for key in ("platform", "cpu_count", "torch_threads"):
        if key in om and om.get(key) != nm.get(key):
            out.append(Mismatch("machine", f"{key.replace('_', ' ')} {om.get(key)} → {nm.get(key)}", False))
    return sorted(out, key=lambda m: not m.blocking)


def config_of(card: dict, where: Path, model: str | None, out: Path) -> EvalConfig:
    """The card's ``EvalConfig`` with the model and run directory of the reproduction."""
    data = {**card["config"], "out": str(out), "resume": False}
    if model:
        data["model"] = model
    elif (card.get("model") or {}).get("kind") == "unknown":
        raise CardError(f"{where}: the card's model {card['config'].get('model')!r} is neither a checkpoint directory "
                        "nor an endpoint (the run was given a backend in code): pass --model")
    try:
        return from_dict(EvalConfig, data, where=f"{where} config")
    except ValueError as e:
        raise CardError(str(e)) from None


def _pairs(cfg: EvalConfig, original: Path, out: Path) -> list[tuple[int | None, Path, Path]]:
    if cfg.budgets:
        return [(b, original / f"budget-{b}", out / f"budget-{b}") for b in cfg.budgets]
    return [(None, original, out)]


def same_samples(a: Path, b: Path) -> dict[str, int]:
    """How many ``(id, sample)`` pairs both runs have, how many have identical completions and seeds."""
    ra = {(r["id"], r["sample"]): r for r in read_records(a / "samples.jsonl")}
    rb = {(r["id"], r["sample"]): r for r in read_records(b / "samples.jsonl")}
    shared = ra.keys() & rb.keys()
    return {"shared": len(shared), "identical": sum(ra[k]["completion"] == rb[k]["completion"] for k in shared),
            "seeds_differ": sum(ra[k].get("seed") != rb[k].get("seed") for k in shared)}


def _fmt_pct(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def reproduce(card_path: str | Path, *, model: str | None = None, out: str | Path | None = None,
              allow_mismatch: bool = False, exact: bool = False, alpha: float = 0.05, console=None,
              progress: bool = True) -> Reproduction:
    """Steps 1-3 of the module docstring; raises ``CardError`` for bad input or blocking differences."""
    from ponder.tasks import get_task

    card, original = load_card(card_path)
    where = original / CARD
    stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    out = Path(out) if out else original.parent / f"{original.name}-reproduce-{stamp}"
    if out.resolve() == original.resolve():
        raise CardError(f"--out {out} is the original run: give a new directory")
    if (out / "config.json").exists():
        raise CardError(f"{out} already holds a run: choose another --out")
    cfg = config_of(card, where, model, out)
    for _, orig, _ in _pairs(cfg, original, out):
        if not (orig / METRICS).is_file():
            raise CardError(f"{orig}: no {METRICS} beside the card; reproduce compares with the original run, so keep "
                            "card.json in its run directory")
    task = get_task(cfg.task)
    examples = list(islice(task.examples(cfg.split), cfg.limit))
    backend = load_model(cfg.model, cfg.thinking, concurrency=cfg.concurrency, max_retries=cfg.retries,
                         timeout=cfg.timeout, extra_body=cfg.extra_body or None, tokenizer=cfg.tokenizer or None)
    found = mismatches(card, inputs(cfg, task, examples, backend))
    rep = Reproduction(where, original, None, found)
    say = console.print if console is not None else (lambda *a, **k: None)
    for m in found:
        say(f"{'[red]differs[/]' if m.blocking else '[yellow]note[/]'}: {m.message}", highlight=False, soft_wrap=True)
    blocking = [m for m in found if m.blocking]
    if blocking and not allow_mismatch:
        raise CardError(f"{len(blocking)} input(s) that change generation differ from {where}: nothing was run "
                        "(pass --allow-mismatch to run anyway)")
    if not found:
        say("inputs: weights, tokenizer, chat template, data, prompts and versions match the card", highlight=False)
    res = run_eval(cfg, backend, progress=progress, console=console)
    rep.out = res.out
    greedy_or_seeded = cfg.temperature == 0 or backend.capabilities.local
    for budget, orig, new in _pairs(cfg, original, res.out):
        result = compare_runs([orig, new], alpha=alpha)
        if console is not None:
            render(result, console)
        test = result["tests"][0]
        samples = same_samples(orig, new)
        rep.comparisons.append({"budget": budget, "original": str(orig), "new": str(new), "test": test,
                                "summary": describe_tests(result)[0], **samples})
        label = f"budget {budget}: " if budget is not None else ""
        if test["significant"]:
            rep.reasons.append(f"{label}pass@1 differs significantly ({100 * test['pass@1_diff']:+.1f} pt, "
                               f"p={test['p_bootstrap']:.3g})")
        if exact and samples["identical"] < samples["shared"]:
            rep.reasons.append(f"{label}{samples['shared'] - samples['identical']} of {samples['shared']} samples "
                               "differ (--exact)")
        o, n = json.loads((orig / METRICS).read_text()), json.loads((new / METRICS).read_text())
        kind = "greedy/seeded local run: " if greedy_or_seeded else ""
        say(f"{label}pass@1 {_fmt_pct(o['pass@1']['mean'])} → {_fmt_pct(n['pass@1']['mean'])}; {kind}"
            f"{samples['identical']}/{samples['shared']} samples identical"
            + (f"; {samples['seeds_differ']} with another seed (the original was resumed?)" if samples["seeds_differ"]
               else ""), highlight=False)
    failed = res.metrics.get("failed_requests") or sum(r.get("failed_requests", 0) for r in res.metrics.get("sweep", []))
    if failed:
        rep.reasons.append(f"{failed} request(s) of the new run failed")
    rep.reproduced = not rep.reasons
    write_json_atomic(res.out / REPORT, {
        "card": str(where), "original": str(original), "out": str(res.out), "reproduced": rep.reproduced,
        "reasons": rep.reasons, "mismatches": [asdict(m) for m in found], "comparisons": rep.comparisons,
        "alpha": alpha, "exact": exact})
    return rep
