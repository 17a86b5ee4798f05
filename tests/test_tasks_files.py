"""File-based tasks: the real benchmark files load, their references verify, bad files fail clearly."""

import json
import re

import pytest

from ponder.tasks import TaskError, get_task
from ponder.tasks.files import DATA_DIR, JsonlTask, gold_from

needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"benchmark data not found at {DATA_DIR}")


# --------------------------------------------------------------------------- the real files

# (task, split, count, first id, first gold)
FILES = [
    ("gsm8k", "test", 1319, "gsm8k/test/0", "18"),
    ("gsm8k", "train", 7473, "gsm8k/train/0", "72"),
    ("math500", "test", 500, "math500/test/precalculus/807.json", r"\left( 3, \frac{\pi}{2} \right)"),
    ("aime24", "test", 30, "aime24/60", "204"),
    ("amc23", "test", 40, "amc23/0", "27"),
    ("minerva", "test", 272, "minerva/0", "1.6"),
]


@needs_data
@pytest.mark.parametrize("name,split,count,first_id,first_gold", FILES)
def test_counts_and_first_item(name, split, count, first_id, first_gold):
    examples = list(get_task(name).examples(split))
    assert len(examples) == count
    assert (examples[0]["id"], examples[0]["gold"]) == (first_id, first_gold)
    assert len({e["id"] for e in examples}) == count
    for e in examples:
        assert e["prompt"].strip() and e["gold"].strip()
        assert e["meta"]["source"].endswith(".jsonl") and e["meta"]["line"] >= 1
    assert json.loads(json.dumps(examples[0])) == examples[0]


@needs_data
def test_gold_normalisation_on_real_items():
    gsm = list(get_task("gsm8k").examples())
    assert gsm[146]["gold"] == "2125"  # "#### 2,125"
    assert gsm[489]["gold"] == "-10"
    aime = list(get_task("aime24").examples())
    assert aime[7]["gold"] == "25"  # stored as "025"
    amc = list(get_task("amc23").examples())
    assert amc[15]["gold"] == "-1"  # stored as -1.0
    assert amc[3]["gold"] == "3159"
    minerva = list(get_task("minerva").examples())
    assert minerva[1]["gold"] == "4.5e33"


@needs_data
def test_meta_keeps_what_breakdowns_need():
    m = next(get_task("math500").examples())
    assert (m["meta"]["subject"], m["meta"]["level"]) == ("Precalculus", 2)
    assert "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}" in m["meta"]["solution"]
    assert m["meta"]["line"] == 1 and m["meta"]["source"].endswith("math500/test.jsonl")
    mv = next(get_task("minerva").examples())
    assert mv["meta"]["type"] == "Introduction to Astronomy (8.282J Spring 2006)"
    a = next(get_task("aime24").examples())
    assert a["meta"]["url"].endswith("2024_AIME_I_Problems/Problem_1") and "solution" in a["meta"]
    g = next(get_task("gsm8k").examples("train"))
    assert g["meta"]["solution"].endswith("#### 72")


@needs_data
def test_missing_split_is_named():
    with pytest.raises(TaskError, match="math500 has no train split"):
        get_task("math500").examples("train")


# --------------------------------------------------------------------------- scoring


@needs_data
@pytest.mark.parametrize("name,field", [("gsm8k", "solution"), ("math500", "solution"), ("minerva", "solution")])
def test_reference_solutions_score_correct(name, field):
    task = get_task(name)
    wrong = []
    for e in task.examples("test"):
        v = task.score(e["meta"][field], e)
        if not v.correct:
            wrong.append((e["id"], e["gold"], v))
    assert not wrong, wrong[:5]


@needs_data
def test_gsm8k_train_references_score_correct():
    task = get_task("gsm8k")
    wrong = [e["id"] for e in task.examples("train") if not task.score(e["meta"]["solution"], e).correct]
    assert not wrong, wrong[:5]


@needs_data
def test_aime_reference_solutions_are_never_judged_wrong():
    """AoPS solutions are free-form: one that states its final answer must verify; one that
    does not (the first ends in "$180 + 24 = 204$. -sepehr2010") must give "no answer found"."""
    task = get_task("aime24")
    verdicts = [task.score(e["meta"]["solution"], e) for e in task.examples()]
    assert all(v.correct or v.reason == "no answer found" for v in verdicts), verdicts
    assert sum(v.correct for v in verdicts) >= 25  # nearly all do state it


