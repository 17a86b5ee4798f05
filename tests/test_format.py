"""The reasoning-format contract: parse (whole and streamed), answer text, extraction, rendering."""

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.format import (
    ReasoningSplitter,
    Thinking,
    canonical_groups,
    completion_after,
    conversation,
    decide_thinking,
    extract_answer,
    final_answer,
    format_completion,
    history_turn,
    last_boxed,
    parse,
    render,
    statements,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# (completion, start, reasoning, answer, think_open, think_closed)
SHAPES = [
    # the R1 template, whatever the start
    ("<think>2+2 is 4</think>The answer is 4.", "plain", "2+2 is 4", "The answer is 4.", True, True),
    ("<think>2+2 is 4</think>The answer is 4.", "inside", "2+2 is 4", "The answer is 4.", True, True),
    ("<think>2+2 is 4</think>The answer is 4.", "unknown", "2+2 is 4", "The answer is 4.", True, True),
    # R1-Zero: the answer keeps its tags (final_answer reads the block)
    ("<think>add them</think><answer>4</answer>", "plain", "add them", "<answer>4</answer>", True, True),
    # pre-filled by the prompt: only </think> in the text
    ("Let me add.\n2+2=4\n</think>\n\n4", "inside", "Let me add.\n2+2=4", "4", False, True),
    # a server whose template may have opened the block: the </think> decides
    ("Let me add.\n2+2=4\n</think>\n\n4", "unknown", "Let me add.\n2+2=4", "4", False, True),
    # a prompt that did not pre-fill: a stray </think> is answer text, not a think block
    ("Let me add.</think>4", "plain", "", "Let me add.</think>4", False, False),
    # a model-written <think> after a pre-fill is dropped, not kept as reasoning
    ("<think>\nhmm</think>5", "inside", "hmm", "5", True, True),
    # unterminated: all reasoning
    ("<think>still thinking about 2+2", "plain", "still thinking about 2+2", "", True, False),
    ("still thinking", "inside", "still thinking", "", False, False),
    # no tags: the answer (plain, unknown)
    ("The answer is 4", "plain", "", "The answer is 4", False, False),
    ("The answer is 4", "unknown", "", "The answer is 4", False, False),
    ("", "plain", "", "", False, False),
    # text before a <think> is not a think block: it is answer text
    ("Sure! <think>hmm</think>5", "plain", "", "Sure! <think>hmm</think>5", False, False),
    # text after the first </think> is the answer, tags and all
    ("<think>a</think>b<think>c</think>d", "plain", "a", "b<think>c</think>d", True, True),
    # whitespace around both parts is not part of them
    ("  \n<think>\n hello </think>\n\n world  ", "plain", "hello", "world", True, True),
]


@pytest.mark.parametrize("text,start,reasoning,answer,opened,closed", SHAPES)
def test_parse_shapes(text, start, reasoning, answer, opened, closed):
    p = parse(text, start)
    assert (p.reasoning, p.answer, p.think_open, p.think_closed) == (reasoning, answer, opened, closed)


def _streamed(text: str, start, cuts: list[int]) -> tuple[str, str]:
    sp = ReasoningSplitter(start)
    pieces, last = [], 0
    for c in sorted(set(cuts)) + [len(text)]:
        pieces += sp.feed(text[last:c])
        last = c
    pieces += sp.finish()
    assert all(s for _, s in pieces), "no empty pieces are emitted"
    return "".join(s for k, s in pieces if k == "reasoning"), "".join(s for k, s in pieces if k == "answer")


fragments = st.lists(
    st.one_of(
        st.sampled_from(["<think>", "</think>", "<", "</", "<thi", "</thin", "think>", ">", "<answer>", "</answer>",
                         " ", "\n", "  \n", "\\boxed{4}", "R", "A"]),
        st.text(alphabet="ab <>/\n", max_size=6),
    ),
    max_size=25,
).map("".join)


@settings(max_examples=600, deadline=None)
@given(fragments, st.sampled_from(["inside", "plain", "unknown"]), st.data())
def test_streaming_equals_parse_for_every_chunking(text, start, data):
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    p = parse(text, start)
    assert _streamed(text, start, cuts) == (p.reasoning, p.answer)
    assert _streamed(text, start, list(range(len(text)))) == (p.reasoning, p.answer)  # one character at a time


# Cases of vLLM's reasoning-parser tests (tests/reasoning/test_deepseekr1_reasoning_parser.py and
# test_qwen3_reasoning_parser.py): (output, start, reasoning, content). vLLM's DeepSeek-R1 parser
# assumes the template pre-filled <think> ("inside"); its Qwen3 parser reads thinking from the
# request ("inside" when enabled, "plain" when disabled). Where ponder differs on purpose:
# * whitespace: vLLM keeps it ("\nThis is the rest"; its own streamed and non-streamed results
#   differ on a leading newline); ponder strips both parts, streamed or not.
# * an empty part is "" here, None there.
VLLM_CASES = [
    ("This is a reasoning section</think>This is the rest", "inside", "This is a reasoning section", "This is the rest"),
    ("This is a reasoning section</think>", "inside", "This is a reasoning section", ""),
    ("This is content", "inside", "This is content", ""),  # R1 parser: no </think> -> all reasoning
    ("This\nThat</think>This is the rest\nThat", "inside", "This\nThat", "This is the rest\nThat"),
    ("</think>This is the rest", "inside", "", "This is the rest"),
    ("<think>This is a reasoning section</think>This is the rest", "inside", "This is a reasoning section",
     "This is the rest"),
    ("<think>This is a reasoning section", "inside", "This is a reasoning section", ""),
    ("\n<think>This is a reasoning section</think>\nThis is the rest", "inside", "This is a reasoning section",
     "This is the rest"),
    ("<think>This is a reasoning section</think>This is the rest", "plain", "This is a reasoning section",
     "This is the rest"),
    ("This is plain content", "plain", "", "This is plain content"),  # Qwen3 with thinking disabled
    ("<think>reasoning</think>", "plain", "reasoning", ""),
]


@pytest.mark.parametrize("output,start,reasoning,content", VLLM_CASES)
def test_vllm_reasoning_parser_cases(output, start, reasoning, content):
    p = parse(output, start)
    assert (p.reasoning, p.answer) == (reasoning, content)
    assert _streamed(output, start, list(range(len(output)))) == (reasoning, content)


@pytest.mark.parametrize("deltas,start,reasoning,content", [
    (["<think>This is a reasoning section", "</think>", "This is the rest"], "inside",
     "This is a reasoning section", "This is the rest"),
    (["reasoning section", "</think>This is the rest"], "inside", "reasoning section", "This is the rest"),
    (["<think>reasoning</think>"], "plain", "reasoning", ""),
    (["reasoning section", "</think>content"], "unknown", "reasoning section", "content"),
    (["<th", "ink>R</th", "ink>A"], "plain", "R", "A"),  # tags split across deltas
])
def test_multi_token_deltas_do_not_leak_tags(deltas, start, reasoning, content):
    sp = ReasoningSplitter(start)
    pieces = [p for d in deltas for p in sp.feed(d)] + sp.finish()
    assert ("".join(s for k, s in pieces if k == "reasoning"), "".join(s for k, s in pieces if k == "answer")) == (
        reasoning, content)


def test_unknown_start_streams_nothing_until_it_can_tell():
    sp = ReasoningSplitter("unknown")
    assert sp.feed("Let me think") == []  # reasoning or answer? not known yet
    assert sp.feed(" more</think>") == [("reasoning", "Let me think more")]
    assert sp.feed(" 42") == [("answer", "42")]
    plain = ReasoningSplitter("unknown")
    assert plain.feed("Just an answer") == [] and plain.finish() == [("answer", "Just an answer")]


# ---------------------------------------------------------------------- the answer text rule

@pytest.mark.parametrize("text,start,finish,expected", [
    ("<think>r</think>42", "plain", None, "42"),          # 1. closed: the answer part
    ("42", "plain", None, "42"),                          # 2. no think block: the whole text
    ("<think>r 42", "plain", "eos", ""),                  # 3. the model opened and never closed
    ("r 42", "inside", "eos", "r 42"),                    # 4. a pre-fill the model ignored
    ("r 42", "inside", "length", ""),                     #    ... unless the token limit cut it
    ("<think>r 42", "inside", "eos", ""),                 # re-opened by the model: its own block
])
def test_answer_text_rule(text, start, finish, expected):
    assert parse(text, start).answer_text(finish) == expected


# ---------------------------------------------------------------------- extraction

EXTRACT = [
    # boxes: nested, \fbox, \boxed 5, the last one wins, an unbalanced last box is skipped
    (r"so \boxed{\frac{14}{3}}.", r"\frac{14}{3}", "boxed"),
    (r"first \boxed{1} then \boxed{2}", "2", "boxed"),
    (r"\fbox{7}", "7", "boxed"),
    # the R1-Zero block, with a box inside it
    ("<answer>42</answer>", "42", "answer-block"),
    (r"<answer>\boxed{42}</answer>", "42", "answer-block"),
    ("<answer>3</answer> then <answer>5</answer>", "5", "answer-block"),
    # GSM8K's own format
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72", "gsm8k"),
    # the Minerva / lm-evaluation-harness sentence
    ("Final Answer: The final answer is $5\\sqrt{2}$. I hope it is correct.", "5\\sqrt{2}", "final-answer"),
    ("So the final answer is: 18.", "18", "final-answer"),
    ("**Final Answer**\n\\[\n\\boxed{12}\n\\]", "12", "boxed"),
    ("Final answer:\n42", "42", "final-answer"),
    # a later explicit final-answer line beats an earlier (intermediate) box
    ("We get \\boxed{3} for x.\nFinal Answer: The final answer is 5. I hope it is correct.", "5", "final-answer"),
    # "the answer is X" only where X is an answer, not prose
    ("The answer is $3\\sqrt{2}$", "3\\sqrt{2}", "answer-is"),
    ("33 + 13 = 46. The answer is a beautiful addition of two numbers.", None, None),
    # a hedge between "the answer is" and the value is not part of it (SmolLM2 writes "indeed")
    ("The answer is indeed 9.", "9", "answer-is"),
    ("The final answer is clearly $12$.", "12", "final-answer"),
    ("The answer is about the area of the circle.", None, None),
    # bare short answers
    ("x = 3", "x = 3", "bare"),
    ("A long paragraph " * 20, None, None),
    ("Before the final answer, let's check.", None, None),
    ("", None, None),
]


@pytest.mark.parametrize("text,value,rule", EXTRACT)
def test_final_answer(text, value, rule):
    found = final_answer(text)
    assert (found.value if found else None, found.rule if found else None) == (value, rule)


@pytest.mark.parametrize("text,value", [
    ("33 + 13 = 46. The answer is a beautiful addition of two numbers.", "46"),  # the value after "="
    ("So 33 + 13 = 46", "46"),
    ("Therefore, Janet makes 624 dollars per day.", "624"),
    ("2480 / 4 = 624. Done in 2 steps.", "624"),  # after "=", not the last number
])
def test_numeric_fallback(text, value):
    assert final_answer(text, "number").value == value
    assert final_answer(text, "number").rule in ("fallback:number", "bare")


def test_extraction_never_reads_the_reasoning():
    assert extract_answer("<think>I get \\boxed{5} maybe</think>7") == "7"
    assert extract_answer("<think>I get \\boxed{5} maybe") is None
    assert extract_answer("reasoning</think>\n\n\\boxed{12}", "inside") == "12"


def test_statements_list_every_explicit_answer():
    s = statements("\\boxed{3} and \\boxed{4}\n#### 4")
    assert [(x.rule, x.value) for x in s] == [("boxed", "3"), ("boxed", "4"), ("gsm8k", "4")]


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
    assert sum(extract_answer(row["solution"]) == row["answer"] for row in math) >= 490


def test_last_boxed():
    assert last_boxed(r"\boxed{2} and broken \boxed{1 + {2}") == "2"
    assert last_boxed(r"\boxed{{a}{b}}") == "{a}{b}"
    assert last_boxed(r"\boxed 5$") == "5"
    assert last_boxed("no box") is None


def test_canonical_groups_pool_equal_answers():
    keys = canonical_groups(["1/2", "0.5", None, "3"], lambda a, b: {a, b} == {"1/2", "0.5"})
    assert keys == [0, 0, None, 1]


tag_soup = st.lists(
    st.one_of(st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "}", "{", "####",
                               "The answer is", "Final Answer:", "=", "\n"]), st.text(max_size=8)),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), tag_soup), st.sampled_from(["inside", "plain", "unknown"]))
