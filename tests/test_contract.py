"""The reasoning-format contract has one owner: every consumer renders, splits and judges through it.

Two kinds of check: the source itself (no module outside ``ponder/format`` builds a prompt or
decides "pre-filled" on its own -- a new module that does fails here), and behaviour (training,
rejection sampling, evaluation, serve and ask render the same prompt for the same question and
model; streamed and whole completions split alike; the reward and the evaluation judge alike).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ponder"

# pattern -> files allowed to contain it (the owners), and why it is forbidden elsewhere
FORBIDDEN = {
    # generate/gguf.py defines the method (GGUFTokenizer.apply_chat_template) that render calls
    r"apply_chat_template\(": ({"format/render.py", "generate/gguf.py"}, "prompts are rendered by ponder.format.render"),
    r"""['"]User: |['"]Assistant: """: ({"format/render.py"}, "the plain layout is ponder.format.render's"),
    r"endswith\((THINK_OPEN|['\"]<think>['\"])\)": ({"format/tags.py"}, "pre-filled is ponder.format.ends_in_think"),
    r"THINK_OPEN \+ |\+ THINK_OPEN\b": ({"format/render.py", "format/__init__.py", "generate/types.py"},
                                        "tags are added by render (pre-fill) and Completion.full_text only"),
    r"ThinkSplitter|def _answer_part|def final_answers": (set(), "one parser: ponder.format.parse"),
}


