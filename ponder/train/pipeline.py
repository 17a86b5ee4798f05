"""Recipes: a YAML chain of stages run by ``ponder run RECIPE``, resumable stage by stage.

A recipe is a YAML mapping. Five top-level keys are settings of the whole recipe; every other key
is a stage, run in file order::

    description: base -> GRPO (DeepSeek-R1-Zero)
    out: runs/r1-zero          # stage S writes <out>/S
    task: addition:digits=3    # default `task` of every stage that has one and does not set it
    seed: 0                    # default `seed` of every stage that has one and does not set it
    threads: 1                 # (optional) default `threads` likewise (torch CPU threads; 0 = auto)
    base:
      kind: pretrain           # pretrain | sft | grpo | sample | distill | references | report
      preset: micro
      steps: 300
    grpo:                      # `kind` may be left out when the stage name is a kind
      model: "@base"           # "@S": the output of the earlier stage S
      steps: 150

A stage's other keys are the fields of its kind's config dataclass (``ponder train pretrain
--help`` lists them; unknown keys are an error naming the stage and the valid keys). ``out`` is
set by the pipeline. ``@S`` is S's final checkpoint directory for a model stage (pretrain, sft,
grpo, distill) and its JSONL file for a data stage (sample, references).

Overrides: ``--set grpo.steps=50`` sets a stage field, ``--set out=runs/x`` a recipe setting;
values are YAML scalars.

Resume and records: before a stage runs, its resolved config (references replaced by paths) is
written to ``<out>/<S>/ponder_stage.json`` -- beside the checkpoint that each stage saves with its
own ``final/ponder_config.json`` -- and the whole resolved recipe to ``<out>/recipe.resolved.yaml``.
A stage that finished is skipped; one that was killed resumes from its last checkpoint (every stage
resumes itself). Re-running a finished or half-finished stage with *different* settings is an
error that names the changed fields: its outputs would otherwise silently mix two configurations.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import yaml

from ponder.config import ConfigError, apply_overrides, from_dict, load_yaml
from ponder.io import write_json_atomic
from ponder.train.checkpoint import is_done

RECIPE_KEYS = ("description", "out", "task", "seed", "threads")
STAGE_FILE = "ponder_stage.json"
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


class PipelineError(ValueError):
    """A recipe cannot run as written; the message names the recipe key or stage."""


# --------------------------------------------------------------------------- stage kinds


@dataclass(frozen=True)
class Kind:
    """How to build and run one kind of stage.

    config: "module:Class" (imported on first use) or the class; runner: "module:function" or the
    function (called with the config); data: the stage writes a JSONL file ``<stage dir>/<data>``
    instead of a model ``<stage dir>/final``.
    """

    config: str | type
    runner: str | Callable[[Any], Any]
    data: str | None = None

    def load(self) -> tuple[type, Callable[[Any], Any]]:
        def get(ref):
            if not isinstance(ref, str):
                return ref
            mod, attr = ref.split(":")
            return getattr(importlib.import_module(mod), attr)

        return get(self.config), get(self.runner)


KINDS: dict[str, Kind] = {
    "pretrain": Kind("ponder.train.pretrain:PretrainConfig", "ponder.train.pretrain:run"),
    "sft": Kind("ponder.train.sft:SFTConfig", "ponder.train.sft:run"),
    "grpo": Kind("ponder.train.grpo:GRPOConfig", "ponder.train.grpo:run"),
    "distill": Kind("ponder.train.distill:DistillConfig", "ponder.train.distill:run"),
    "sample": Kind("ponder.train.sample:SampleConfig", "ponder.train.sample:run", data="samples.jsonl"),
    "references": Kind("ponder.train.references:ReferencesConfig", "ponder.train.references:run",
                       data="references.jsonl"),
    # held-out before/after evaluation + GRPO curves; named by string (imported when run), as the
    # evaluation layer sits beside this one rather than under it
    "report": Kind("ponder.evaluate.recipe_report:ReportConfig", "ponder.evaluate.recipe_report:run",
                   data="report.md"),
}


@dataclass
class Stage:
    """One resolved stage: its name, kind, config object and where it writes."""

    name: str
    kind: str
    config: Any
    dir: Path
    output: Path

    def done(self) -> bool:
        k = KINDS[self.kind]
        if k.data is None:
            return is_done(self.dir)
        if self.kind == "sample":
            from ponder.train.sample import is_done as sample_done

            return sample_done(self.output)
        return self.output.is_file()


# --------------------------------------------------------------------------- loading


def find_recipe(recipe: str | Path) -> Path:
    """A recipe path, or a name in ``recipes/`` (``r1`` -> recipes/r1.yaml)."""
    p = Path(recipe)
    if p.is_file():
        return p
    for cand in (RECIPES_DIR / f"{recipe}.yaml", RECIPES_DIR / str(recipe)):
        if cand.is_file():
            return cand
    known = ", ".join(sorted(x.stem for x in RECIPES_DIR.glob("*.yaml"))) if RECIPES_DIR.is_dir() else "none"
    raise PipelineError(f"recipe {str(recipe)!r}: no such file and not a recipe name (known: {known})")


def load_recipe(recipe: str | Path | dict, overrides: list[str] | None = None) -> dict[str, Any]:
    """The recipe mapping (from a name, a path, or a mapping) with ``key=value`` overrides applied."""
    data = dict(recipe) if isinstance(recipe, dict) else load_yaml(find_recipe(recipe))
    return apply_overrides(data, list(overrides or []))


def resolve(data: dict[str, Any]) -> list[Stage]:
    """Every stage's config, with ``@stage`` references, ``out``, and recipe defaults filled in."""
    root = data.get("out")
    if not root or not isinstance(root, str):
        raise PipelineError("recipe: `out` (the run directory) must be set, e.g. out: runs/r1")
    root = Path(root)
    stages: list[Stage] = []
    outputs: dict[str, Path] = {}
    for name, spec in data.items():
        if name in RECIPE_KEYS:
            continue
        if not isinstance(spec, dict):
            raise PipelineError(f"recipe: {name!r} is neither a recipe setting ({', '.join(RECIPE_KEYS)}) "
                                "nor a stage mapping")
        spec = dict(spec)
        kind = spec.pop("kind", name if name in KINDS else None)
        if kind not in KINDS:
            have = ", ".join(n for n in data if n not in RECIPE_KEYS)
            raise PipelineError(f"stage {name!r}: kind {kind!r} is not one of {', '.join(KINDS)} "
                                f"(stages in this recipe: {have})")
        cls, _ = KINDS[kind].load()
        names = {f.name for f in fields(cls)}
        for key in ("task", "seed", "threads"):
            if key in names and key not in spec and key in data:
                spec[key] = data[key]
        for key, value in spec.items():
            if isinstance(value, str) and value.startswith("@"):
                ref = value[1:]
                if ref not in outputs:
                    raise PipelineError(f"stage {name!r}: {key}: {value} does not name an earlier stage "
                                        f"(earlier: {', '.join(outputs) or 'none'})")
                spec[key] = str(outputs[ref])
        d = root / name
        output = d / KINDS[kind].data if KINDS[kind].data else d / "final"
        spec["out"] = str(output if KINDS[kind].data else d)
        try:
            cfg = from_dict(cls, spec, where=f"stage {name}")
        except ConfigError as e:
            raise PipelineError(str(e)) from None
        stages.append(Stage(name, kind, cfg, d, output))
        outputs[name] = output
    if not stages:
        raise PipelineError("recipe: no stages")
    return stages


