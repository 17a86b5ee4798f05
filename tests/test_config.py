"""Config classes and their CLI: shared option texts, inherited fields, field order."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields

import pytest
import yaml
from typer.testing import CliRunner

from ponder.cli.configcli import command
from ponder.cli.main import app
from ponder.config import SHARED_HELP, option, shared

runner = CliRunner()

CONFIG_MODULES = ("ponder.cli.ask", "ponder.evaluate.budget", "ponder.evaluate.doctor", "ponder.evaluate.harness",
                  "ponder.evaluate.recipe_report", "ponder.evaluate.stages", "ponder.evaluate.tune", "ponder.train.distill",
                  "ponder.train.grpo", "ponder.train.pretrain", "ponder.train.references", "ponder.train.sample",
                  "ponder.train.sft")


def _config_fields():
    for name in CONFIG_MODULES:
        for obj in vars(importlib.import_module(name)).values():
            if isinstance(obj, type) and obj.__module__ == name and hasattr(obj, "__dataclass_fields__"):
                yield from ((obj, f) for f in fields(obj))


def test_a_shared_text_is_declared_under_its_own_field_name():
    used = {}
    for cls, f in _config_fields():
        if "shared" in f.metadata:
            assert f.metadata["shared"] == f.name, f"{cls.__name__}.{f.name} uses the text of {f.metadata['shared']}"
            used.setdefault(f.name, set()).add(cls.__name__)
    # every entry serves at least two classes: a text one class uses belongs in that class
    assert {k: v for k, v in used.items() if len(v) < 2} == {}
    assert set(used) == set(SHARED_HELP)


@pytest.mark.parametrize("flag,commands", [
    ("--threads", (["train", "sft"], ["train", "grpo"], ["train", "pretrain"])),
    ("--extra-body", (["doctor"], ["budget-curve"], ["sample"], ["eval", "run"], ["ask"])),
    ("--temperature", (["eval", "run"], ["sample"], ["doctor"], ["budget-curve"], ["tune"], ["train", "grpo"],
                       ["train", "distill"])),
    ("--seed", (["eval", "run"], ["sample"], ["tune"], ["train", "sft"], ["train", "grpo"], ["train", "pretrain"],
                ["train", "distill"])),
    ("--thinking", (["eval", "run"], ["sample"], ["doctor"], ["budget-curve"], ["tune"], ["train", "grpo"], ["ask"])),
    ("--max-tokens", (["eval", "run"], ["sample"], ["doctor"], ["budget-curve"], ["tune"], ["train", "distill"])),
    ("--task", (["eval", "run"], ["sample"], ["doctor"], ["budget-curve"], ["tune"], ["train", "grpo"])),
])
def test_shared_options_read_the_same_in_every_command(flag, commands):
    texts = set()
    for cmd in commands:
        r = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "400"})
        assert r.exit_code == 0, r.output
        line = next(x for x in r.output.splitlines() if x.strip(" │").startswith(f"{flag} "))
        texts.add(line.split(flag, 1)[1].split("[default")[0].strip(" │"))
    assert len(texts) == 1, texts


@dataclass
class _Base:
    model: str = option("", "The model.")
    steps: int = option(3, "Steps.")


@dataclass
class _Child(_Base):
    steps: int = option(7, "Steps of the child.")  # redeclared: keeps the base's place, takes the new default
    seed: int = shared("seed", 0)


def test_inherited_fields_keep_their_order_and_the_child_defaults(tmp_path):
    import typer

    seen = []
    cli = typer.Typer()
    cli.command()(command(_Child, seen.append, "Child.", positional="model", deprecated_flag=False))
    r = runner.invoke(cli, ["--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    out = r.output
    assert out.index("--steps") < out.index("--seed")
    assert "Steps of the child. [default: 7]" in out and f"{SHARED_HELP['seed']} [default: 0]" in out
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"steps": 9, "seed": 2}))
    r = runner.invoke(cli, ["m", "--config", str(path)])
    assert r.exit_code == 0, r.output
    assert seen == [_Child(model="m", steps=9, seed=2)]
    r = runner.invoke(cli, ["m", "--set", "stepz=1"])
    assert r.exit_code == 2 and "unknown option(s) stepz; valid: model, seed, steps" in r.output


@pytest.mark.parametrize("kw,message", [
    ({"n": 0}, "n must be >= 1, got 0"),
    ({"limit": 0}, "limit must be >= 1, got 0"),
    ({"retries": -1}, "retries must be >= 0, got -1"),
    ({"shots": -2}, "shots must be >= 0, got -2"),
    ({"budgets": [8], "min_thinking_frac": 1.5}, "min_thinking_frac must be in [0, 1], got 1.5"),
])
def test_a_value_out_of_range_is_one_line_naming_the_option(kw, message):
    from ponder.evaluate.harness import EvalConfig

    r = runner.invoke(app, ["eval", "run", "runs/none", "--task", "addition",
                            *[x for k, v in kw.items() for x in (f"--{k.replace('_', '-')}", ",".join(map(str, v))
                                                                   if isinstance(v, list) else str(v))]])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert EvalConfig(model="m", task="addition", limit=None).limit is None  # unset is not out of range


@pytest.mark.parametrize("args,message", [
    (["train", "sft", "runs/none", "--data", "d.jsonl", "--device", "gpu"], "sft.device must be cpu or auto, got 'gpu'"),
    (["train", "grpo", "runs/none", "--scale-rewards", "all"], "grpo.scale_rewards must be group, batch or none, got 'all'"),
    (["eval", "run", "runs/none", "--task", "addition", "--thinking", "maybe"], "thinking must be auto, on or off, got 'maybe'"),
    (["tune", "runs/none", "--task", "addition", "--thinking", "maybe"], "thinking must be auto, on or off, got 'maybe'"),
])
def test_a_value_outside_its_choices_is_one_line_listing_them(args, message):
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and message in " ".join(r.output.split()) and "Traceback" not in r.output, r.output
