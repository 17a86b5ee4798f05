"""Contamination check: 13-gram overlap between training data and an eval set, on real GSM8K and
MATH-500 problems; ``ponder data overlap`` and ``ponder eval --check-contamination``.

Real data: ``../shared/data`` (skipped without it). The training files are real GSM8K train rows
(lines 101-400, which share no 13-gram with the test problems used) with test problems pasted in.
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.evaluate.contamination import check, eval_problems, normalize, scan, tokens
from ponder.evaluate.metrics import wilson
from ponder.tasks.files import DATA_DIR

GSM8K = DATA_DIR / "gsm8k"
pytestmark = pytest.mark.skipif(not (GSM8K / "train.jsonl").is_file(), reason=f"no benchmark data in {DATA_DIR}")
runner = CliRunner()


def gsm8k(split: str, lines: range) -> list[dict]:
    with open(GSM8K / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in islice(f, lines.start, lines.stop)]


def sft_file(path: Path, pasted: str | None = None, at: int = 57) -> Path:
    """Real GSM8K train rows 101-400 as SFT pairs; ``pasted`` inside the completion of row ``at``."""
    rows = [{"prompt": r["question"], "completion": r["answer"]} for r in gsm8k("train", range(100, 400))]
    if pasted is not None:
        rows[at]["completion"] = f"A similar problem I saw: {pasted} Anyway, back to ours. " + rows[at]["completion"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def test_problems() -> list[dict]:
    return gsm8k("test", range(0, 200))


@pytest.fixture(scope="module")
def eval_file(test_problems, tmp_path_factory) -> str:
    """GSM8K test problems 0-199 as a JSONL eval set, with the ids the gsm8k task gives them."""
    path = tmp_path_factory.mktemp("eval") / "gsm8k-test-200.jsonl"
    path.write_text("".join(json.dumps({"id": f"gsm8k/test/{i}", "question": r["question"]}) + "\n"
                            for i, r in enumerate(test_problems)))
    return str(path)


def test_a_pasted_test_problem_is_flagged_and_the_others_are_not(tmp_path, test_problems, eval_file):
    target = test_problems[17]["question"]
    train = sft_file(tmp_path / "sft.jsonl", pasted=target)
    result = check([str(train)], eval_file, progress=False)
    assert result.flagged_ids == {"gsm8k/test/17"}
    report = result.to_json("gsm8k", "test")
    row = next(p for p in report["problems"] if p["id"] == "gsm8k/test/17")
    assert row["overlap"] == row["ngrams"] == len(tokens(target)) - 12  # every 13-gram of it is in the training row
    assert row["sources"] == [{"file": str(train), "line": 58, "shared": row["ngrams"]}]
    # the same training rows without the paste: nothing among these 200 is flagged
    clean = check([str(sft_file(tmp_path / "clean.jsonl"))], eval_file, progress=False)
    assert clean.flagged_ids == set()


def variants(q: str) -> dict[str, str]:
    words = q.split()
    mid = len(words) // 2
    return {
        "upper case": q.upper(),
        "whitespace": "\n\n  ".join(q.split(" ")),
        "punctuation": q.replace(",", "").replace(".", " !").replace("?", ";") + "...",
        "curly quotes": q.replace("'", "\u2019") + " \u201cthat\u2019s it\u201d",
        # a paraphrase that rewrites the start and the end but keeps 13 words in the middle
        "paraphrase": "Here is a puzzle for you. " + " ".join(words[mid - 7:mid + 7]) + " Solve it quickly, please.",
    }


@pytest.mark.parametrize("kind", list(variants("x y")))
def test_variants_are_flagged_per_the_normalisation(tmp_path, test_problems, eval_file, kind):
    q = test_problems[42]["question"]
    assert len(q.split()) >= 28  # room for the 14-word middle of the paraphrase
    train = sft_file(tmp_path / "t.jsonl", pasted=variants(q)[kind])
    assert "gsm8k/test/42" in check([str(train)], eval_file, progress=False).flagged_ids


def test_a_broken_up_copy_is_not_flagged(tmp_path, test_problems, eval_file):
    # every 12th word replaced: no 13 consecutive words survive, so no 13-gram is shared
    words = test_problems[42]["question"].split()
    broken = " ".join("zzz" if i % 12 == 11 else w for i, w in enumerate(words))
    train = sft_file(tmp_path / "t.jsonl", pasted=broken)
    assert "gsm8k/test/42" not in check([str(train)], eval_file, progress=False).flagged_ids


def test_normalisation_is_lm_evals_extended_to_unicode():
    assert normalize("Janet's Ducks, 16 eggs!") == "janets ducks 16 eggs"
    assert tokens("Janet\u2019s ducks\u00a0\u2014 laid \u201c16\u201d") == tokens("janets ducks laid 16")
    assert tokens("$\\frac{1}{2}$ of 3.5") == ["frac12", "of", "35"]  # LaTeX and decimals as lm-eval sees them


def test_short_problems(tmp_path):
    """MATH-500 problems under 13 tokens: matched whole from 8 tokens on, too short below (or all
    of them with short_min 13, lm-eval's rule: a problem without a 13-gram is never flagged)."""
    if not (DATA_DIR / "math500" / "test.jsonl").is_file():
        pytest.skip("no MATH-500 data")
    probs = {p.id: p for p in eval_problems("math500")}
    by_len = {}
    for p in probs.values():
        by_len.setdefault(len(tokens(p.text)), p)
    mid, tiny = by_len[10], by_len[min(by_len)]
    assert len(tokens(tiny.text)) < 8
    train = tmp_path / "t.jsonl"
    train.write_text("".join(json.dumps({"text": f"Exercise: {p.text} (from a textbook)"}) + "\n" for p in (mid, tiny)))
    result = check([str(train)], "math500", progress=False)
    rows = {r["id"]: r for r in result.to_json()["problems"]}
    assert rows[mid.id]["check"] == "whole" and rows[mid.id]["flagged"]
    assert rows[tiny.id]["check"] == "too short" and not rows[tiny.id]["flagged"]
    assert mid.id in result.flagged_ids and tiny.id not in result.flagged_ids
    # a short problem is matched as a whole: its first 9 of 10 tokens are not enough
    train.write_text(json.dumps({"text": " ".join(mid.text.split()[:-1])}) + "\n")
    assert mid.id not in check([str(train)], "math500", progress=False).flagged_ids
    strict = check([str(train)], "math500", short_min=13, progress=False)
    assert {r["check"] for r in strict.to_json()["problems"] if r["tokens"] < 13} == {"too short"}


def test_min_overlap_threshold(tmp_path, test_problems, eval_file):
    q = test_problems[42]["question"]
    words = q.split()
    train = sft_file(tmp_path / "t.jsonl", pasted=" ".join(words[:14]))  # exactly 2 of its 13-grams
    assert "gsm8k/test/42" in check([str(train)], eval_file, progress=False).flagged_ids
    assert "gsm8k/test/42" not in check([str(train)], eval_file, min_overlap=3, progress=False).flagged_ids


def test_training_formats_and_eval_file(tmp_path, test_problems):
    """Chat messages, a task spec as training data (its train split), a JSONL eval file, --field."""
    q = test_problems[3]["question"]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "18"}]}) + "\n")
    ev = tmp_path / "eval.jsonl"
    ev.write_text("".join(json.dumps({"id": f"p{i}", "question": r["question"]}) + "\n" for i, r in enumerate(test_problems[:5])))
    assert check([str(chat)], str(ev), progress=False).flagged_ids == {"p3"}
    # gsm8k's own train split vs its test problem 632: a real near-duplicate (same template, other names)
    real = scan(["gsm8k"], eval_problems("gsm8k")[630:634], progress=False)
    assert real.flagged_ids == {"gsm8k/test/632"}
    custom = tmp_path / "custom.jsonl"
    custom.write_text(json.dumps({"body": q, "prompt": "unrelated"}) + "\n")
    assert check([str(custom)], str(ev), progress=False).flagged_ids == set()
    assert check([str(custom)], str(ev), fields=["body"], progress=False).flagged_ids == {"p3"}