def set_threads(threads: str | int = "auto") -> int:
    """torch CPU threads for what runs in this process (sampling, evaluation); returns the count.

    ``auto`` applies ``ponder.threads.set_threads(0)`` (torch's count cut to the
    cores no other job is running on); each training stage applies its own ``threads`` field the same
    way when it starts. An explicit ``N`` is used here and, through the recipe setting
    ``threads``, becomes every stage's default.
    """
    from ponder.threads import set_threads as apply

    if threads == "auto":
        return apply(0)
    try:
        n = int(threads)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise PipelineError(f"threads must be 'auto' or a positive integer, got {threads!r}")
    return apply(n)


def quiet_progress_bars() -> None:
    """Silence the per-file tqdm bars of datasets and the hub ("Writing model shards", "Tokenizing
    train dataset"): a recipe prints one rich bar per stage instead."""
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover - hub is a transformers dependency
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


def _record(stage: Stage) -> dict[str, Any]:
    return json.loads(json.dumps({"kind": stage.kind, "config": asdict(stage.config)}, default=str))


def check_record(stage: Stage) -> None:
    """Refuse to continue a stage whose saved config differs from the resolved one."""
    f = stage.dir / STAGE_FILE
    if not f.is_file():
        return
    old, new = json.loads(f.read_text()), _record(stage)
    if old == new:
        return
    oc, nc = old.get("config", {}), new["config"]
    # a field added to the stage's config since the record was written, left at its default, is no change
    defaults = _record(Stage(stage.name, stage.kind, type(stage.config)(**{
        k: v for k, v in asdict(stage.config).items() if k in oc}), stage.dir, stage.output))["config"]
    diff = [f"{k}: {oc.get(k)!r} -> {nc.get(k)!r}" for k in sorted(set(oc) | set(nc))
            if oc.get(k) != nc.get(k) and not (k not in oc and nc.get(k) == defaults.get(k))]
    if not diff and old.get("kind") == new["kind"]:
        return
    if old.get("kind") != new["kind"]:
        diff.insert(0, f"kind: {old.get('kind')} -> {new['kind']}")
    raise PipelineError(f"stage {stage.name!r} in {stage.dir} was run with other settings ({'; '.join(diff)}); "
                        "set another out (--set out=...) or delete that directory")


