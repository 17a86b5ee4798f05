"""The reasoning format: every completion shape parses, answers are extracted, nothing crashes."""

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.format import (
    build_messages,
    build_prompt,
    extract_answer,
    format_completion,
    last_boxed,
    parse,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# (completion, reasoning, answer, think_open, think_closed, answer_tagged)
SHAPES = [
    # 1. R1 template
    ("<think>2+2 is 4</think>The answer is 4.", "2+2 is 4", "The answer is 4.", True, True, False),
    # 2. R1-Zero template
    ("<think>add them</think><answer>4</answer>", "add them", "4", True, True, True),
    ("<think>a</think>\n<answer> 7 </answer>\n", "a", "7", True, True, True),
    # 3. <think> pre-filled by the chat template: only </think> present
    ("Let me add.\n2+2=4\n</think>\n\n4", "Let me add.\n2+2=4", "4", False, True, False),
    # 4. unterminated: all reasoning, no answer
    ("<think>still thinking about 2+2", "still thinking about 2+2", "", True, False, False),
    # 5. plain text
    ("The answer is 4", "", "The answer is 4", False, False, False),
    ("", "", "", False, False, False),
    # text before <think> is dropped from both parts (chat preamble noise)
    ("Sure! <think>hmm</think>5", "hmm", "5", True, True, False),
    # a second think block after the first belongs to the answer part (not silently dropped)
    ("<think>a</think>b<think>c</think>d", "a", "b<think>c</think>d", True, True, False),
    # several answer blocks: the last one is the answer
    ("<think>r</think><answer>3</answer><answer>5</answer>", "r", "5", True, True, True),
]


@pytest.mark.parametrize("text,reasoning,answer,t_open,t_closed,tagged", SHAPES)
def test_parse_shapes(text, reasoning, answer, t_open, t_closed, tagged):
    p = parse(text)
    assert (p.reasoning, p.answer) == (reasoning, answer)
    assert (p.think_open, p.think_closed, p.answer_tagged) == (t_open, t_closed, tagged)


def test_prefilled_think_makes_untagged_text_reasoning():
    assert parse("thinking, no end", prefilled_think=True).reasoning == "thinking, no end"
    assert parse("thinking, no end", prefilled_think=True).answer == ""
    assert parse("thinking, no end").answer == "thinking, no end"


BOXED = [
    (r"so \boxed{5}", "5"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"first \boxed{1} then \boxed{2}", "2"),  # last one wins
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"\boxed{{a}{b}}", "{a}{b}"),
    (r"\boxed{2} and broken \boxed{1 + {2}", "2"),  # unbalanced last box is skipped
    (r"\fbox{7}", "7"),
    (r"\boxed 5$", "5"),
    ("no box here", None),
]


@pytest.mark.parametrize("text,want", BOXED)
def test_last_boxed(text, want):
    assert last_boxed(text) == want


EXTRACT = [
    ("<think>x</think>The answer is \\boxed{\\frac{14}{3}}.", r"\frac{14}{3}"),
    ("<think>x</think><answer>42</answer>", "42"),
    ("<think>x</think><answer>\\boxed{42}</answer>", "42"),
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),
    ("So the final answer is: 18.", "18"),
    ("The answer is $3\\sqrt{2}$", "3\\sqrt{2}"),
    ("<think>I get \\boxed{5} maybe</think>7", "7"),  # a box in the reasoning is a draft
    ("<think>I get \\boxed{5} maybe", None),  # unterminated: no answer
    ("reasoning</think>\n\n\\boxed{12}", "12"),  # pre-filled think
    ("x = 3", "x = 3"),  # short bare answer
    ("A long paragraph " * 20, None),  # no marker, too long to be an answer
    ("", None),
]


@pytest.mark.parametrize("text,want", EXTRACT)
def test_extract_answer(text, want):
    assert extract_answer(text) == want


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present")
def test_extracts_every_gsm8k_and_math500_reference_answer():
    gsm = _jsonl(DATA / "gsm8k" / "test.jsonl")
    for row in gsm:
        want = row["answer"].split("####")[-1].strip()
        assert extract_answer(row["answer"]) == want
    math = _jsonl(DATA / "math500" / "test.jsonl")
    found = sum(extract_answer(row["solution"]) is not None for row in math)
    assert found == len(math) == 500


def test_format_completion_round_trips():
    for template in ("think", "r1-zero"):
        p = parse(format_completion("step 1\nstep 2", "9", template))
        assert (p.reasoning, p.answer, p.think_closed) == ("step 1\nstep 2", "9", True)
        assert p.answer_tagged == (template == "r1-zero")


def test_prompts():
    msgs = build_messages("What is 2+2?", system="")
    assert msgs == [{"role": "user", "content": "What is 2+2?"}]
    assert build_messages("q", template="r1-zero")[0]["content"].count("<answer>") == 2
    p = build_prompt("What is 2+2?", system="S")
    assert p == "S\nUser: What is 2+2?\nAssistant: <think>"
    assert build_prompt("q", system="", prefill_think=False) == "User: q\nAssistant: "
    with pytest.raises(ValueError, match="unknown template"):
        build_messages("q", template="nope")


tag_soup = st.lists(
    st.one_of(
        st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "}", "{", "####", "The answer is", "\n"]),
        st.text(max_size=8),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), tag_soup))
def test_never_crashes(text):
    p = parse(text)
    assert isinstance(p.reasoning, str) and isinstance(p.answer, str)
    # Nothing is invented: both parts come from the text.
    assert p.reasoning.replace("<think>", "") in text.replace("<think>", "") or p.reasoning == ""
    ans = extract_answer(text)
    assert ans is None or isinstance(ans, str)
    box = last_boxed(text)
    assert box is None or box in text


# A template that opens the think block itself, as DeepSeek-R1-Distill's and Qwen3's do.
PREFILLING_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    from ponder.models.tokenizer import train_tokenizer

    return train_tokenizer(["What is 2+2? <think>4</think>4"], vocab_size=300)


@pytest.mark.parametrize("template", ["think", "r1-zero"])
def test_build_prompt_with_a_tokenizer_chat_template(tokenizer, template):
    p = build_prompt("What is 2+2?", template=template, system="Be brief.", tokenizer=tokenizer)
    assert p == "Be brief.\nUser: What is 2+2?\nAssistant: <think>"
    default = build_prompt("What is 2+2?", template=template, tokenizer=tokenizer)
    assert default.startswith(build_messages("q", template)[0]["content"] + "\n")
    assert ("<answer>" in default) == (template == "r1-zero")
    no_system = build_prompt("What is 2+2?", template=template, system="", tokenizer=tokenizer, prefill_think=False)
    assert no_system == "User: What is 2+2?\nAssistant: "


def test_build_prompt_does_not_open_think_twice(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = PREFILLING_TEMPLATE
    p = build_prompt("What is 2+2?", system="S", tokenizer=tok)
    assert p == "<|system|>S\n<|user|>What is 2+2?\n<|assistant|><think>\n"
    # and a completion after it parses as shape 3 (pre-filled)
    done = parse("2+2=4</think>4")
    assert (done.reasoning, done.answer, done.think_open) == ("2+2=4", "4", False)
