"""Evaluation protocols (ponder.evaluate.protocol): the shipped ones load and cite sources, the
prompt each renders on real GSM8K problems, precedence (protocol < flags < --set) and what a run
records, lm-evaluation-harness's two extraction rules on the same completions, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeBackend, question_of
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.evaluate.harness import PROTOCOL_KEYS, EvalConfig, EvalError, run_eval
from ponder.evaluate.protocol import (
    EXTRACTORS,
    ExtractedTask,
    ProtocolError,
    lm_eval_normalise,
    load_protocol,
    protocol_names,
    resolve,
)
from ponder.generate.types import Completion
from ponder.tasks import get_task, judge

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k"
needs_gsm8k = pytest.mark.skipif(not (DATA / "train.jsonl").is_file(), reason="needs ../shared/data/gsm8k")


def _completion(text: str) -> Completion:
    return Completion(text=text, token_ids=[], reasoning="", answer=text, reasoning_tokens=0, answer_tokens=len(text) // 4,
                      finish_reason="stop")


class Recorder(FakeBackend):
    """Answers every prompt with ``reply(question)``; keeps what it was sent."""

    def __init__(self, reply, remote: bool = False, thinking: str = "off"):
        super().__init__(remote=remote, thinking=thinking)
        self.reply, self.prompts, self.sampling = reply, [], []

    def generate(self, prompts, n=1, sampling=None, budget=None):
        self.prompts += list(prompts)
        self.sampling.append(sampling)
        return [[_completion(self.reply(p)) for _ in range(n)] for p in prompts]


def cfg_for(tmp_path, **data) -> EvalConfig:
    return EvalConfig(**resolve({"model": "m", "task": "gsm8k", "out": str(tmp_path / "run"), **data}, PROTOCOL_KEYS))


def test_shipped_protocols_cite_sources_and_build_valid_configs():
    names = protocol_names()
    assert {"r1", "lm-eval-gsm8k", "qwen-math", "ponder"} <= set(names)
    for name in names:
        p = load_protocol(name, PROTOCOL_KEYS)
        assert p.name == name and len(p.source) > 40 and p.description
        cfg = EvalConfig(**resolve({"model": "m", "task": "gsm8k", "protocol": name}, PROTOCOL_KEYS))
        for key, value in p.fields.items():
            assert getattr(cfg, key) == value, (name, key)
    r1 = load_protocol("r1")
    assert (r1.fields["temperature"], r1.fields["top_p"]) == (0.6, 0.95)
    assert r1.fields["prompt_template"].endswith("Please reason step by step, and put your final answer within \\boxed{}.")


@needs_gsm8k
def test_r1_prompt_wording_and_recorded_overrides(tmp_path):
    backend = Recorder(lambda p: "so the answer is \\boxed{18}", remote=True)
    cfg = cfg_for(tmp_path, protocol="r1", limit=2, n=2, max_tokens=64)
    res = run_eval(cfg, backend, progress=False)
    first = get_task("gsm8k").examples("test").__next__()
    sent = question_of(backend.prompts[0])
    assert sent == first["prompt"] + "\nPlease reason step by step, and put your final answer within \\boxed{}."
    assert backend.sampling[0].temperature == 0.6 and backend.sampling[0].top_p == 0.95
    rec = json.loads((tmp_path / "run" / "protocol.json").read_text())
    assert rec["name"] == "r1" and len(rec["sha256"]) == 64
    assert rec["overrides"] == {"n": {"protocol": 16, "used": 2}, "max_tokens": {"protocol": 32768, "used": 64}}
    assert res.metrics["protocol"]["overrides"].keys() == {"n", "max_tokens"}
    assert "fields overridden: `n` 16 → 2" in (tmp_path / "run" / "report.md").read_text()
    # Janet's ducks: 16 - 3 - 4 = 9 eggs at $2 = 18; the second problem's gold is not 18
    assert [r["correct"] for r in map(json.loads, (tmp_path / "run" / "samples.jsonl").read_text().splitlines())
            if r["sample"] == 0] == [True, False]


@needs_gsm8k
def test_lm_eval_gsm8k_prompt_is_five_real_shots_in_raw_text(tmp_path):
    backend = Recorder(lambda p: " She sells 9 eggs.\n#### 18")
    run_eval(cfg_for(tmp_path, protocol="lm-eval-gsm8k", limit=1), backend, progress=False)
    text = backend.prompts[0]
    assert isinstance(text, str)  # raw text, no chat template
    train = [json.loads(line) for line in (DATA / "train.jsonl").read_text().splitlines()[:5]]
    test = json.loads((DATA / "test.jsonl").read_text().splitlines()[0])
    expected = "\n\n".join([f"Question: {t['question']}\nAnswer: {t['answer']}" for t in train]
                           + [f"Question: {test['question']}\nAnswer:"])
    assert text == expected
    sp = backend.sampling[0]
    assert (sp.temperature, sp.max_tokens, sp.stop) == (0.0, 256, ("Question:", "</s>", "<|im_end|>"))


@needs_gsm8k
def test_lm_eval_shots_become_chat_turns_with_the_template(tmp_path):
    backend = Recorder(lambda p: "#### 18", remote=True)
    run_eval(cfg_for(tmp_path, protocol="lm-eval-gsm8k", limit=1, chat_template=True), backend, progress=False)
    msgs = backend.prompts[0]
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 5 + ["user"]
    assert msgs[1]["content"].endswith("#### 72")  # Natalia's clips, the first training problem
    assert msgs[-1]["content"].startswith("Question: Janet") and msgs[-1]["content"].endswith("\nAnswer:")


@pytest.mark.parametrize("text, strict, flexible", [
    (" 16 - 3 - 4 = 9 eggs, 9 * 2 = $18.\n#### 18", "18", "18"),
    (" She makes 9 * 2 = $18 every day.", None, "$18"),  # no '####': strict finds nothing
    ("#### 1,000\n\nQuestion: next", "1,000", "1,000"),
    ("#### 5 and later #### 7", "5", "7"),  # strict takes the first, flexible the last number
    ("The answer is -3.", None, "-3."),
    ("no digits at all", None, None),
])
def test_lm_eval_extraction_rules(text, strict, flexible):
    assert EXTRACTORS["lm-eval-strict"].find(text) == strict
    assert EXTRACTORS["lm-eval-flexible"].find(text) == flexible


def test_lm_eval_exact_match_normalisation():
    assert lm_eval_normalise("$1,000.") == "1000"
    assert lm_eval_normalise("-3.") == "-3"
    task = get_task("gsm8k")
    ex = {"id": "0", "prompt": "q", "gold": "1000", "meta": {}}
    strict = ExtractedTask(task, "lm-eval-strict")
    assert judge(strict, "#### 1,000", ex).correct
    assert not judge(strict, "#### 1000.0", ex).correct  # exact match, unlike ponder's math equivalence
    assert judge(task, "#### 1000.0", ex).correct
    assert judge(strict, "The total is 1000.", ex).reason == "no answer found (lm-eval-strict)"


@needs_gsm8k
def test_strict_and_flexible_reported_side_by_side(tmp_path):
    golds = [json.loads(line)["answer"].split("####")[-1].strip()
             for line in (DATA / "test.jsonl").read_text().splitlines()[:4]]
    replies = {}

    def reply(prompt):
        i = len(replies)
        replies[prompt] = i
        # problems 0 and 1 in the '####' format, 2 and 3 only as prose
        return f" so {golds[i]}.\n#### {golds[i]}" if i < 2 else f" The answer is {golds[i]} in the end."

    res = run_eval(cfg_for(tmp_path, protocol="lm-eval-gsm8k", limit=4), Recorder(reply), progress=False)
    ext = res.metrics["extractions"]
    assert ext["lm-eval-strict"]["mean"] == pytest.approx(0.5) == res.metrics["pass@1"]["mean"]
    assert ext["lm-eval-flexible"]["mean"] == pytest.approx(1.0)
    rec = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[3])
    assert rec["correct"] is False and rec["extractions"]["lm-eval-flexible"]["correct"] is True


def test_cli_precedence_protocol_then_flags_then_set(tmp_path):
    from ponder.testing import tiny_engine

    tiny_engine(save_to=tmp_path / "m")
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "m"), "--task", "addition", "--protocol", "qwen-math",
                                 "--limit", "1", "--temperature", "0.5", "--set", "max_tokens=8", "--out", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["protocol"], cfg["temperature"], cfg["max_tokens"], cfg["n"]) == ("qwen-math", 0.5, 8, 1)
    assert cfg["system"].startswith("Please reason step by step")
    assert json.loads((out / "protocol.json").read_text())["overrides"].keys() == {"temperature", "max_tokens"}
    rec = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert "Please reason step by step" in rec["prompt"]  # the system turn went through the chat template


def test_cli_lists_protocols_and_rejects_bad_ones(tmp_path):
    r = CliRunner().invoke(app, ["eval", "protocols"])
    assert r.exit_code == 0 and all(n in r.output for n in ("r1", "lm-eval-gsm8k", "qwen-math"))
    r = CliRunner().invoke(app, ["eval", "m", "--task", "addition", "--protocol", "r2"])
    assert r.exit_code == 2 and "unknown protocol 'r2'" in r.output and "Traceback" not in r.output
    bad = tmp_path / "p.yaml"
    bad.write_text("name: p\nsource: my notes, page one, where the settings are written down\nfields:\n  model: x\n")
    with pytest.raises(ProtocolError, match="field 'model' is not a protocol setting"):
        load_protocol(str(bad), PROTOCOL_KEYS)
    bad.write_text("name: p\nfields: {n: 1}\n")
    with pytest.raises(ProtocolError, match="missing 'source'"):
        load_protocol(str(bad))


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(EvalError, match="unknown extraction rule 'lm-eval'"):
        EvalConfig(model="m", task="gsm8k", extract=["lm-eval"])
    with pytest.raises(EvalError, match="must contain \\{question\\}"):
        EvalConfig(model="m", task="gsm8k", prompt_template="Solve it.")
    # raw text cannot go to a chat endpoint: the run says what to pass instead
    with pytest.raises(EvalError, match="--tokenizer"):
        run_eval(cfg_for(tmp_path, protocol="lm-eval-gsm8k", limit=1), Recorder(lambda p: "", remote=True),
                 progress=False)
    with pytest.raises(EvalError, match="train split"):
        run_eval(EvalConfig(model="m", task="aime24", shots=2, out=str(tmp_path / "a"), limit=1),
                 Recorder(lambda p: ""), progress=False)