def run_recipe(recipe: str | Path | dict, overrides: list[str] | None = None, until: str | None = None,
               dry_run: bool = False, log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Run (or resume) a recipe; returns ``{stage: {"output", "seconds", "skipped"}}`` in order."""
    data = load_recipe(recipe, overrides)
    stages = resolve(data)
    if until is not None and until not in {s.name for s in stages}:
        raise PipelineError(f"--until {until!r}: no such stage ({', '.join(s.name for s in stages)})")
    root = Path(data["out"])
    resolved = {k: v for k, v in data.items() if k in RECIPE_KEYS}
    resolved.update({s.name: {"kind": s.kind, **_record(s)["config"]} for s in stages})
    for s in stages:
        check_record(s)
    if dry_run:
        log(yaml.safe_dump(resolved, sort_keys=False))
        return {}
    quiet_progress_bars()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / "recipe.resolved.yaml.tmp"
    tmp.write_text(yaml.safe_dump(resolved, sort_keys=False))
    tmp.replace(root / "recipe.resolved.yaml")
    results: dict[str, dict[str, Any]] = {}
    try:  # the time a skipped stage took when it did run
        earlier = json.loads((root / "stages.json").read_text())
    except (OSError, ValueError):
        earlier = {}
    for i, s in enumerate(stages, 1):
        head = f"[{i}/{len(stages)}] {s.name} ({s.kind})"
        if s.done():
            log(f"{head}: done earlier, skipped -> {s.output}")
            secs = earlier.get(s.name, {}).get("seconds", 0.0) if isinstance(earlier.get(s.name), dict) else 0.0
            results[s.name] = {"output": str(s.output), "seconds": secs, "skipped": True}
        else:
            log(f"{head}: running -> {s.output}")
            s.dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(s.dir / STAGE_FILE, _record(s))
            t0 = time.perf_counter()
            _, runner = KINDS[s.kind].load()
            runner(s.config)
            secs = time.perf_counter() - t0
            if not s.done():
                raise PipelineError(f"stage {s.name!r} returned but its output {s.output} is not complete")
            log(f"{head}: finished in {secs:.0f} s")
            from ponder.train.common import peak_rss_mb

            # ru_maxrss is the process's peak so far: stages run in one process, so a stage's
            # own peak is in its metrics.jsonl / ponder_done.json when it ran alone
            results[s.name] = {"output": str(s.output), "seconds": secs, "skipped": False,
                               "peak_rss_mb_so_far": peak_rss_mb()}
            write_json_atomic(root / "stages.json", {**earlier, **results})  # a later kill keeps this time
        if s.name == until:
            break
    write_json_atomic(root / "stages.json", results)
    return results


__all__ = ["KINDS", "Kind", "PipelineError", "Stage", "find_recipe",
           "load_recipe", "resolve", "run_recipe"]