def test_never_crashes(text, start):
    p = parse(text, start)
    assert isinstance(p.reasoning, str) and isinstance(p.answer, str)
    found = final_answer(p.answer_text(), "number")
    assert found is None or isinstance(found.value, str)


# ---------------------------------------------------------------------- rendering

# A template that opens the think block itself, as DeepSeek-R1-Distill's and Qwen3's do.
PREFILLING_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
)
# A ChatML template that writes a default system prompt when none is given (as SmolLM2's does).
DEFAULT_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful AI assistant named Bob, "
    "trained by someone<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    from ponder.models.tokenizer import train_tokenizer

    return train_tokenizer(["What is 2+2? <think>4</think>4"], vocab_size=300)


def _with_template(tok, template):
    t = copy.deepcopy(tok)
    t.chat_template = template
    return t


def test_ponder_tokenizers_decide_prefill_unless_the_checkpoint_records_otherwise(tokenizer):
    auto = decide_thinking("auto", tokenizer)
    assert auto.start == "prefill" and "one token" in auto.reason  # <think> is a token of its vocabulary

    class Cfg:
        ponder_thinking = "model"

    assert decide_thinking("auto", tokenizer, Cfg()).start == "model"
    assert decide_thinking("on", tokenizer, Cfg()).start == "prefill"
    assert decide_thinking("off", tokenizer).start == "skip"  # knows the tags: an empty block


