"""ponder.models.gguf and ``ponder models import-gguf``: a GGUF file becomes a plain HF checkpoint.

The real file is SmolLM2-135M-Instruct.Q4_1.gguf (``smollm2_gguf``); ``smollm2_dir`` is its import,
done once per session with the logits check on. Refusals use tiny files written here.
"""

from __future__ import annotations

import hashlib
import json
import socket

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from ponder.cli import models as models_cli
from ponder.models.gguf import (
    PROVENANCE_FILE,
    GGUFImportError,
    NotGGUFError,
    UnsupportedArchitectureError,
    import_gguf,
    supported_architectures,
)

CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "chat_template.jinja", PROVENANCE_FILE,
)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: loading must stay local."""

    def refuse(self, *a, **k):
        raise AssertionError(f"network access attempted: {a}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _fake_gguf(path, arch: str):
    """A valid GGUF file (header, one KV, one 4x4 f32 tensor; ~200 bytes) claiming ``arch``."""
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _cli():
    """``ponder models`` mounted as in ponder.cli.main (a lone command would otherwise swallow its name)."""
    root = typer.Typer(add_completion=False)
    root.add_typer(models_cli.app, name="models")

    @root.callback()
    def _root() -> None:
        pass

    return root


# --------------------------------------------------------------------------- the real import


def test_import_writes_a_checked_float32_checkpoint(smollm2_gguf, smollm2_dir):
    for name in CHECKPOINT_FILES:
        assert (smollm2_dir / name).is_file(), name
    assert not list(smollm2_dir.parent.glob(".*importing*")), "temporary directory left behind"
    record = json.loads((smollm2_dir / PROVENANCE_FILE).read_text())
    assert record["source"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert record["size"] == smollm2_gguf.stat().st_size
    assert record["sha256"] == hashlib.sha256(smollm2_gguf.read_bytes()).hexdigest()
    assert record["architecture"] == "llama" and record["dtype"] == "float32"
    assert record["transformers"]
    # the written checkpoint reproduces the GGUF-loaded model bit for bit on the probe
    assert record["check"]["equal"] is True and record["check"]["max_abs_diff"] == 0.0
    assert record["check"]["probe_tokens"] > 20
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config  # else transformers would treat it as a GGUF model again
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is True


def test_reimport_of_the_same_file_returns_the_existing_directory(smollm2_gguf, smollm2_dir):
    before = {p.name: p.stat().st_mtime_ns for p in smollm2_dir.iterdir()}
    assert import_gguf(smollm2_gguf, smollm2_dir) == smollm2_dir
    assert {p.name: p.stat().st_mtime_ns for p in smollm2_dir.iterdir()} == before


def test_checkpoint_loads_with_plain_transformers_offline(smollm2_dir, no_network):
    from transformers import AutoModelForCausalLM

    from ponder.models import load

    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), local_files_only=True)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == torch.float32
    assert getattr(model, "hf_quantizer", None) is None
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 136e6  # 135M, embeddings tied
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model, tokenizer = load(smollm2_dir)  # ponder's own loader accepts it too
    assert len(tokenizer) == model.get_input_embeddings().weight.shape[0] == 49152


def test_tokenizer_round_trips_and_has_the_chatml_template(smollm2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir), local_files_only=True)
    for text in ["What is 47 + 38?", "  leading spaces, tabs\tand\nnewlines", "ünïcödé — 数学 ∑x²", "x" * 300]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert tok("Hi")["input_ids"] == tok("Hi", add_special_tokens=False)["input_ids"]  # the GGUF says no BOS
    assert (tok.eos_token, tok.pad_token, tok.unk_token) == ("<|im_end|>", "<|im_end|>", "<|endoftext|>")
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], tokenize=False, add_generation_prompt=True
    )
    # ChatML; with no system message the template inserts SmolLM's own
    assert prompt == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.convert_ids_to_tokens(tok(prompt, add_special_tokens=False)["input_ids"][:1]) == ["<|im_start|>"]


def test_greedy_generation_gives_text(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), local_files_only=True).eval()
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], tokenize=False, add_generation_prompt=True
    )
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=32, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.strip(), "empty completion"


# --------------------------------------------------------------------------- refusals


def _one_line(e: Exception) -> str:
    msg = str(e)
    assert isinstance(e, ValueError) and "\n" not in msg and msg, msg
    return msg


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(GGUFImportError) as e:
        import_gguf(tmp_path / "nope.gguf", tmp_path / "out")
    assert "nope.gguf: no such file" in _one_line(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"", b"GG", b"PK\x03\x04 a zip, not a model", b"GGUF\x03\x00\x00\x00truncated"])
def test_non_gguf_file_is_refused(tmp_path, content):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(content)
    with pytest.raises(NotGGUFError) as e:
        import_gguf(bad, tmp_path / "out")
    msg = _one_line(e.value)
    assert "model.gguf" in msg and ("not a GGUF file" in msg or "unreadable GGUF header" in msg)
    assert not (tmp_path / "out").exists()


def test_unsupported_architecture_is_refused_naming_the_supported_ones(tmp_path):
    fake = _fake_gguf(tmp_path / "fake.gguf", "frobnicator")
    with pytest.raises(UnsupportedArchitectureError) as e:
        import_gguf(fake, tmp_path / "out")
    msg = _one_line(e.value)
    assert "'frobnicator'" in msg and "llama" in msg and "qwen2" in msg
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*importing*"))


def test_supported_architectures_come_from_transformers():
    archs = supported_architectures()
    assert {"llama", "qwen2", "qwen3", "mistral", "lfm2"} <= set(archs)
    assert "general" not in archs and "tokenizer" not in archs  # sections of the mapping, not architectures


def test_occupied_out_dir_is_refused(smollm2_gguf, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(GGUFImportError) as e:
        import_gguf(smollm2_gguf, tmp_path / "out")
    assert "exists and is not an import of" in _one_line(e.value)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- CLI


def test_cli_import_gguf_by_name_reports_dir_and_check(smollm2_dir):
    # smollm2_dir is already a checked import of this file, so this exercises the CLI without a second import
    r = CliRunner().invoke(_cli(), ["models", "import-gguf", "smollm2", str(smollm2_dir)])
    assert r.exit_code == 0, r.output
    assert str(smollm2_dir) in r.stdout
    assert "check: logits identical" in r.stdout


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing.gguf", "no such file"),
    (lambda p: _write(p / "x.gguf", b"hello"), "not a GGUF file"),
    (lambda p: _fake_gguf(p / "fake.gguf", "frobnicator"), "not supported by transformers' GGUF loader"),
])
def test_cli_import_gguf_errors_exit_2_with_one_line(tmp_path, make, message):
    r = CliRunner().invoke(_cli(), ["models", "import-gguf", str(make(tmp_path)), str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.stderr