GSM0 = {"id": "gsm8k/test/0", "prompt": "Janet's ducks…", "gold": "18", "meta": {}}
M500_0 = {"id": "math500/test/precalculus/807.json", "prompt": "", "gold": r"\left( 3, \frac{\pi}{2} \right)", "meta": {}}
AMC0 = {"id": "amc23/0", "prompt": "", "gold": "27", "meta": {}}
AIME7 = {"id": "aime24/67", "prompt": "", "gold": "25", "meta": {}}
GSM146 = {"id": "gsm8k/test/146", "prompt": "", "gold": "2125", "meta": {}}  # "#### 2,125"
M500_2 = {"id": "math500/test/algebra/2584.json", "prompt": "", "gold": r"\frac{14}{3}", "meta": {}}
M500_4 = {"id": "math500/test/algebra/1349.json", "prompt": "", "gold": r"\text{Evelyn}", "meta": {}}
MIN1 = {"id": "minerva/1", "prompt": "", "gold": "4.5e33", "meta": {}}

SCORE_CASES = [
    # (task, example, completion, correct, reason)
    ("gsm8k", GSM0, "<think>16-3-4=9 eggs, 9*2=18</think>18", True, "equal"),
    ("gsm8k", GSM0, "<think>r</think><answer>18</answer>", True, "equal"),
    ("gsm8k", GSM0, "16-3-4=9, 9*2=18\n</think>\nShe makes $18 a day. #### 18", True, "equal"),
    ("gsm8k", GSM0, "She makes 9 * 2 = $18.\nThe answer is 18.", True, "equal"),
    ("gsm8k", GSM0, "<think>9 eggs at $2 each is 18", False, "no answer found"),
    ("gsm8k", GSM0, "<think>r</think>\\boxed{16}", False, "not equal to 18"),
    ("gsm8k", GSM0, "<think>\\boxed{18}</think>\\boxed{9}", False, "not equal"),
    ("math500", M500_0, r"<think>r = 3, theta = pi/2</think>$\boxed{\left( 3, \frac{\pi}{2} \right)}$", True, "equal"),
    ("math500", M500_0, r"<think>r</think>\boxed{(3, \frac{\pi}{2})}", True, "equal"),
    ("math500", M500_0, r"<think>r</think>\boxed{(3, \pi)}", False, "not equal"),
    ("amc23", AMC0, "<think>45/(18+12) h, 18*1.5</think>\\boxed{27}", True, "equal"),
    ("amc23", AMC0, "<think>r</think>27.0", True, "equal"),
    ("amc23", AMC0, "<think>r</think>\\boxed{28}", False, "not equal"),
    ("aime24", AIME7, "<think>r</think>\\boxed{025}", True, "equal"),
    ("aime24", AIME7, "<think>r</think>\\boxed{52}", False, "not equal"),
    ("gsm8k", GSM146, "<think>r</think>The answer is 2,125.", True, "equal"),
    ("gsm8k", GSM146, "<think>r</think>\\boxed{\\$2,125}", True, "equal"),
    ("gsm8k", GSM146, "<think>r</think>#### 2124", False, "not equal to 2125"),
    ("math500", M500_2, r"<think>r</think>\boxed{\dfrac{14}{3}}", True, "equal"),
    ("math500", M500_2, "<think>r</think>The final answer is 14/3", True, "equal"),
    ("math500", M500_2, r"<think>r</think>\boxed{4.67}", False, "not equal"),
    ("math500", M500_4, r"<think>r</think>\boxed{\text{Evelyn}}", True, "equal"),
    ("math500", M500_4, r"<think>r</think>\boxed{Angela}", False, "not equal"),
    ("minerva", MIN1, r"<think>r</think>\boxed{4.5 \times 10^{33}}", True, "equal"),
    ("minerva", MIN1, r"<think>r</think>\boxed{4.6 \times 10^{33}}", False, "not equal"),
]


@pytest.mark.parametrize("name,example,completion,correct,reason", SCORE_CASES)
def test_score_table(name, example, completion, correct, reason):
    v = get_task(name).score(completion, example)
    assert v.correct is correct, v
    assert reason in v.reason


def test_unterminated_think_is_no_answer_for_every_file_task():
    for name in ("gsm8k", "math500", "aime24", "amc23", "minerva", "jsonl"):
        v = get_task(name).score("<think>the answer is \\boxed{18}", GSM0)
        assert (v.correct, v.reason, v.answer) == (False, "no answer found (the think block never closed)", None)


# --------------------------------------------------------------------------- errors and the generic loader


