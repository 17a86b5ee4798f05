"""Accuracy vs thinking budget: the sweep's arithmetic (scripted backend), resume, the CSV/PNG,
and ``ponder budget-curve`` end to end on a tiny local model (built here, nothing downloaded)."""

from __future__ import annotations

import csv

import pytest
from fakes import FakeBackend, question_of
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.config import ConfigError
from ponder.evaluate.budget import CSV_NAME, PNG_NAME, BudgetCurveConfig, run_budget_curve
from ponder.generate import Budget, Completion
from ponder.models.build import build_model, save
from ponder.models.tokenizer import train_tokenizer

runner = CliRunner()


class Scripted(FakeBackend):
    """A local backend whose sample j of a prompt is correct iff budget >= 8 * (j + 1) and which
    thinks min(budget, 20) tokens; it records every budget it was asked for."""

    def __init__(self):
        super().__init__(remote=False)
        self.calls: list[Budget] = []

    def generate(self, prompts, n=1, sampling=None, budget=None):
        self.calls.append(budget)
        b = budget.thinking_budget
        out = []
        for p in prompts:
            a, c = (int(x) for x in question_of(p).removeprefix("What is ").rstrip("?").split(" + "))
            group = []
            for j in range(n):
                ans = str(a + c) if b >= 8 * (j + 1) else "nope"
                rt = min(b, 20)
                group.append(Completion(text=f"<think>r</think>{ans}", token_ids=[], reasoning="r", answer=ans,
                                        reasoning_tokens=rt, answer_tokens=2, finish_reason="eos",
                                        think_closed=True, forced_close=b < 20, waits=int(budget.min_thinking > 0)))
            out.append(group)
        return out


def cfg(tmp_path, **kw) -> BudgetCurveConfig:
    base = dict(model="scripted", task="addition", budgets=[0, 8, 16, 32], n=2, limit=5, out=str(tmp_path / "curve"))
    return BudgetCurveConfig(**{**base, **kw})


def test_sweep_computes_accuracy_tokens_and_cutoffs(tmp_path):
    b = Scripted()
    rows = run_budget_curve(cfg(tmp_path), backend=b)
    assert [r["budget"] for r in rows] == [0, 8, 16, 32]
    assert [r["accuracy"] for r in rows] == [0.0, 0.5, 1.0, 1.0]  # sample j needs budget 8(j+1)
    assert [r["mean_reasoning_tokens"] for r in rows] == [0, 8, 16, 20]
    assert [r["cut_off_rate"] for r in rows] == [1.0, 1.0, 1.0, 0.0]
    assert all(r["problems"] == 5 and r["samples"] == 10 for r in rows)
    # every problem scores 1/2: no spread, so the interval is Wilson's over the problems, not [0.5, 0.5]
    assert rows[1]["ci_low"] < 0.5 < rows[1]["ci_high"]
    assert [c.thinking_budget for c in b.calls] == [0, 8, 16, 32]  # 5 problems fit in one batch
    saved = list(csv.DictReader(open(tmp_path / "curve" / CSV_NAME)))
    assert [(int(r["budget"]), float(r["accuracy"])) for r in saved] == [(0, 0.0), (8, 0.5), (16, 1.0), (32, 1.0)]
    png = (tmp_path / "curve" / PNG_NAME).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # the curve is `ponder eval --budgets`: an ordinary eval run per budget, with its records
    assert (tmp_path / "curve" / "budget-16" / "samples.jsonl").is_file()


def test_forcing_sets_min_thinking_per_budget(tmp_path):
    b = Scripted()
    rows = run_budget_curve(cfg(tmp_path, budgets=[8, 32], min_thinking_frac=0.5, max_waits=3), backend=b)
    assert [(c.thinking_budget, c.min_thinking, c.max_waits) for c in b.calls] == [(8, 4, 3), (32, 16, 3)]
    assert [r["mean_waits"] for r in rows] == [1.0, 1.0]


