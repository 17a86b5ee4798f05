"""Reproduction cards (``card.json``) and ``ponder eval reproduce CARD``.

A tiny random checkpoint (``ponder.testing.tiny_engine``, saved once per module) is evaluated on
a few addition problems; its nonsense is seeded, so a re-run on the same machine must give the
same samples byte for byte. The endpoint tests use the scripted OpenAI server, which answers
arithmetic correctly, against a second one that always answers 0: 100% vs 0% on 12 problems is
a difference the paired bootstrap must call significant.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.evaluate.card import CARD, file_sha256, json_sha256, model_identity
from ponder.evaluate.harness import EvalConfig, read_records, run_eval
from ponder.testing import scripted_server

TASK = "addition:digits=2,n_test=4"
ENDPOINT_TASK = "addition:digits=2,n_test=12"


@pytest.fixture(autouse=True)
def hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PONDER_HASH_CACHE", str(tmp_path / "sha256.json"))
    return tmp_path / "sha256.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from ponder.testing import tiny_engine

    out = tmp_path_factory.mktemp("tiny") / "ckpt"
    tiny_engine(save_to=out)
    return out


def local_cfg(model: Path, out: Path, **kw) -> EvalConfig:
    # seeded sampling (not greedy), a thinking budget so every sample reaches its answer part
    return EvalConfig(model=str(model), task=TASK, n=2, temperature=0.8, thinking_budget=6, max_tokens=6,
                      out=str(out), **kw)


def invoke(*args: str):
    r = CliRunner().invoke(app, ["eval", *args])
    return r, " ".join(r.output.split())


@pytest.fixture(scope="module")
def local_run(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "base"
    run_eval(local_cfg(checkpoint, out), progress=False)
    return out


def test_card_of_a_local_run_records_its_inputs(local_run, checkpoint):
    card = json.loads((local_run / CARD).read_text())
    records = read_records(local_run / "samples.jsonl")
    # weights and tokenizer: the sha256 of the files themselves
    weights = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert card["model"]["kind"] == "local" and card["model"]["weights"] == {"model.safetensors": weights}
    assert card["tokenizer"]["sha256"] == hashlib.sha256((checkpoint / "tokenizer.json").read_bytes()).hexdigest()
    template = (checkpoint / "chat_template.jinja").read_text()
    assert card["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()
    assert card["thinking"]["start"] == "prefill"  # the tiny model's prompts pre-fill <think>
    # the protocol is the whole config.json; the prompt hashes are of what each record was sent
    assert card["config"] == json.loads((local_run / "config.json").read_text())
    per = card["prompts"]["per_problem"]
    assert set(per) == {r["id"] for r in records} and len(per) == 4
    assert all(per[r["id"]] == json_sha256(r["prompt"])[:16] for r in records)
    assert card["seeds"]["per_problem"] == {r["id"]: r["seed"] for r in records}
    assert card["sampling"]["temperature"] == 0.8 and card["sampling"]["thinking_budget"] == 6
    assert card["data"]["examples"] == 4 and card["data"]["files"] == []  # a generated task: no file
    assert set(card["libraries"]) >= {"ponder", "torch", "transformers", "tokenizers", "math-verify", "trl"}
    assert card["libraries"]["torch"] and card["python"] and card["machine"]["cpu_count"] == os.cpu_count()
    assert card["machine"]["torch_threads"] >= 1
    assert card["ponder"]["git"] is None or len(card["ponder"]["git"]["commit"]) == 40
    metrics = json.loads((local_run / "metrics.json").read_text())
    assert card["metrics"]["pass@1"] == metrics["pass@1"] and card["metrics"]["n"] == 2


def test_weight_hash_follows_the_weights_and_is_cached(checkpoint, tmp_path, hash_cache):
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)
    before = model_identity(str(copy))
    assert before["weights"] == model_identity(str(checkpoint))["weights"]
    tensors = load_file(copy / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1.0  # one weight changes; the file keeps its size
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    after = model_identity(str(copy))
    assert after["weights_bytes"] == before["weights_bytes"]
    assert after["weights"]["model.safetensors"] != before["weights"]["model.safetensors"]
    assert after["config_sha256"] == before["config_sha256"]
    # the cache answers for an unchanged (path, size, mtime) without reading the file again ...
    f = copy / "model.safetensors"
    cache = json.loads(hash_cache.read_text())
    key = next(k for k in cache if k.startswith(f"{f.resolve()}|"))
    hash_cache.write_text(json.dumps({**cache, key: "cached"}))
    assert file_sha256(f) == "cached"
    # ... and a new mtime is a new key: hashed afresh
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert file_sha256(f) == after["weights"]["model.safetensors"]


def test_seeded_local_run_reproduces_with_identical_samples(local_run, tmp_path):
    out = tmp_path / "again"
    r, text = invoke("reproduce", str(local_run / CARD), "--out", str(out), "--exact")
    assert r.exit_code == 0, text
    assert "match the card" in text and "8/8 samples identical" in text and "reproduced" in text
    a = [(x["id"], x["sample"], x["seed"], x["completion"]) for x in read_records(local_run / "samples.jsonl")]
    b = [(x["id"], x["sample"], x["seed"], x["completion"]) for x in read_records(out / "samples.jsonl")]
    assert sorted(a) == sorted(b)
    rep = json.loads((out / "reproduction.json").read_text())
    assert rep["reproduced"] and rep["mismatches"] == [] and rep["comparisons"][0]["test"]["p_bootstrap"] == 1.0
    assert (out / CARD).is_file()  # the re-run has its own card


def test_changed_template_is_named_before_running(checkpoint, local_run, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(checkpoint, moved)
    t = moved / "chat_template.jinja"
    t.write_text(t.read_text().replace("'User: '", "'Question: '"))
    out = tmp_path / "never"
    r, text = invoke("reproduce", str(local_run), "--model", str(moved), "--out", str(out))
    assert r.exit_code == 2, text
    assert "chat template differs" in text and "rendered prompts differ for 4 of 4 problems" in text
    assert "weights differ" not in text and f"model path: {checkpoint} → {moved}" in text  # a move alone is a note
    assert "nothing was run" in text and not out.exists()


def test_different_weights_refused_then_compared_with_allow_mismatch(checkpoint, local_run, tmp_path):
    from ponder.testing import tiny_engine

    other = tmp_path / "other"
    tiny_engine(seed=1, save_to=other)  # the same architecture and tokenizer, other random weights
    r, text = invoke("reproduce", str(local_run), "--model", str(other), "--out", str(tmp_path / "no"))
    assert r.exit_code == 2 and "weights differ: model.safetensors sha256" in text and not (tmp_path / "no").exists()
    out = tmp_path / "yes"
    r, text = invoke("reproduce", str(local_run), "--model", str(other), "--out", str(out), "--allow-mismatch")
    rep = json.loads((out / "reproduction.json").read_text())
    assert any(m["what"] == "weights" and m["blocking"] for m in rep["mismatches"])
    test = rep["comparisons"][0]["test"]  # the paired test of `ponder eval compare`, wired in
    assert test["shared_problems"] == 4 and "paired bootstrap" in rep["comparisons"][0]["summary"]
    assert rep["comparisons"][0]["identical"] < 8  # other weights write other nonsense
    assert r.exit_code == (1 if test["significant"] else 0) and rep["reproduced"] == (not test["significant"])


def test_endpoint_card_and_reproduce(tmp_path):
    run = tmp_path / "ep"
    with scripted_server() as srv, scripted_server(answer=lambda q: "0") as wrong:
        res = run_eval(EvalConfig(model=srv.spec, task=ENDPOINT_TASK, n=1, concurrency=4, out=str(run)), progress=False)
        assert res.metrics["pass@1"]["mean"] == 1.0
        card = json.loads((run / CARD).read_text())
        m = card["model"]
        assert (m["kind"], m["model"], m["base_url"]) == ("openai", "scripted", srv.base_url)
        assert m["served"]["ids"][0] == "scripted" and "created" not in m["served"]["model"]
        assert card["libraries"]["openai"] and card["chat_template_sha256"] is None  # the server applies its own
        assert len(card["prompts"]["per_problem"]) == 12
        r, text = invoke("reproduce", str(run), "--out", str(tmp_path / "same"))
        assert r.exit_code == 0, text
        assert "pass@1 100.0% → 100.0%" in text and "reproduced" in text
        # another model behind the same protocol: the difference is real and reported as such
        r, text = invoke("reproduce", str(run), "--model", wrong.spec, "--out", str(tmp_path / "worse"))
    assert r.exit_code == 1, text
    assert f"endpoint: scripted@{srv.base_url} → scripted@{wrong.base_url}" in text
    assert "pass@1 100.0% → 0.0%" in text and "not reproduced" in text and "differs significantly" in text


def test_sweep_writes_one_card_and_reproduces_every_budget(tmp_path):
    run = tmp_path / "sweep"
    with scripted_server() as srv:
        run_eval(EvalConfig(model=srv.spec, task="addition:digits=2,n_test=3", n=1, budgets=[8, 16], out=str(run)),
                 progress=False)
        card = json.loads((run / CARD).read_text())
        assert [row["budget"] for row in card["metrics"]["sweep"]] == [8, 16] and card["config"]["budgets"] == [8, 16]
        r, text = invoke("reproduce", str(run / CARD), "--out", str(tmp_path / "again"))
    assert r.exit_code == 0, text
    rep = json.loads((tmp_path / "again" / "reproduction.json").read_text())
    assert [c["budget"] for c in rep["comparisons"]] == [8, 16]


@pytest.mark.parametrize("content, message", [
    (None, "no such card"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a card is a JSON object"),
    ('{"card_version": 1, "config": {}}', "not a ponder eval card (missing model, prompts, data, metrics)"),
])
def test_bad_card_is_one_line_exit_2(tmp_path, content, message):
    f = tmp_path / "card.json"
    if content is not None:
        f.write_text(content)
    r, text = invoke("reproduce", str(f))
    assert r.exit_code == 2 and message in text and text.startswith("error:") and "Traceback" not in r.output


def test_card_with_unknown_option_or_no_original_run(local_run, tmp_path):
    card = json.loads((local_run / CARD).read_text())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / CARD).write_text(json.dumps({**card, "config": {**card["config"], "nonsense": 1}}))
    r, text = invoke("reproduce", str(bad))
    assert r.exit_code == 2 and "unknown option(s) nonsense" in text
    (bad / CARD).write_text(json.dumps(card))  # a card copied away from its run
    r, text = invoke("reproduce", str(bad))
    assert r.exit_code == 2 and "no metrics.json beside the card" in text


def test_git_state_is_null_outside_a_checkout(tmp_path, monkeypatch):
    import ponder
    from ponder.evaluate.card import git_state

    here = git_state()
    assert here is None or (len(here["commit"]) == 40 and isinstance(here["dirty"], bool))
    (tmp_path / "ponder").mkdir()
    monkeypatch.setattr(ponder, "__file__", str(tmp_path / "ponder" / "__init__.py"))  # an installed copy
    assert git_state() is None
