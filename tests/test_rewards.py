"""Rewards: tables of real completions and the known reward hacks (registry, TRL: test_rewards_registry.py).

Completions are written the way models write them: GSM8K reasoning ending in ``#### N``,
MATH-500 solutions with their real ``\\boxed{}`` answers, Countdown equations, and reasoning that
drifts into Chinese.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.rewards import (
    Cosine,
    Format,
    LanguageConsistency,
    Overlong,
    RewardInputError,
    TagCount,
    accuracy,
    length,
)

format_reward, tag_count, language_consistency, cosine = Format(), TagCount(), LanguageConsistency(), Cosine()

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

GSM_GOOD = (
    "<think>\nJanet's ducks lay 16 eggs a day. She eats 3 and bakes with 4, so she sells "
    "16 - 3 - 4 = 9 eggs. At $2 each she makes 9 * 2 = $18.\n</think>\n"
    "She makes 9 * 2 = 18 dollars every day.\n#### 18"
)
ZERO_GOOD = "<think>\n2 bolts of blue, half that of white: 1. Total 2 + 1 = 3.\n</think>\n<answer>3</answer>"


def msg(text: str) -> list[dict]:
    """A conversational completion, as TRL passes it for a chat dataset."""
    return [{"role": "assistant", "content": text}]


# ============================================================================ format

FORMAT = [
    # (completion, prefilled_think, template, expected)
    (GSM_GOOD, None, "auto", 1.0),
    (ZERO_GOOD, None, "auto", 1.0),
    (ZERO_GOOD + "\n", None, "r1-zero", 1.0),
    # pre-filled <think>: the completion starts inside the reasoning
    ("Janet sells 9 eggs at $2.\n</think>\n#### 18", True, "auto", 1.0),
    # nothing is guessed from the completion: a plain prompt + a stray </think> is not the format
    ("Janet sells 9 eggs at $2.\n</think>\n#### 18", None, "auto", 0.0),
    ("Janet sells 9 eggs at $2.\n</think>\n#### 18", False, "auto", 0.0),  # told: must open it
    ("<think>again</think>18", True, "auto", 0.0),  # a second <think> after the pre-filled one
    # hack: empty reasoning
    ("<think></think>42", None, "auto", 0.0),
    ("<think>   \n </think>\n\\boxed{42}", None, "auto", 0.0),
    ("</think>42", True, "auto", 0.0),
    # no answer / unterminated / no tags
    ("<think>16 - 3 - 4 = 9, 9 * 2 = 18</think>\n", None, "auto", 0.0),
    ("<think>16 - 3 - 4 = 9, so she sells 9 eggs", None, "auto", 0.0),
    ("She makes $18 every day.\n#### 18", None, "auto", 0.0),
    # text before <think>, two think blocks
    ("Sure! <think>9 * 2 = 18</think>18", None, "auto", 0.0),
    ("<think>9 eggs</think>hmm<think>9 * 2 = 18</think>18", None, "auto", 0.0),
    # hack: several answers, answer outside the tags, empty answer block
    ("<think>2 + 1 = 3</think><answer>3</answer><answer>4</answer>", None, "auto", 0.0),
    ("<think>2 + 1 = 3</think><answer>2</answer>\nActually it is 3.", None, "auto", 0.0),
    ("<think>2 + 1 = 3, the answer is <answer>3</answer></think>3", None, "auto", 0.0),
    ("<think>2 + 1 = 3</think><answer> </answer>3", None, "auto", 0.0),
    # R1-Zero required by the template: a bare answer is not enough
    ("<think>2 + 1 = 3</think>3", None, "r1-zero", 0.0),
    ("<think>2 + 1 = 3</think>3", None, "think", 1.0),
]


@pytest.mark.parametrize("text,prefilled,template,expected", FORMAT)
def test_format_table(text, prefilled, template, expected):
    assert format_reward([text], prefilled_think=[prefilled], template=[template]) == [expected]
    # the conversational form gives the same verdict
    assert format_reward([msg(text)], prefilled_think=prefilled, template=template) == [expected]


def test_format_factory_template_and_prompt_prefill():
    r1_zero = Format("r1-zero")
    assert r1_zero(["<think>2 + 1 = 3</think>3", ZERO_GOOD]) == [0.0, 1.0]
    # a string prompt ending in <think> marks the completion as pre-filled
    prompts = ["User: how many bolts?\nAssistant: <think>"] * 2
    assert format_reward(["2 + 1 = 3</think>3", "<think>2 + 1 = 3</think>3"], prompts=prompts) == [1.0, 0.0]


def test_format_reads_reasoning_split_by_a_response_parser():
    split = [{"role": "assistant", "reasoning_content": "2 + 1 = 3", "content": "3"}]
    empty = [{"role": "assistant", "reasoning_content": "", "content": "3"}]
    assert format_reward([split, empty]) == [1.0, 0.0]


# ============================================================================ tag_count

TAGS = [
    # (completion, prefilled, template, expected)
    ("<think>\n2 + 1 = 3\n</think>\n<answer>\n3\n</answer>", False, "r1-zero", 1.0),
    ("2 + 1 = 3\n</think>\n<answer>3</answer>", True, "r1-zero", 1.0),  # pre-filled <think> counts
    ("<think>2 + 1 = 3</think>3", False, "r1-zero", 0.5),
    ("<think>2 + 1 = 3</think>3", False, "think", 1.0),
    ("<think>2 + 1 = 3", False, "r1-zero", 0.25),
    # hack: empty reasoning does not collect the </think> credit
    ("<think></think><answer>3</answer>", False, "r1-zero", 0.75),
    ("<think></think>3", False, "think", 0.5),
    # out of order and repeated tags
    ("<answer>3</answer><think>2 + 1 = 3</think>", False, "r1-zero", 0.5),
    ("<think>a</think><think>b</think><answer>3</answer>", False, "r1-zero", 0.5),
    ("<think>2 + 1 = 3</think><answer>3</answer><answer>4</answer>", False, "r1-zero", 0.5),
    ("<think>x</think>3", True, "think", 0.0),  # repeats the pre-filled <think>
    ("3", False, "r1-zero", 0.0),
]


@pytest.mark.parametrize("text,prefilled,template,expected", TAGS)
def test_tag_count_table(text, prefilled, template, expected):
    assert TagCount(template)([text], prefilled_think=prefilled) == [expected]


def test_tag_count_template_column_overrides_default():
    texts = ["<think>2 + 1 = 3</think>3"] * 2
    assert tag_count(texts, template=["think", "r1-zero"]) == [1.0, 0.5]


# ============================================================================ language consistency

ZH_MIXED = (
    "<think>\nFirst, compute f(-2) = \\frac{-8}{-4} = 2. 然后 f(-1) = \\frac{-5}{-3} = \\frac{5}{3}，"
    "最后 f(0) = 1. So the sum is 2 + 5/3 + 1.\n</think>\n\\boxed{\\frac{14}{3}}"
)
LANG = [
    # (completion, script, expected)
    (GSM_GOOD, "latin", 1.0),
    # counted: First, compute, So, the, sum, is (6 Latin words) and 然, 后, 最, 后 (4 CJK
    # characters); f, \frac and the numbers are maths, neutral
    (ZH_MIXED, "latin", 6 / 10),
    (ZH_MIXED, "cjk", 4 / 10),
    ("<think>设 x 为鸭蛋数，则 x = 16 - 3 - 4 = 9，收入 9 \\times 2 = 18 元。</think>#### 18", "cjk", 1.0),
    ("<think>设 x 为鸭蛋数，则 x = 16 - 3 - 4 = 9</think>#### 18", "latin", 0.0),
    ("<think>Считаем: 16 - 3 - 4 = 9 яиц, then 9 * 2 = 18.</think>18", "cyrillic", 2 / 3),
    ("<think>\\[\\sqrt{117} = 3\\sqrt{13}\\]</think>3\\sqrt{13}", "latin", 0.0),  # no words at all
    ("<think></think>42", "latin", 0.0),  # hack: empty reasoning earns nothing
    ("The answer is 42, clearly.", "latin", 0.0),  # no think block: no reasoning
    ("Janet sells 9 eggs, 9 * 2 = 18.</think>18", "latin", 0.0),  # no pre-fill said: no reasoning
]


@pytest.mark.parametrize("text,script,expected", LANG)
def test_language_consistency_table(text, script, expected):
    assert LanguageConsistency(script)([text]) == [pytest.approx(expected)]


def test_language_consistency_default_is_latin_and_unknown_script_is_rejected():
    assert language_consistency([ZH_MIXED]) == [pytest.approx(0.6)]
    with pytest.raises(ValueError, match="unknown script 'arabic'"):
        LanguageConsistency("arabic")


# ============================================================================ accuracy


def math500(unique_id: str) -> dict:
    """One MATH-500 record by its unique_id (skips when the shared data is absent)."""
    path = DATA / "math500" / "test.jsonl"
    if not path.exists():
        pytest.skip(f"MATH-500 data not found at {path}")
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["unique_id"] == unique_id:
            return rec
    raise AssertionError(f"{unique_id} not in {path}")


def test_accuracy_math500_real_answers():
    frac = math500("test/algebra/2584.json")["answer"]  # \frac{14}{3}
    polar = math500("test/precalculus/807.json")["answer"]  # \left( 3, \frac{\pi}{2} \right)
    radical = math500("test/algebra/2036.json")["answer"]  # 3\sqrt{13}
    xeq = math500("test/algebra/2193.json")["answer"]  # x=5
    work = "<think>\nf(-2) = \\frac{-8}{-4} = 2, f(-1) = \\frac{5}{3}, f(0) = 1, so 2 + \\frac{5}{3} + 1.\n</think>\n"
    cases = [
        (work + "The sum is $\\boxed{\\frac{14}{3}}$.", frac, 1.0),
        (work + "The sum is $\\boxed{\\dfrac{14}{3}}$.", frac, 1.0),
        (work + "The sum is $\\boxed{\\frac{13}{3}}$.", frac, 0.0),
        ("<think>r = 3, theta = pi/2</think>\n$\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}$", polar, 1.0),
        ("<think>r = 3, theta = pi</think>\n$\\boxed{(3, \\pi)}$", polar, 0.0),
        ("<think>sqrt(36 + 81)</think>\nThe distance is $\\boxed{\\sqrt{117}}$.", radical, 1.0),
        ("<think>x = 5 or x = 1; 1 is extraneous</think>\n$\\boxed{5}$", xeq, 1.0),
        ("<think>x = 5 or x = 1</think>\n$\\boxed{1}$", xeq, 0.0),
    ]
    got = accuracy([c for c, _, _ in cases], gold=[g for _, g, _ in cases])
    assert got == [e for _, _, e in cases]


ACC = [
    # (completion, gold, extra columns, expected)
    (GSM_GOOD, "18", {}, 1.0),
    (GSM_GOOD.replace("#### 18", "#### 17"), "18", {}, 0.0),
    (msg(GSM_GOOD), "18", {}, 1.0),
    (ZERO_GOOD, "3", {}, 1.0),
    (GSM_GOOD, None, {}, None),  # no gold: not applicable
    # a box in the reasoning is a draft; only the answer part counts
    ("<think>maybe \\boxed{17}? no: 16 - 3 - 4 = 9, 9 * 2 = 18</think>\n\\boxed{18}", "18", {}, 1.0),
    ("<think>16 - 3 - 4 = 9, 9 * 2 = 18, so \\boxed{18}</think>", "18", {}, 0.0),
    # hack: several answers that disagree
    ("<think>2 + 1 = 3</think><answer>3</answer><answer>4</answer>", "3", {}, 0.0),
    ("<think>2 + 1 = 3</think><answer>3</answer><answer>4</answer>", "4", {}, 0.0),
    ("<think>9 * 2</think>It is \\boxed{18}, or maybe \\boxed{16}.", "18", {}, 0.0),
    ("<think>9 * 2</think>\\boxed{18}\n#### 16", "18", {}, 0.0),
    # ... but the same answer written twice (or spelt two ways) is one answer
    ("<think>2 + 1 = 3</think><answer>3</answer><answer> 3 </answer>", "3", {}, 1.0),
    ("<think>9 * 2</think>\\boxed{18}\n#### 18", "18", {}, 1.0),
    ("<think>sum</think>$\\boxed{\\frac{14}{3}}$, i.e. $\\boxed{\\dfrac{14}{3}}$", "\\frac{14}{3}", {}, 1.0),
    # hack: answer outside the tags (R1-Zero)
    ("<think>2 + 1 = 3</think><answer>2</answer>\nActually \\boxed{3}", "3", {}, 0.0),
    ("<think>so the answer is 3</think><answer></answer>", "3", {}, 0.0),
    ("<think>2 + 1 = 3</think>\n#### 3", "3", {"template": "r1-zero"}, 0.0),
    ("<think>2 + 1 = 3</think>\n#### 3", "3", {"template": "auto"}, 1.0),
    # a pre-fill the model ignored: its text is its answer (the format reward is what it loses)
    ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18, so \\boxed{18}", "18", {"prefilled_think": True}, 1.0),
    # ... but a think block the model opened itself and never closed has no answer
    ("<think>16 - 3 - 4 = 9 eggs, 9 * 2 = 18, so \\boxed{18}", "18", {"prefilled_think": False}, 0.0),
    ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18, so \\boxed{18}", "18", {"prefilled_think": False}, 1.0),
    ("16 - 3 - 4 = 9 eggs</think>\n\\boxed{18}", "18", {"prefilled_think": True}, 1.0),
]


@pytest.mark.parametrize("text,gold,extra,expected", ACC)
def test_accuracy_table(text, gold, extra, expected):
    columns = {k: [v] for k, v in extra.items()}
    assert accuracy([text], gold=[gold], **columns) == [expected]


def gsm8k_gold(question_start: str) -> str:
    """The real GSM8K test answer (after ``####``) of the question starting with ``question_start``."""
    path = DATA / "gsm8k" / "test.jsonl"
    if not path.exists():
        pytest.skip(f"GSM8K data not found at {path}")
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["question"].startswith(question_start):
            return rec["answer"].split("####")[-1].strip()
    raise AssertionError(f"no GSM8K question starts with {question_start!r}")


def _jsonl(rel: str) -> list[dict]:
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_benchmark_reference_earns_full_reward_and_a_wrong_gold_none():
    """All MATH-500 and GSM8K test references, written as completions the way a model would:
    accuracy 1 and format 1 for each; the same completions scored against the *next* item's
    gold earn 0 (unless the two golds happen to be equal)."""
    from ponder.verify import math_equal

    math = _jsonl("math500/test.jsonl")
    gsm = _jsonl("gsm8k/test.jsonl")
    comps = [f"<think>{r['solution']}</think>\nThe answer is $\\boxed{{{r['answer']}}}$." for r in math]
    golds = [r["answer"] for r in math]
    for r in gsm:
        work, final = r["answer"].rsplit("####", 1)
        comps.append(f"<think>{work.strip()}</think>\n#### {final.strip()}")
        golds.append(final.strip().replace(",", ""))
    n = len(comps)
    assert n == 500 + 1319
    assert accuracy(comps, gold=golds) == [1.0] * n
    assert format_reward(comps) == [1.0] * n
    shifted = golds[1:] + golds[:1]
    got = accuracy(comps, gold=shifted)
    expected = [1.0 if math_equal(s, g) else 0.0 for g, s in zip(golds, shifted)]
    assert got == expected
    assert sum(expected) < 0.05 * n  # neighbours rarely share an answer: the check has teeth


ADD = (
    "<think>\nunits: 7+8=15, write 5 carry 1\ntens: 5+6+1=12, write 2 carry 1\n"
    "hundreds: 4+0+1=5, write 5\nso 457+68=525\n</think>\n525"
)
COUNTDOWN_META = {"numbers": [25, 5, 4], "target": 80, "use_all": True}


def test_accuracy_through_task_verifier():
    janet = gsm8k_gold("Janet\u2019s ducks lay 16 eggs")
    rows = [
        # (completion, gold, task, meta, expected)
        (GSM_GOOD, janet, "gsm8k", {}, 1.0),
        (GSM_GOOD.replace("#### 18", "#### 16"), janet, "gsm8k", {}, 0.0),
        (ADD, "525", "addition", "{}", 1.0),  # meta as a JSON string, as a dataset column holds it
        (ADD.replace("\n525", "\n524"), "525", "addition", None, 0.0),
        (ADD, None, "addition", {}, None),
        ("<think>25 - 5 = 20, 20 * 4 = 80</think>\n<answer>(25 - 5) * 4 = 80</answer>", "80", "countdown",
         COUNTDOWN_META, 1.0),
        ("<think>25 * 4 = 100, 100 - 5 * 4 = 80</think>\n<answer>25 * 4 - 5 * 4 = 80</answer>", "80",
         "countdown", COUNTDOWN_META, 0.0),  # uses 4 twice
        # hack: two different equations -> conflicting answers, whatever the verifier would say
        ("<think>try</think><answer>(25 - 5) * 4</answer><answer>25 + 5 * 4</answer>", "80", "countdown",
         COUNTDOWN_META, 0.0),
        # hack: the answer only inside the reasoning
        ("<think>(25 - 5) * 4 = 80</think>\n<answer></answer>", "80", "countdown", COUNTDOWN_META, 0.0),
    ]
    got = accuracy([r[0] for r in rows], gold=[r[1] for r in rows], task=[r[2] for r in rows],
                   meta=[r[3] for r in rows], id=[f"row{i}" for i in range(len(rows))])
    assert got == [r[4] for r in rows]


def test_accuracy_logs_reasons_to_trl_table():
    logged = {}
    accuracy(["<think>a</think><answer>3</answer><answer>4</answer>", GSM_GOOD], gold=["3", "18"],
             log_extra=lambda column, values: logged.setdefault(column, values))
    assert logged["accuracy_reason"][0].startswith("conflicting final answers")
    assert len(logged["accuracy_reason"]) == 2


def test_empty_reasoning_gets_no_credit_for_reasoning():
    hack = "<think></think>18"
    assert format_reward([hack]) == [0.0]
    assert TagCount("think")([hack]) == [0.5]  # only <think>, not the empty block's </think>
    assert language_consistency([hack]) == [0.0]
    # accuracy judges the answer only (R1): the format reward is what demands reasoning
    assert accuracy([hack], gold=["18"]) == [1.0]


@pytest.mark.parametrize("text", ["5</think>7", "2 + 3 = 5</think>5", "7</think>5", "<think>5"])
def test_a_stray_think_tag_in_a_plain_answer_earns_nothing(text):
    # After a prompt that did not open a think block, a stray tag leaves two candidates; which
    # one math-verify reads first (it read "5" of "5</think>7") must not decide the reward.
    assert accuracy([text], gold=["5"], prompts=["What is 2 + 3?"]) == [0.0]
    assert accuracy(["5"], gold=["5"], prompts=["What is 2 + 3?"]) == [1.0]


# ============================================================================ length rewards


def test_kimi_length_reward_groups_by_prompt():
    # Two prompts, interleaved as in TRL's flat batch; lengths given as token ids.
    prompts = ["Q1 <think>", "Q2 <think>", "Q1 <think>", "Q1 <think>", "Q2 <think>", "Q1 <think>"]
    right, wrong = "9 * 2 = 18</think>#### 18", "9 * 2 = 16</think>#### 16"
    completions = [right, right, right, wrong, right, wrong]
    sizes = [100, 50, 200, 300, 50, 100]
    got = length(completions, prompts=prompts, gold=["18"] * 6, completion_ids=[[0] * s for s in sizes])
    # Q1: min 100, max 300 -> λ = 0.5, 0.0, -0.5, 0.5 for lengths 100, 200, 300, 100
    # Q2: every length equal -> λ = 0
    assert got == [0.5, 0.0, 0.0, -0.5, 0.0, 0.0]  # the wrong ones get min(0, λ)


def test_kimi_length_needs_prompts_and_skips_missing_gold():
    with pytest.raises(RewardInputError, match="prompts"):
        length(["<think>a</think>1"], gold=["1"])
    got = length(["<think>a</think>1", "<think>ab</think>1"], prompts=["q", "q"], gold=[None, "1"])
    assert got == [None, -0.5]


def test_overlong_dapo_soft_punishment():
    soft = Overlong(max_len=100, cache=20)
    sizes = [0, 80, 90, 100, 101, 500]
    assert soft(["x"] * 6, completion_ids=[[1] * s for s in sizes]) == [0.0, 0.0, -0.5, -1.0, -1.0, -1.0]
    # without token ids the length is in characters
    assert soft(["a" * 90]) == [-0.5]
    with pytest.raises(ValueError, match="cache <= max_len"):
        Overlong(max_len=10, cache=20)


def test_cosine_scaled_accuracy():
    right, wrong = "<think>9 * 2</think>#### 18", "<think>9 * 2</think>#### 16"
    sizes = [0, 50, 100, 400, 0, 50, 100, 400]
    got = Cosine(max_len=100)([right] * 4 + [wrong] * 4, gold=["18"] * 8,
                                   completion_ids=[[1] * s for s in sizes])
    # correct: 1.0 when empty, 0.5 at max_len and beyond; wrong: -1.0 when short, -0.5 when long
    assert got == pytest.approx([1.0, 0.75, 0.5, 0.5, -1.0, -0.75, -0.5, -0.5])
    assert cosine([right], gold=[None]) == [None]


# ============================================================================ inputs


def test_trl_extras_are_ignored_and_both_completion_forms_agree():
    extras = dict(trainer_state=object(), log_metric=lambda *a: None, environments=None, subject=["x"])
    assert format_reward([GSM_GOOD], **extras) == format_reward([msg(GSM_GOOD)]) == [1.0]


@pytest.mark.parametrize("call,match", [
    (lambda: format_reward(["a", "b"], prefilled_think=[True]), "'prefilled_think' has 1 values for 2"),
    (lambda: format_reward(["a"], prefilled_think="false"), "must hold booleans"),
    (lambda: format_reward(["a"], template="zero"), "column 'template'"),
    (lambda: format_reward([42]), "string or a list of chat messages"),
    (lambda: format_reward(["a", ["b"]]), "list of message dicts"),
    (lambda: accuracy(["a"], gold=["1"], meta=["{oops"]), "meta of sample 0 is not valid JSON"),
    (lambda: accuracy(["a"], gold=["1"], task=[3]), "column 'task'"),
])
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(RewardInputError, match=match):
        call()