def test_render_under_each_start(tokenizer):
    model = Thinking("auto", "model", "")
    assert render("What is 2+2?", tokenizer, model).text == "User: What is 2+2?\nAssistant: "
    pre = render("What is 2+2?", tokenizer, Thinking("on", "prefill", ""))
    assert pre.text == "User: What is 2+2?\nAssistant: <think>" and pre.prefilled is True
    skip = render("What is 2+2?", tokenizer, Thinking("off", "skip", ""))
    assert skip.text == "User: What is 2+2?\nAssistant: <think>\n</think>\n" and skip.prefilled is False
    sys_ = render("q", tokenizer, model, system="Be brief.")
    assert sys_.text == "Be brief.\nUser: q\nAssistant: "
    assert render("q", None, model, system="r1-zero").text.count("<answer>") == 2  # a named system prompt


def test_a_template_that_opens_think_itself_is_prefilled_once(tokenizer):
    tok = _with_template(tokenizer, PREFILLING_TEMPLATE)
    assert decide_thinking("auto", tok).start == "prefill"
    p = render("What is 2+2?", tok, decide_thinking("auto", tok), system="S")
    assert p.text == "<|system|>S\n<|user|>What is 2+2?\n<|assistant|><think>\n" and p.start == "inside"
    off = render("What is 2+2?", tok, decide_thinking("off", tok))
    assert off.text.endswith("<|assistant|><think>\n</think>\n") and off.start == "plain"
    # nothing can un-open it: "model" still starts inside, because the text says so
    assert render("q", tok, Thinking("auto", "model", "")).start == "inside"