def test_cli_overlap_json(tmp_path, test_problems):
    train = sft_file(tmp_path / "sft.jsonl", pasted=test_problems[5]["question"])
    out = tmp_path / "o.json"
    r = runner.invoke(app, ["data", "overlap", str(train), "--eval", "gsm8k", "--json", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert len(report["problems"]) == 1319 and "gsm8k/test/5" in report["flagged_ids"]
    assert report["train"] == [{"source": str(train), "rows": 300, "texts": 600, "ngrams": report["train"][0]["ngrams"]}]
    assert "gsm8k/test/5" in r.output and "problems share a 13-gram" in r.output


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "ok"}\n{"answer": 3}\n', "bad.jsonl:2: no text field (looked for text, prompt"),
    ('{"prompt": "ok"}\nnot json\n', "bad.jsonl:2: not valid JSON"),
    ('{"prompt": 7}\n', "bad.jsonl:1: field 'prompt' is a int, not text"),
])
def test_bad_training_data_is_one_line_exit_2(tmp_path, eval_file, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    r = runner.invoke(app, ["data", "overlap", str(bad), "--eval", eval_file])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_missing_or_unknown_inputs_exit_2(tmp_path, eval_file):
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "problem": "one"}\n{"id": "a", "problem": "two"}\n')
    for args, message in [(["missing.jsonl", "--eval", eval_file], "missing.jsonl: no such training file"),
                          (["gsm8k", "--eval", "nosuchtask"], "eval set 'nosuchtask': not a file, and not a task spec"),
                          (["gsm8k", "--eval", str(tmp_path / "e.jsonl")], "e.jsonl: no such eval file"),
                          (["gsm8k", "--eval", str(dup)], "dup.jsonl:2: duplicate id 'a' (first on line 1)")]:
        r = runner.invoke(app, ["data", "overlap", *args])
        assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output