def _sources():
    for path in sorted(ROOT.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


@pytest.mark.parametrize("pattern", list(FORBIDDEN))
def test_no_module_builds_prompts_or_splits_completions_by_hand(pattern):
    allowed, why = FORBIDDEN[pattern]
    found = [f"{rel}:{n}" for rel, text in _sources() if rel not in allowed
             for n, line in enumerate(text.splitlines(), 1)
             if re.search(pattern, line) and not line.lstrip().startswith("#")]
    assert not found, f"{why}; found in {', '.join(found)}"


def test_the_scan_would_catch_a_hand_built_prompt(tmp_path):
    """The check above has teeth: the same patterns flag the code this project used to have."""
    old = ['text = tokenizer.apply_chat_template(msgs, tokenize=False)', 'return f"User: {q}\\nAssistant: "',
           'pre = prompt.rstrip().endswith("<think>")', 'text = THINK_OPEN + c.text']
    assert all(any(re.search(p, line) for p in FORBIDDEN) for line in old)


# ---------------------------------------------------------------------- one prompt for one model


def _agreeing_prompts(model_dir: Path, question: str, tmp_path: Path) -> dict[str, object]:
    """The prompt each consumer shows the model for ``question``."""
    from ponder.evaluate.harness import EvalConfig, run_eval
    from ponder.generate import load_backend, prompt
    from ponder.io import read_records
    from ponder.serve.protocol import Message, render_messages
    from ponder.train.common import prompt_for, thinking_for
    from ponder.train.sample import SampleConfig, rejection_sample

    engine = load_backend(str(model_dir))
    task_file = tmp_path / "q.jsonl"
    task_file.write_text(json.dumps({"question": question, "answer": "5"}) + "\n")
    task = f"jsonl:path={task_file}"
    out = {
        "train": prompt_for(question, engine.tokenizer, thinking_for(engine.tokenizer, engine.model.config)),
        "ask/chat": prompt(engine, question).text,
        "serve": render_messages([Message(role="user", content=question)], engine, True).text,
    }
    res = run_eval(EvalConfig(model=str(model_dir), task=task, n=1, max_tokens=4, out=str(tmp_path / "e")), engine,
                   progress=False)
    out["eval"] = read_records(res.out / "samples.jsonl")[0]["prompt"]
    from ponder.tasks import get_task

    cfg = SampleConfig(model=str(model_dir), task=task, split="test", n=1, max_tokens=4, verify=False,
                       out=str(tmp_path / "s.jsonl"))
    rejection_sample(engine, get_task(task), get_task(task).examples("test"), cfg, "m", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines() if x.strip()]
    if rows:
        out["sample"] = rows[0]["prompt"]
    return out


def test_every_consumer_renders_one_prompt_for_a_ponder_model(tmp_path):
    from ponder.testing import tiny_engine

    d = tmp_path / "tiny"
    tiny_engine(save_to=d)
    got = _agreeing_prompts(d, "What is 2 + 3?", tmp_path)
    assert len(got) == 5, got  # unverified sampling keeps every sample
    assert len(set(got.values())) == 1, got
    assert next(iter(got.values())).endswith("Assistant: <think>")  # tiny_engine records a prefill start


def test_every_consumer_renders_one_prompt_for_smollm2(smollm2_dir, tmp_path):
    got = _agreeing_prompts(smollm2_dir, "What is 2 + 3?", tmp_path)
    assert len(set(got.values())) == 1, got
    p = next(iter(got.values()))
    # SmolLM2's own ChatML template, its default system prompt, and nothing added: it knows no tags
    assert p.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert p.endswith("<|im_start|>assistant\n")


# ---------------------------------------------------------------------- one judge


def test_the_reward_and_evaluation_judge_alike():
    """Every shape the accuracy reward sees, judged by the reward and by the task's score."""
    from ponder.rewards import accuracy
    from ponder.tasks import get_task, judge

    task = get_task("addition")
    ex = {"id": "a", "prompt": "What is 33 + 13?", "gold": "46", "meta": {}}
    cases = [
        ("<think>33+13</think>46", "plain"), ("33+13</think>46", "inside"), ("33 + 13 = 46", "plain"),
        ("<think>33+13 = 46", "plain"), ("33 + 13 = 46", "inside"), ("<think>r</think>\\boxed{46} \\boxed{45}", "plain"),
        ("<think>r</think>The answer is a nice sum.", "plain"), ("<think>r</think>\\boxed{46}", "plain"),
    ]
    for text, start in cases:
        prompt = "User: What is 33 + 13?\nAssistant: " + ("<think>" if start == "inside" else "")
        r = accuracy([text], prompts=[prompt], gold=["46"], task=["addition"], id=["a"])[0]
        v = judge(task, text, ex, start=start)
        assert r == float(v.correct), (text, start, r, v)


def test_real_smollm2_completions_extract_an_answer_and_judge_right():
    """Greedy SmolLM2-135M-Instruct outputs (tests/data/real, made by plain transformers): the
    numeric fallback finds an answer in (nearly) every GSM8K and addition completion, and the
    judge's verdict is the gold compared with it."""
    from ponder.format import final_answer
    from ponder.tasks import get_task, judge

    rows = [json.loads(x) for x in (Path(__file__).parent / "data/real/smollm2_completions.jsonl").read_text()
            .splitlines() if x.strip()]
    assert len(rows) == 50
    found = {"gsm8k": 0, "addition": 0}
    for r in rows:
        if r["source"] not in found:
            continue
        task = get_task("gsm8k" if r["source"] == "gsm8k" else "addition")
        v = judge(task, r["completion"], {"id": "x", "prompt": r["question"], "gold": r["gold"], "meta": {}},
                  finish_reason=r["finish"])
        found[r["source"]] += v.answer is not None
        if "####" in r["completion"] and v.answer is not None:
            assert v.answer == final_answer(r["completion"]).value  # the explicit "####" wins over the fallback
    # SmolLM2 ends in prose ("Therefore, Janet makes 624 dollars per day.") or "a + b = c"
    assert found["gsm8k"] >= 18 and found["addition"] == 20, found


# ---------------------------------------------------------------------- ponder parse / ponder rewards


def _run(args):
    from typer.testing import CliRunner

    from ponder.cli.main import app

    return CliRunner().invoke(app, args)


def test_ponder_parse_is_the_contract_on_the_command_line(tmp_path):
    rows = [
        {"text": "<think>2+2</think>\\boxed{4}"},
        {"text": "2+2</think>4", "prefilled": True},
        {"text": "33 + 13 = 46", "gold": "46"},
        {"text": "Final Answer: The final answer is $5$. I hope it is correct.", "gold": "6"},
        {"text": "The answer is 7.", "prefilled": None},
        {"text": "<think>never ends", "finish_reason": "length"},
    ]
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outs = {}
    for stream in (None, 1, 3, 1000):
        r = _run(["parse", str(f)] + (["--stream", str(stream)] if stream else []))
        assert r.exit_code == 0, r.output
        outs[stream] = r.stdout
    assert len(set(outs.values())) == 1  # streamed in any chunk size, the same lines
    got = [json.loads(x) for x in outs[None].splitlines()]
    assert [g["final_answer"] for g in got] == ["4", "4", "33 + 13 = 46", "5", "7", None]
    assert [g["think_closed"] for g in got] == [True, True, False, False, False, False]
    assert got[1]["reasoning"] == "2+2" and got[3]["final_answer_rule"] == "final-answer"
    # a gold adds the verdict (math equivalence by default: an equation is not the number 46)
    assert (got[2]["correct"], got[3]["correct"]) == (False, False)
    # a task's extraction: the numeric fallback reads 46 after the last "=", and the verdict follows
    r = _run(["parse", str(f), "--task", "addition"])
    row = json.loads(r.stdout.splitlines()[2])
    assert (row["final_answer"], row["correct"]) == ("46", True)


@pytest.mark.parametrize("line,message", [
    ("not json", ":2: not valid JSON"),
    ('{"txt": "x"}', 'field "text" must be a string'),
    ('{"text": "x", "prefilled": "no"}', 'field "prefilled" must be true, false or null'),
])
def test_ponder_parse_bad_input_is_one_line_and_writes_nothing(tmp_path, line, message):
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "fine"}\n' + line + "\n")
    r = _run(["parse", str(f), "--out", str(tmp_path / "out.jsonl")])
    assert r.exit_code == 2 and message in " ".join(r.output.split()) and "Traceback" not in r.output
    assert not (tmp_path / "out.jsonl").exists()


