"""The ``ponder`` CLI through typer's CliRunner: each command's contract and its user errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.tasks import get_task
from ponder.tasks.synthetic import reference_completion

runner = CliRunner()


def test_help_lists_every_command_with_a_description():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("verify", "tasks", "demo"):
        assert cmd in r.output


@pytest.mark.parametrize(
    "gold,answer,code,word",
    [("\\frac{1}{2}", "0.5", 0, "true"), ("18", "18.0", 0, "true"), ("(3, 4)", "(4, 3)", 1, "false"), ("72", "73", 1, "false")],
)
def test_verify_single_pair(gold, answer, code, word):
    r = runner.invoke(app, ["verify", "--gold", gold, "--answer", answer])
    assert r.exit_code == code
    assert r.output.strip() == word


def test_verify_pairs_file(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text('{"gold": "\\\\frac{3}{4}", "answer": "0.75"}\n\n{"gold": "5", "answer": "6"}\n')
    r = runner.invoke(app, ["verify", "--pairs", str(p)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.output.splitlines()]
    assert [(x["line"], x["equal"]) for x in rows] == [(1, True), (3, False)]


def test_verify_pairs_malformed_line_names_the_line(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text('{"gold": "1", "answer": "1"}\n{not json\n')
    r = runner.invoke(app, ["verify", "--pairs", str(p)])
    assert r.exit_code == 2
    assert ":2:" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args,message", [
    (["--gold", "1"], "give --gold and --answer"),
    ([], "give --gold and --answer"),
    (["--pairs", "p.jsonl", "--gold", "1"], "not both"),
])
def test_verify_needs_exactly_one_mode(args, message):
    r = runner.invoke(app, ["verify", *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_verify_pairs_line_without_fields_is_named(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text('{"gold": "1", "answer": "1"}\n{"gold": "2"}\n')
    r = runner.invoke(app, ["verify", "--pairs", str(p)])
    assert r.exit_code == 2 and ":2:" in r.output and '"answer"' in r.output


def test_verify_missing_file_is_a_clear_error(tmp_path):
    r = runner.invoke(app, ["verify", "--pairs", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_tasks_list_and_show():
    r = runner.invoke(app, ["tasks", "list"])
    assert r.exit_code == 0
    for name in ("addition", "countdown", "gsm8k", "math500", "code"):
        assert name in r.output
    r = runner.invoke(app, ["tasks", "show", "addition:digits=2", "--n", "2", "--json"])
    assert r.exit_code == 0
    rows = [json.loads(x) for x in r.output.splitlines()]
    assert len(rows) == 2 and all(int(x["gold"]) >= 0 for x in rows)


def test_tasks_unknown_task_is_a_clear_error():
    r = runner.invoke(app, ["tasks", "show", "additoin"])
    assert r.exit_code == 2 and "unknown task" in r.output and "Traceback" not in r.output


def test_tasks_score_counts_right_and_wrong(tmp_path):
    task = get_task("addition:digits=2")
    exs = list(task.examples("test"))[:3]
    lines = [{"id": exs[0]["id"], "completion": reference_completion(exs[0])},
             {"id": exs[1]["id"], "completion": "<think>guess</think>" + str(int(exs[1]["gold"]) + 1)},
             {"gold": exs[2]["gold"], "completion": f"<think>x</think>{exs[2]['gold']}"}]
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    r = runner.invoke(app, ["tasks", "score", "addition:digits=2", str(p)])
    assert r.exit_code == 0, r.output
    verdicts = [json.loads(x) for x in r.output.splitlines() if x.startswith("{")]
    assert [v["correct"] for v in verdicts] == [True, False, True]
