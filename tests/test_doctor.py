"""``ponder doctor``: the checks on ponder's own tiny checkpoint, on SmolLM2 (imported from its
GGUF file, and the file itself through llama.cpp), on endpoints (the scripted server, and a real
llama.cpp server serving SmolLM2), and the CLI's exit codes."""

from __future__ import annotations

import json

import pytest
from train_helpers import tiny_pretrain
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.evaluate.doctor import DoctorConfig, DoctorError, diagnose
from ponder.generate import LocalEngine
from ponder.generate.backends import load_backend
from ponder.testing import scripted_server
from ponder.train import pretrain

runner = CliRunner()


def by_check(report) -> dict:
    return {f.check: f for f in report.findings}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The cheapest trained ponder checkpoint (1 s of pretraining) and its loaded engine."""
    path = pretrain.run(tiny_pretrain(tmp_path_factory.mktemp("doctor") / "base"))
    return path, load_backend(str(path))


def test_ponders_own_checkpoint_passes_the_tokenizer_and_record_checks(tiny):
    path, engine = tiny
    r = diagnose(DoctorConfig(model=str(path), problems=1, n=1, max_tokens=16), backend=engine)
    f = by_check(r)
    assert f["think-tokens"].status == "PASS" and r.facts["think_close_tokens"] == 1
    assert f["system-prompt"].status == "PASS"  # ponder's template injects nothing
    assert f["eos"].status == "PASS"
    # the checkpoint records how it was trained, and auto reads it back
    assert r.facts["thinking"]["auto"]["start"] == "model" and "records" in f["thinking-mode"].detail
    assert f["training-template"].status == "PASS"
    # trained on 96-token sequences: a 16-token answer fits, positions past 96 would be untrained
    assert f["context"].status == "PASS" and r.facts["tokens_needed"] <= 96
    assert len(r.facts["samples"]) == 2 and sum(s["greedy"] for s in r.facts["samples"]) == 1
    assert r.failed == any(x.status == "FAIL" for x in r.findings)


def test_settings_that_differ_from_training_are_warned_with_the_fix(tiny):
    path, engine = tiny
    on = LocalEngine(engine.model, engine.tokenizer, thinking="on")
    r = diagnose(DoctorConfig(model=str(path), problems=1, n=0, max_tokens=200, thinking="on",
                              template="r1-zero", system="r1"), backend=on)
    f = by_check(r)["training-template"]
    assert f.status == "WARN"
    assert "--thinking auto" in f.fix and "--template think" in f.fix and "no --system" in f.fix
    ctx = by_check(r)["context"]  # 200 answer tokens on a model trained on 96-token sequences
    assert ctx.status == "WARN" and "96" in ctx.detail


def test_smollm2_system_prompt_think_tags_and_unclosed_thinking(smollm2_dir):
    """SmolLM2's ChatML template injects its own system prompt, its think tags are 3 tokens each,
    and under --thinking on it never closes </think>: the fix is --thinking off."""
    r = diagnose(DoctorConfig(model=str(smollm2_dir), problems=1, n=0, max_tokens=12, thinking="on"))
    f = by_check(r)
    assert f["system-prompt"].status == "WARN" and "SmolLM" in r.facts["injected_system"]
    assert "--system" in f["system-prompt"].fix
    assert f["think-tokens"].status == "WARN" and r.facts["think_open_tokens"] == 3
    assert r.facts["think_close_tokens"] == 3 and "--thinking-budget" in f["think-tokens"].fix
    assert f["samples-close"].status == "FAIL" and "--thinking off" in f["samples-close"].fix
    assert f["eos"].status == "PASS" and r.facts["eos_token"] == "<|im_end|>"
    assert r.facts["thinking"]["auto"]["start"] == "model"  # it knows no think tags
    assert f["training-template"].status == "SKIP" and r.kind == "gguf-import"
    assert r.facts["context_length"] == 8192 and f["context"].status == "PASS"


def test_endpoint_checks_what_a_client_can_and_skips_the_rest():
    with scripted_server() as srv:
        r = diagnose(DoctorConfig(model=srv.spec, problems=2, n=1))
        wrong = diagnose(DoctorConfig(model=srv.spec.replace("scripted@", "other@"), problems=1, n=0))
    f = by_check(r)
    assert f["endpoint-models"].status == "PASS" and r.kind == "endpoint"
    for name in ("chat-template", "system-prompt", "think-tokens", "eos", "context", "training-template"):
        assert f[name].status == "SKIP", name
    assert f["reasoning-split"].status == "PASS" and "inline" in f["reasoning-split"].detail
    # the scripted server thinks, closes </think> and answers arithmetic correctly
    assert [f[c].status for c in ("samples-close", "samples-stop", "samples-answer", "samples-correct")] == ["PASS"] * 4
    assert all(s["correct"] for s in r.facts["samples"]) and len(r.facts["samples"]) == 4
    assert not r.failed
    w = by_check(wrong)["endpoint-models"]
    assert w.status == "FAIL" and srv.spec in w.fix  # the fix names the listed model


def test_unreachable_endpoint_fails_and_skips_the_samples():
    r = diagnose(DoctorConfig(model="openai:m@http://127.0.0.1:9/v1", timeout=5))
    f = by_check(r)
    assert f["endpoint-models"].status == "FAIL" and "start the server" in f["endpoint-models"].fix
    assert f["samples-answer"].status == "SKIP" and r.failed


def test_cli_exit_codes_and_json():
    with scripted_server() as srv:
        ok = runner.invoke(app, ["doctor", srv.spec, "--problems", "1", "--n", "0", "--json"])
        bad = runner.invoke(app, ["doctor", srv.spec.replace("scripted@", "other@"), "--problems", "1", "--n", "0"])
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.stdout)
    assert out["ok"] and out["counts"]["FAIL"] == 0 and {f["check"] for f in out["findings"]} >= {"samples-correct"}
    assert bad.exit_code == 1 and "FAIL" in bad.stdout and "endpoint-models" in bad.stdout
    missing = runner.invoke(app, ["doctor", "/nonexistent/checkpoint"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    unknown = runner.invoke(app, ["doctor", "/nonexistent/checkpoint", "--task", "nosuchtask"])
    assert unknown.exit_code == 2 and "nosuchtask" in unknown.output


def test_bad_options_are_rejected_before_anything_loads():
    with pytest.raises(DoctorError, match="thinking must be"):
        DoctorConfig(model="x", thinking="maybe")
    with pytest.raises(DoctorError, match="problems"):
        DoctorConfig(model="x", problems=0)


def _doctor_json(spec: str, *args: str) -> tuple[int, dict]:
    r = runner.invoke(app, ["doctor", spec, "--problems", "2", "--max-tokens", "64", *args, "--json"])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


def test_llama_cpp_endpoint_serving_smollm2(llamacpp_smollm2):
    """`ponder doctor` against a real llama.cpp server (llama-cpp-python, SmolLM2's own ChatML
    template): what a client can check passes, the rest is skipped with the reason, and SmolLM2
    answers without a think block; under --thinking on it never closes one, and since llama.cpp
    drops budget fields the fix is --tokenizer, with which the budget is ponder's and is forced."""
    import llamacpp

    spec = f"openai:{llamacpp_smollm2.model_id}@{llamacpp_smollm2.base_url}"
    code, out = _doctor_json(spec, "--n", "1")
    f = {x["check"]: x for x in out["findings"]}
    assert code == 0 and out["kind"] == "endpoint" and out["facts"]["served_models"] == ["smollm2-plain"]
    assert f["endpoint-models"]["status"] == "PASS"
    for name in ("chat-template", "system-prompt", "think-tokens"):
        assert f[name]["status"] == "SKIP" and "--tokenizer" in f[name]["detail"], name
    for name in ("eos", "context", "training-template"):
        assert f[name]["status"] == "SKIP", name
    assert f["thinking-mode"]["detail"].startswith("--thinking auto → server")
    # llama.cpp returns no reasoning field, and SmolLM2 writes no <think>: its content is the answer
    assert f["reasoning-split"]["status"] == "PASS" and "answers directly" in f["reasoning-split"]["detail"]
    samples = out["facts"]["samples"]
    assert len(samples) == 4 and not any(s["thinking"] or "<think>" in s["text"] for s in samples)
    assert f["samples-close"]["status"] == "PASS" and "answers directly" in f["samples-close"]["detail"]
    assert f["samples-stop"]["status"] == "PASS"  # it ends its turn (<|im_end|>) well before 64 tokens
    answered = sum(s["answer"] is not None for s in samples)
    assert f["samples-answer"]["status"] == ("PASS" if answered >= 2 else "WARN" if answered else "FAIL")
    assert f["samples-correct"]["status"] == ("PASS" if any(s["correct"] for s in samples) else "WARN")

    code, on = _doctor_json(spec, "--n", "0", "--thinking", "on", "--thinking-budget", "16")
    close = {x["check"]: x for x in on["findings"]}["samples-close"]
    assert code == 1 and close["status"] == "FAIL" and "0 of 2 thinking samples closed" in close["detail"]
    assert "--tokenizer" in close["fix"] and "did not cut it" in close["fix"] and "--thinking off" in close["fix"]
    assert not any(s["forced_close"] for s in on["facts"]["samples"])

    # with the served model's tokenizer (the GGUF itself) ponder renders the prompt, checks the
    # template and the think tags, and the budget cuts the reasoning off: </think> by force
    gguf = str(llamacpp.smollm2_gguf())
    code, tok = _doctor_json(spec, "--n", "0", "--thinking", "on", "--thinking-budget", "16", "--tokenizer", gguf)
    t = {x["check"]: x for x in tok["findings"]}
    assert t["chat-template"]["status"] == "PASS" and "SmolLM" in tok["facts"]["injected_system"]
    assert t["system-prompt"]["status"] == "WARN" and tok["facts"]["think_close_tokens"] == 3
    assert t["thinking-mode"]["detail"].startswith("--thinking on → prefill")
    forced = [s for s in tok["facts"]["samples"] if s["forced_close"]]
    assert forced and all(s["closed"] for s in forced)
    # SmolLM2 never closes </think> itself: every close is the budget's, which is a WARN, not a PASS
    assert len(forced) == 2 and t["samples-close"]["status"] == "WARN"
    assert "only when the budget forces it" in t["samples-close"]["fix"]


def test_a_gguf_file_is_checked_as_llama_cpp_runs_it(smollm2_gguf):
    """`ponder doctor FILE.gguf`: the file's own tokenizer, template and eos through llama.cpp
    (no transformers model behind it), the same findings as SmolLM2's import, and no traceback."""
    r = runner.invoke(app, ["doctor", str(smollm2_gguf), "--problems", "2", "--n", "1", "--max-tokens", "64", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    f = {x["check"]: x for x in out["findings"]}
    assert out["kind"] == "gguf" and f["training-template"]["status"] == "SKIP"
    assert f["eos"]["status"] == "PASS" and out["facts"]["eos_token"] == "<|im_end|>"
    assert f["system-prompt"]["status"] == "WARN" and "SmolLM" in out["facts"]["injected_system"]
    assert f["think-tokens"]["status"] == "WARN" and "['</', 'think', '>']" in f["think-tokens"]["detail"]
    assert f["context"]["status"] == "PASS" and out["facts"]["context_length"] == 8192
    assert out["facts"]["thinking"]["auto"]["start"] == "model"
    assert f["samples-close"]["status"] == "PASS" and len(out["facts"]["samples"]) == 4