def test_ponder_rewards_list_and_score(tmp_path):
    r = _run(["rewards", "list", "--json"])
    listed = {json.loads(x)["name"]: json.loads(x) for x in r.stdout.splitlines()}
    assert {"accuracy", "format", "tag_count", "cosine", "length", "overlong", "language_consistency"} <= set(listed)
    assert listed["cosine"]["parameters"]["max_len"] == 1000 and listed["format"]["formula"].startswith("r =")
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [
        {"completion": "<think>2+3</think>\\boxed{5}", "prompt": "User: 2+3?\nAssistant: ", "solution": "5"},
        {"completion": [{"role": "assistant", "content": "<think>x</think>\\boxed{6}"}], "prompt": "q", "solution": "5"},
        {"completion": "2+3</think>5", "prompt": "User: 2+3?\nAssistant: <think>", "solution": "5"},
    ]))
    r = _run(["rewards", "score", "--rewards", "accuracy,format,tag_count(template=think)", str(f)])
    assert r.exit_code == 0, r.output
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert got == [{"accuracy": 1.0, "format": 1.0, "tag_count": 1.0}, {"accuracy": 0.0, "format": 1.0, "tag_count": 1.0},
                   {"accuracy": 1.0, "format": 1.0, "tag_count": 1.0}]
    f.write_text('{"completion": 3}\n')
    r = _run(["rewards", "score", "--rewards", "accuracy", str(f)])
    assert r.exit_code == 2 and ":1: field \"completion\"" in r.output


@pytest.mark.parametrize("body,message", [
    ("[1]", "--extra-body: expected a JSON object, got list"),
    ("{top_k: 0}", "--extra-body: not valid JSON"),
])
def test_a_bad_extra_body_is_one_line_naming_the_option(body, message):
    # the endpoint is never reached: the option is checked when the backend is built
    r = _run(["ask", "openai:m@http://127.0.0.1:9/v1", "q", "--extra-body", body])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