def _write(tmp_path, lines, name="data.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_construction_reads_nothing(tmp_path):
    task = get_task("gsm8k", path=str(tmp_path / "nope.jsonl"))  # no error yet
    with pytest.raises(TaskError, match=re.escape(f"{tmp_path / 'nope.jsonl'}: no such file")):
        task.examples("test")
    with pytest.raises(TaskError, match="no path given"):
        get_task("jsonl").examples()


def test_malformed_json_names_line_3(tmp_path):
    p = _write(tmp_path, ['{"question": "a", "answer": "#### 1"}', "", '{"question": "b", "answer": '])
    with pytest.raises(TaskError, match=re.escape(f"{p}:3: not valid JSON")):
        list(get_task("gsm8k", path=str(p)).examples())


@pytest.mark.parametrize(
    "lines,match",
    [
        (['{"question": "a", "answer": "#### 1"}', '{"question": "b"}'], ":2: missing field 'answer'"),
        (['{"answer": "#### 1"}'], ":1: missing field 'question'"),
        (['["question", "answer"]'], ":1: expected a JSON object, got list"),
        (['{"question": "a", "answer": "no final line"}'], ":1: field 'answer': no '#### N' final answer"),
        (['{"question": "", "answer": "#### 1"}'], ":1: field 'question' must be a non-empty string"),
    ],
)
def test_bad_rows_name_line_and_field(tmp_path, lines, match):
    p = _write(tmp_path, lines)
    with pytest.raises(TaskError, match=re.escape(f"{p}{match}")):
        list(get_task("gsm8k", path=str(p)).examples())


def test_blank_lines_skipped_and_line_numbers_kept(tmp_path):
    p = _write(tmp_path, ["", '{"question": "a", "answer": "x\\n#### 1,000"}', "   ", '{"question": "b", "answer": "#### 2"}'])
    ex = list(get_task("gsm8k", path=str(p)).examples())
    assert [(e["id"], e["gold"], e["meta"]["line"]) for e in ex] == [("gsm8k/test/0", "1000", 2), ("gsm8k/test/1", "2", 4)]


def test_split_placeholder_and_single_split_paths(tmp_path):
    _write(tmp_path, ['{"q": "train?", "a": 1}'], "train.jsonl")
    _write(tmp_path, ['{"q": "test?", "a": 2.0}'], "test.jsonl")
    t = JsonlTask(str(tmp_path / "{split}.jsonl"), prompt_field="q", gold_field="a")
    assert [e["gold"] for e in t.examples("train")] == ["1"]
    assert [e["gold"] for e in t.examples("test")] == ["2"]
    single = JsonlTask(tmp_path / "train.jsonl", prompt_field="q", gold_field="a", split="train")
    assert next(single.examples("train"))["prompt"] == "train?"
    with pytest.raises(TaskError, match="holds the train split, not test"):
        single.examples("test")


def test_generic_jsonl_mapping(tmp_path):
    p = _write(
        tmp_path,
        [
            json.dumps({"uid": "p1", "problem": "1/2+1/2?", "sol": "so \\boxed{1}", "subject": "Algebra", "extra": 5}),
            json.dumps({"uid": "p2", "problem": "2+2?", "sol": "it is \\boxed{\\frac{8}{2}}"}),
        ],
    )
    t = get_task(f"jsonl:path={p},prompt_field=problem,gold_field=sol,id_field=uid,gold_extract=boxed,meta_fields=subject")
    ex = list(t.examples())
    assert [(e["id"], e["prompt"], e["gold"]) for e in ex] == [("p1", "1/2+1/2?", "1"), ("p2", "2+2?", "\\frac{8}{2}")]
    assert ex[0]["meta"] == {"subject": "Algebra", "source": str(p), "line": 1}
    assert "subject" not in ex[1]["meta"]  # meta fields are optional


def test_duplicate_ids_are_an_error(tmp_path):
    p = _write(tmp_path, ['{"id": 1, "question": "a", "answer": "1"}', '{"id": 1, "question": "b", "answer": "2"}'])
    with pytest.raises(TaskError, match=re.escape(f"{p}:2: duplicate id '1' (first on line 1)")):
        list(JsonlTask(p, id_field="id").examples())


@pytest.mark.parametrize(
    "value,extract,gold",
    [(27.0, None, "27"), (-1.0, None, "-1"), (0.5, None, "0.5"), (204, None, "204"), (" 7 ", None, "7"),
     ("025", "integer", "25"), ("a\n#### 1,234,567", "gsm8k", "1234567"), ("x \\boxed{\\frac{1}{2}} y", "boxed", "\\frac{1}{2}")],
)  # fmt: skip
def test_gold_from(value, extract, gold):
    assert gold_from(value, extract) == gold


@pytest.mark.parametrize("value,extract", [(None, None), (True, None), ("", None), ("12a", "integer"), ("no box", "boxed")])
def test_gold_from_refuses(value, extract):
    with pytest.raises(ValueError):
        gold_from(value, extract)