def test_forcing_needs_token_level_control(tmp_path):
    from ponder.generate.openai_backend import OpenAIBackend

    server = OpenAIBackend("m", "http://127.0.0.1:9/v1")  # refuses before any request is sent
    with pytest.raises(ConfigError, match="budget forcing.*local checkpoint.*--tokenizer"):
        run_budget_curve(cfg(tmp_path, budgets=[8], min_thinking_frac=0.5), backend=server)


def test_a_rerun_resumes_where_it_stopped_and_refuses_other_settings(tmp_path):
    run_budget_curve(cfg(tmp_path, budgets=[0, 8]), backend=Scripted())
    b = Scripted()
    rows = run_budget_curve(cfg(tmp_path, budgets=[0, 8, 16]), backend=b)
    assert [c.thinking_budget for c in b.calls] == [16]  # 0 and 8 were saved
    assert [r["accuracy"] for r in rows] == [0.0, 0.5, 1.0]
    assert [int(r["budget"]) for r in csv.DictReader(open(tmp_path / "curve" / CSV_NAME))] == [0, 8, 16]
    b = Scripted()  # other settings (n) must not mix with the saved samples: refused, the field named
    with pytest.raises(ConfigError, match="n was 2"):
        run_budget_curve(cfg(tmp_path, budgets=[0, 8], n=1), backend=b)
    assert b.calls == []


@pytest.mark.parametrize("kw, match", [
    ({"budgets": []}, "at least one"), ({"budgets": [8, -1]}, ">= 0"), ({"budgets": [8, 8]}, "duplicates"),
    ({"n": 0}, "n must be"), ({"min_thinking_frac": 2.0}, "min_thinking_frac"),
])
def test_bad_configs(tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        cfg(tmp_path, **kw)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    texts = [f"User: What is {a} + {b}?\nAssistant: <think>{a}+{b}</think>{a + b}" for a in range(30) for b in range(9)]
    tok = train_tokenizer(texts, vocab_size=300)
    d = tmp_path_factory.mktemp("tiny")
    save(build_model({"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}, tok, seed=0), tok, d)
    return str(d)


def test_cli_on_a_local_model(model_dir, tmp_path):
    out = tmp_path / "c"
    res = runner.invoke(app, ["budget-curve", model_dir, "--task", "addition", "--budgets", "0,4,12", "--n", "2",
                              "--limit", "3", "--max-tokens", "4", "--min-thinking-frac", "0.5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / CSV_NAME)))
    assert [int(r["budget"]) for r in rows] == [0, 4, 12]
    from transformers import AutoTokenizer

    # the budget counts the model's own reasoning; the forced "\n</think>\n" comes after it
    close = len(AutoTokenizer.from_pretrained(model_dir).encode("\n</think>\n", add_special_tokens=False))
    for r in rows:  # the cut-off holds: no sample thinks past its budget
        assert float(r["mean_reasoning_tokens"]) <= int(r["budget"]) + close
        assert int(r["samples"]) == 6 and 0 <= float(r["accuracy"]) <= 1
    assert (out / PNG_NAME).stat().st_size > 5000
    assert "wrote" in res.output


def test_cli_errors_are_one_line(tmp_path):
    res = runner.invoke(app, ["budget-curve", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["budget-curve", "x", "--budgets", "8,8"])
    assert res.exit_code == 2 and "duplicates" in res.output
    res = runner.invoke(app, ["budget-curve", "--task", "addition"])
    assert res.exit_code == 2 and "model" in res.output


def test_help_shows_every_option_with_its_default():
    res = runner.invoke(app, ["budget-curve", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.replace("│", " ").split())  # undo rich's box and line wrapping
    for flag, default in [("--budgets", "16,32,64,128"), ("--n", "4"), ("--min-thinking-frac", "0.0"), ("--task", "addition")]:
        help_of_flag = text.split(f" {flag} ")[1].split(" --")[0]
        assert f"[default: {default}]" in help_of_flag, help_of_flag