def test_a_model_without_think_tags_gets_nothing_added():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>")
    tok.chat_template = DEFAULT_SYSTEM_TEMPLATE
    t = decide_thinking("auto", tok)
    assert t.start == "model" and "knows no think tags" in t.reason
    p = render("hi", tok, t)
    assert p.text.endswith("<|im_start|>assistant\n") and p.start == "plain"
    assert p.template_system  # the template wrote "You are a helpful AI assistant named Bob…"
    assert not render("hi", tok, t, system="Be brief.").template_system
    assert decide_thinking("off", tok).start == "model"  # no tags: nothing to switch off


def test_endpoints_render_messages_and_parse_by_mode():
    for mode, start in (("auto", "unknown"), ("on", "inside"), ("off", "plain")):
        p = render("q", None, decide_thinking(mode, remote=True), system="S")
        assert p.text is None and p.payload == [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]
        assert p.start == start


def test_conversation_keeps_answers_only_and_checks_roles():
    msgs = conversation([{"role": "developer", "content": "S"}, {"role": "user", "content": "q"},
                         {"role": "assistant", "content": "a", "reasoning_content": "secret"}])
    assert msgs == [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"}]
    with pytest.raises(ValueError, match="role 'tool'"):
        conversation([{"role": "tool", "content": "x"}])
    assert history_turn("", "<think>all thinking 42") == {"role": "assistant", "content": "all thinking 42"}
    assert history_turn("42", "<think>r</think>42") == {"role": "assistant", "content": "42"}


def test_format_completion_round_trips_and_follows_its_prompt():
    for template in ("think", "r1-zero"):
        full = format_completion("step 1\nstep 2", "9", template)
        p = parse(full)
        assert (p.reasoning, p.think_closed) == ("step 1\nstep 2", True)
        assert p.answer_tagged == (template == "r1-zero")
        assert final_answer(p.answer_text()).value == "9"
    assert completion_after("Assistant: <think>", "<think>r</think>a") == "r</think>a"
    assert completion_after("Assistant: ", "<think>r</think>a") == "<think>r</think>a"
    with pytest.raises(ValueError, match="unknown template"):
        format_completion("r", "a", "nope")
