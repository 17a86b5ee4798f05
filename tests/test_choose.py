"""ponder choose: catalog with sources, normalisations by hand, missing values, runs merged, CLI, notebook."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.choose import (
    ChooseError,
    build_matrix,
    load_catalog,
    merge_runs,
    normalise,
    parse_weights,
    to_csv,
    to_markdown,
)
from ponder.cli.main import app

REQUIRED = ["OpenAI o1", "OpenAI o3", "OpenAI o3-mini", "DeepSeek-R1", "Gemini 2.0 Flash Thinking", "QwQ-32B",
            "Sky-T1-32B-Preview", "Marco-o1", "Claude 3.5 Sonnet", "Claude 3.7 Sonnet", "Codestral 25.01", "GPT-5"]


def model(name, math500=None, price=None, open_weights=None, **kw):
    m = {"name": name, "benchmarks": {"math500": math500}, "open_weights": open_weights,
         "price": None if price is None else {"output_per_m": price}, "sources": {}}
    return {**m, **kw}


def test_catalog_has_the_seed_models_with_sources():
    models = {m["name"]: m for m in load_catalog()}
    assert set(REQUIRED) <= set(models)
    for m in models.values():
        for trait in ("architecture", "licence", "context_length", "reasoning_controls"):
            assert m.get(trait) is not None and m["sources"][trait], (m["name"], trait)
        if m.get("price"):
            assert m["sources"]["price"].startswith("http")
    # published numbers, and unknowns kept unknown
    assert models["DeepSeek-R1"]["benchmarks"] == {"aime2024": 79.8, "math500": 97.3}
    assert models["OpenAI o3"]["benchmarks"]["math500"] is None
    assert models["Gemini 2.0 Flash Thinking"]["price"] is None


def test_user_catalog_entries_are_checked_and_replace_builtins(tmp_path):
    (tmp_path / "mine.yaml").write_text("models:\n  - name: DeepSeek-R1\n    open_weights: true\n    licence: MIT\n"
                                        "    sources: {licence: https://example.org}\n  - name: Mine\n    context_length: 4096\n"
                                        "    sources: {context_length: my notes}\n")
    models = {m["name"]: m for m in load_catalog(extra=[tmp_path])}
    assert models["DeepSeek-R1"].get("benchmarks") is None and "Mine" in models
    (tmp_path / "bad.yaml").write_text("name: Unsourced\nprice: {input_per_m: 1, output_per_m: 2}\n")
    with pytest.raises(ChooseError, match="bad.yaml.*'price' without sources.price"):
        load_catalog(extra=[tmp_path / "bad.yaml"])
    (tmp_path / "bad2.yaml").write_text("name: X\nbenchmarks: {math500: 140}\nsources: {benchmarks: u}\n")
    with pytest.raises(ChooseError, match="percentage"):
        load_catalog(extra=[tmp_path / "bad2.yaml"])


def test_normalisations_by_hand():
    v = {"a": 1.0, "b": 2.0, "c": 4.0}
    assert normalise(v, "minmax") == pytest.approx({"a": 0, "b": 1 / 3, "c": 1})
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 3)
    assert normalise(v, "zscore") == pytest.approx({k: (x - 7 / 3) / sd for k, x in v.items()})
    assert normalise({"a": 5.0, "b": 5.0, "c": 9.0}, "rank") == pytest.approx({"a": 0.25, "b": 0.25, "c": 1})
    assert normalise({"a": 3.0, "b": 3.0}, "minmax") == {"a": 1.0, "b": 1.0}
    with pytest.raises(ChooseError, match="unknown normalisation"):
        normalise(v, "softmax")


def test_weighted_scores_and_missing_values_by_hand():
    ms = [model("A", math500=90, price=10, open_weights=False), model("B", math500=80, price=1, open_weights=True),
          model("C", math500=None, price=1, open_weights=True), model("Z", math500=70, price=100, open_weights=False)]
    m = build_matrix(ms, parse_weights("accuracy=3,cost=2,open=1"), norm="minmax")
    rows = {r["model"]: r for r in m.rows}
    # accuracy minmax over 70..90; cost on log10 and negated: A -1, B/C 0, Z -2 → A 0.5, B/C 1, Z 0
    assert rows["A"]["norm"] == pytest.approx({"accuracy": 1.0, "cost": 0.5, "open": 0.0})
    assert rows["A"]["score"] == pytest.approx((3 * 1 + 2 * 0.5 + 0) / 6)
    assert rows["B"]["score"] == pytest.approx((3 * 0.5 + 2 * 1 + 1) / 6)
    # C has no accuracy: excluded (not 0), weights renormalised over cost+open, flagged
    assert rows["C"]["norm"]["accuracy"] is None and rows["C"]["missing"] == ["accuracy"]
    assert rows["C"]["score"] == pytest.approx((2 * 1 + 1 * 1) / 3) and rows["C"]["coverage"] == pytest.approx(0.5)
    # had the missing accuracy been read as 0, C would score (3*0 + 2 + 1)/6 = 0.5 instead of 1
    assert [r["model"] for r in m.rows] == ["C", "B", "A", "Z"]
    strict = build_matrix(ms, parse_weights("accuracy=3,cost=2,open=1"), min_coverage=0.6)
    assert next(r for r in strict.rows if r["model"] == "C")["rank"] is None and strict.rows[-1]["model"] == "C"
    text = to_csv(m)
    row_c = next(r for r in csv.DictReader(io.StringIO(text)) if r["model"] == "C")
    assert row_c["accuracy"] == "" and row_c["missing"] == "accuracy" and row_c["norm"] == "minmax"
    assert "missing" in to_markdown(m) and "normalisation: minmax" in to_markdown(m)


def test_bad_weights_are_named():
    with pytest.raises(ChooseError, match="unknown factor 'speed'"):
        parse_weights("speed=2")
    with pytest.raises(ChooseError, match="must be a number"):
        parse_weights("accuracy=high")
    with pytest.raises(ChooseError, match="at least one"):
        parse_weights("accuracy=0")


def _fake_run(d: Path, model_spec: str, pass1: float, problems: int = 10) -> Path:
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"model": model_spec, "task": "math500", "pass@1": {"mean": pass1},
                                                "complete_problems": problems, "per_problem": {}}))
    return d


def test_runs_fill_measured_and_add_rows(tmp_path):
    _fake_run(tmp_path / "runs" / "a", "openai:deepseek-reasoner@http://127.0.0.1:1/v1", 0.9)
    _fake_run(tmp_path / "runs" / "b", "runs/sft/final", 0.25)
    models = merge_runs(load_catalog(), [tmp_path / "runs"])
    by = {m["name"]: m for m in models}
    assert by["DeepSeek-R1"]["measured"]["pass@1"] == pytest.approx(90)  # matched by alias
    assert by["final"]["measured"]["pass@1"] == pytest.approx(25) and by["final"]["open_weights"] is True
    m = build_matrix(models, parse_weights("measured=1"))
    assert [r["model"] for r in m.rows[:2]] == ["DeepSeek-R1", "final"]
    assert all(r["rank"] is None for r in m.rows[2:])  # no measurement: unranked, not zero
    with pytest.raises(ChooseError, match="no usable eval run"):
        merge_runs(load_catalog(), [tmp_path / "runs"], task="gsm8k")


def test_cli_choose_writes_csv_and_md(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["choose", "--weights", "accuracy=3,cost=2,open=1", "--norm", "rank",
                            "--csv", str(tmp_path / "m.csv"), "--md", str(tmp_path / "m.md")])
    assert r.exit_code == 0, r.output
    assert "DeepSeek-R1" in r.output and "normalisation: rank" in " ".join(r.output.split())
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert rows[0]["model"] == "DeepSeek-R1" and {x["norm"] for x in rows} == {"rank"}
    assert (tmp_path / "m.md").read_text().count("\n|") >= len(REQUIRED)
    r = runner.invoke(app, ["choose", "--weights", "speed=1"])
    assert r.exit_code == 2 and "unknown factor" in r.output
    r = runner.invoke(app, ["choose", "--norm", "softmax"])
    assert r.exit_code == 2 and "unknown normalisation" in r.output


def test_notebook_executes(tmp_path):
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    src = Path(__file__).resolve().parents[1] / "docs" / "choose.ipynb"
    shutil.copy(src, tmp_path / "choose.ipynb")
    nb = nbformat.read(tmp_path / "choose.ipynb", as_version=4)
    # a failing cell raises CellExecutionError with the cell's traceback
    ExecutePreprocessor(timeout=180, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    outputs = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                      for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "top choice:" in outputs and "DeepSeek-R1" in outputs
    assert (tmp_path / "choose_matrix.png").stat().st_size > 10_000