# ---------------------------------------------------------------------------- in ponder eval


def test_eval_reports_pass_at_1_on_the_clean_subset(tmp_path, test_problems):
    """GSM8K test problems 0-5 against a scripted endpoint that answers 0-3 right and 4-5 wrong;
    the training data holds problems 0 and 1. All: 4/6; clean (2-5): 2/4; flagged (0, 1): 2/2."""
    from ponder.testing import scripted_server

    gold = {r["question"]: r["answer"].split("####")[-1].strip() for r in test_problems[:6]}
    right = {r["question"] for r in test_problems[:4]}
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"question": r["question"]}) + "\n" for r in test_problems[:2]))
    out = tmp_path / "run"
    with scripted_server(answer=lambda q: gold[q] if q in right else "-1") as srv:
        r = runner.invoke(app, ["eval", srv.spec, "--task", "gsm8k", "--limit", "6", "--n", "1", "--out", str(out),
                                "--check-contamination", str(train)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["pass@1"]["mean"] == pytest.approx(4 / 6)
    c = m["contamination"]
    assert c["flagged_problems"] == 2 and c["clean"]["problems"] == 4 and c["flagged"]["problems"] == 2
    _, low, high = wilson(2, 4)  # n = 1: per-problem scores are 0/1, so the interval is Wilson's
    assert c["clean"]["pass@1"] == pytest.approx({"mean": 0.5, "low": low, "high": high})
    assert c["flagged"]["pass@1"]["mean"] == 1.0
    assert json.loads((out / "contamination.json").read_text())["flagged_ids"] == ["gsm8k/test/0", "gsm8k/test/1"]
    report = (out / "report.md").read_text()
    assert "## Contamination" in report and "| clean (no shared n-gram) | 4 | 50.0%" in report
    assert f"pass@1 50.0% [95% CI {100 * low:.1f}, {100 * high:.1f}] over 4 problems; 2 flagged" in " ".join(r.output.split())


def test_eval_with_missing_training_data_fails_before_generating(tmp_path):
    r = runner.invoke(app, ["eval", "openai:x@http://127.0.0.1:9/v1", "--task", "gsm8k", "--limit", "2",
                            "--out", str(tmp_path / "run"), "--check-contamination", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 2 and "none.jsonl: no such training file" in r.output
    assert not (tmp_path / "run" / "samples.jsonl").exists()
