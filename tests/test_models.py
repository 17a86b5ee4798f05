"""ponder.models: the local tokenizer, the tiny Llama presets, save/load and its error table."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.config import ConfigError
from ponder.format import TAGS, Thinking, build_messages, format_completion, render
from ponder.models import (
    EOS_TOKEN,
    NOMINAL_PARAMS,
    PRESETS,
    ModelConfig,
    ModelLoadError,
    TokenizerError,
    build_model,
    count_params,
    load,
    resolve_config,
    save,
    train_tokenizer,
)
from ponder.models import build as build_module


def _corpus() -> list[str]:
    """Addition prompts and completions in the R1 plain layout (what a training stage would feed)."""
    out = []
    for a in range(3, 400, 13):
        for b in range(5, 300, 17):
            s = a + b
            reasoning = f"{a % 10}+{b % 10}={(a % 10 + b % 10)} carry {(a % 10 + b % 10) // 10}"
            out.append(f"User: {a}+{b}\nAssistant: " + format_completion(reasoning, str(s)))
            out.append(f"What is {a} plus {b}? The answer is {s}.")
    return out


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(_corpus(), vocab_size=512)


@pytest.fixture(scope="module")
def nano(tok):
    return build_model("nano", tok)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tok, nano):
    d = tmp_path_factory.mktemp("nano")
    save(nano, tok, d)
    return d


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: loading must stay local."""

    def refuse(self, *a, **k):
        raise AssertionError(f"network access attempted: {a}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


# --------------------------------------------------------------------------- tokenizer


def test_tags_are_single_ordinary_tokens(tok):
    for tag in TAGS:
        ids = tok.encode(tag)
        assert len(ids) == 1, (tag, tok.convert_ids_to_tokens(ids))
        assert tag not in tok.all_special_tokens
        # also when glued to text on both sides
        assert tok.convert_ids_to_tokens(tok.encode(f"x{tag}7")) == ["x", tag, "7"]


def test_skip_special_tokens_keeps_tags_but_drops_eos(tok):
    completion = "<think>3+4=7 carry 0</think><answer>7</answer>"
    ids = tok.encode(completion + EOS_TOKEN)
    # TRL decodes completions like this before rewards see them
    assert tok.decode(ids, skip_special_tokens=True) == completion
    assert tok.decode(ids) == completion + EOS_TOKEN


def test_special_tokens_and_pad(tok):
    assert tok.eos_token == tok.bos_token == EOS_TOKEN
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert len(tok.encode(EOS_TOKEN)) == 1
    # nothing is prepended or appended automatically (prompt and chat template give the same ids)
    assert tok.encode("12") == tok.convert_tokens_to_ids(["1", "2"])


def test_digits_are_split_individually(tok):
    text = "12345 + 9876 = 22221"
    pieces = [t for t in tok.convert_ids_to_tokens(tok.encode(text)) if any(c.isdigit() for c in t)]
    assert pieces == list("12345" "9876" "22221")


def test_split_digits_false_merges_numbers():
    corpus = ["total 123456 and 123456 again"] * 50
    merged = train_tokenizer(corpus, vocab_size=300, split_digits=False)
    split = train_tokenizer(corpus, vocab_size=300, split_digits=True)
    assert len(split.encode("123456")) == 6
    assert len(merged.encode("123456")) < 6


def test_vocab_size_is_the_total(tok):
    assert len(tok) <= 512
    assert len(train_tokenizer(_corpus(), vocab_size=270)) == 270  # 262 fixed + 8 merges


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_text_round_trips(tok, text):
    # byte-level: no unknown token, no clean-up of spaces, whatever the characters
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize(
    "texts, vocab, match",
    [
        ([], 512, "empty"),
        (["ok", 3], 512, "item 1 is a int"),
        ("a single string", 512, "not one string"),
        (["ok"], 100, "vocab_size must be an int >= 262"),
        (["ok"], 512.0, "vocab_size must be an int"),
    ],
)
def test_bad_tokenizer_input(texts, vocab, match):
    with pytest.raises(TokenizerError, match=match):
        train_tokenizer(texts, vocab_size=vocab)


def test_tokenizer_save_load_round_trip(tmp_path, tok):
    from transformers import AutoTokenizer

    train_tokenizer(_corpus(), vocab_size=512, out_dir=tmp_path / "tk")
    back = AutoTokenizer.from_pretrained(str(tmp_path / "tk"), local_files_only=True)
    text = "User: 407+95\nAssistant: <think>7+5=12 carry 1</think>502" + EOS_TOKEN
    assert back.encode(text) == tok.encode(text)
    assert back.chat_template == tok.chat_template
    assert back.padding_side == "left"
    assert (back.eos_token, back.pad_token) == (tok.eos_token, tok.pad_token)
    batch = back(["12+3", "1"], padding=True)
    assert batch["input_ids"][1][0] == back.pad_token_id  # padded on the left
    assert batch["attention_mask"][1][0] == 0 and batch["attention_mask"][1][-1] == 1


# --------------------------------------------------------------------------- chat template


@pytest.mark.parametrize("system", [None, "", "Be brief.", "r1-zero"])
@pytest.mark.parametrize("start", ["model", "prefill", "skip"])
def test_chat_template_equals_plain_layout(tok, system, start):
    msgs = build_messages("407+95", system)
    rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    thinking = Thinking("auto", start, "")
    assert render("407+95", None, Thinking("auto", "model", ""), system=system).text == rendered
    # the tokenizer's template and ponder's plain layout agree under every start
    assert render("407+95", tok, thinking, system=system).text == render("407+95", None, thinking, system=system).text


def test_assistant_turn_for_sft(tok):
    prompt = build_messages("12+34")
    answer = format_completion("2+4=6", "46")
    full = prompt + [{"role": "assistant", "content": answer}]
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert tok.apply_chat_template(full, tokenize=False) == head + answer + EOS_TOKEN
    # TRL takes the completion to start where prompt ids and prompt+completion ids diverge
    head_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"]
    out = tok.apply_chat_template(full, return_dict=True, return_assistant_tokens_mask=True)
    assert out["input_ids"][: len(head_ids)] == head_ids
    # {% generation %} marks exactly the assistant content + eos (TRL's assistant_only_loss)
    trained = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(trained) == answer + EOS_TOKEN


def test_multi_turn_and_unknown_role(tok):
    msgs = [
        {"role": "user", "content": "1+1"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+2"},
    ]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == f"User: 1+1\nAssistant: 2{EOS_TOKEN}\nUser: 2+2\nAssistant: "
    with pytest.raises(Exception, match="unknown chat role tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


# --------------------------------------------------------------------------- model presets


def _docstring_table() -> dict[str, int]:
    rows = re.findall(r"^(\w+)\s+\d+\s+\d+\s+\d+\s+\d+\s+([\d,]+)$", build_module.__doc__, re.M)
    return {name: int(n.replace(",", "")) for name, n in rows}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_param_counts(tok, preset):
    model = build_model(preset, tok)
    n = count_params(model)
    cfg = PRESETS[preset]
    assert n == cfg.param_count(len(tok))  # the analytic count is the real one
    assert abs(n - NOMINAL_PARAMS[preset]) <= 0.25 * NOMINAL_PARAMS[preset], n
    assert _docstring_table()[preset] == cfg.param_count(512)  # the documented table is current
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied


def test_build_uses_tokenizer_ids_and_options(tok):
    model = build_model("nano", tok, max_position_embeddings=256)
    c = model.config
    assert c.model_type == "llama"
    assert c.vocab_size == len(tok) == model.get_input_embeddings().weight.shape[0]
    assert (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert c.max_position_embeddings == 256
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_seed_is_deterministic_and_leaves_global_rng(tok):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("nano", tok, seed=7)
    assert torch.equal(torch.rand(1), before)  # global RNG untouched by building
    b = build_model("nano", tok, seed=7)
    c = build_model("nano", tok, seed=8)
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_resolve_config():
    assert resolve_config("micro") is PRESETS["micro"]
    cfg = resolve_config({"preset": "micro", "num_layers": "3", "seed": 5})
    assert (cfg.hidden_size, cfg.num_layers, cfg.seed) == (192, 3, 5)
    assert resolve_config({"num_layers": 2}).hidden_size == PRESETS["nano"].hidden_size
    assert resolve_config({"preset": "mini", "num_heads": 10}).num_heads == 10  # 320 / 10, not 128 / 10
    with pytest.raises(ConfigError, match="model.num_layers: 'many' is not a valid int"):
        resolve_config({"num_layers": "many"})
    with pytest.raises(ConfigError, match="unknown option.*hidden_dim.*valid:.*hidden_size"):
        resolve_config({"hidden_dim": 64})
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        resolve_config("huge")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(hidden_size=100, num_heads=3)
    with pytest.raises(ConfigError, match="num_kv_heads"):
        ModelConfig(num_heads=4, num_kv_heads=3)


def test_forward_backward_and_a_step_lowers_loss(tok):
    model = build_model("nano", tok, seed=1)
    model.train()
    batch = tok(["User: 12+34\nAssistant: <think>2+4=6</think>46", "User: 5+5\nAssistant: 10"], padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss = model(**batch, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert model.model.embed_tokens.weight.grad.abs().sum() > 0
    opt.step()
    assert model(**batch, labels=labels).loss < loss


def test_generate_a_few_tokens(tok, nano):
    prompts = [render("12+34", tok).text, render("7+8", None, Thinking("auto", "prefill", "")).text]
    batch = tok(prompts, padding=True, return_tensors="pt")
    out = nano.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2 and 1 <= out.shape[1] - batch["input_ids"].shape[1] <= 4
    assert int(out.max()) < len(tok)


# --------------------------------------------------------------------------- save / load


def test_logits_round_trip(saved, tok, nano, no_network):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (saved / "model.safetensors").is_file()
    text = ["User: 407+95\nAssistant: <think>", "hi"]
    batch = tok(text, padding=True, return_tensors="pt")
    nano.eval()
    with torch.no_grad():
        want = nano(**batch).logits
        plain = AutoModelForCausalLM.from_pretrained(str(saved), local_files_only=True)
        assert torch.equal(plain(**batch).logits, want)
        model, tok2 = load(saved)
        assert torch.equal(model(**batch).logits, want)
    assert not model.training and model.dtype == torch.float32
    assert type(AutoTokenizer.from_pretrained(str(saved), local_files_only=True)).__name__ == type(tok).__name__
    assert tok2(text, padding=True)["input_ids"] == batch["input_ids"].tolist()
    assert tok2.chat_template == tok.chat_template and tok2.padding_side == "left"


def _copy(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in skip:
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _case(name: str, saved: Path, tmp: Path) -> tuple[str, str]:
    """Build the broken checkpoint ``name``; return (path to load, expected message regex)."""
    if name == "missing dir":
        return str(tmp / "nope"), r"nope: no such directory"
    if name == "a file":
        (tmp / "f.txt").write_text("x")
        return str(tmp / "f.txt"), r"f.txt: is a file, not a checkpoint directory"
    if name == "hub id":
        return "gpt2", r"'gpt2' is not a local directory; ponder never downloads models"
    if name == "hub org/name":
        return "Qwen/Qwen2.5-0.5B", r"not a local directory; ponder never downloads"
    if name == "no config":
        return str(_copy(saved, tmp / "c", ("config.json",))), r"c: no config.json"
    if name == "bad json":
        d = _copy(saved, tmp / "j")
        (d / "config.json").write_text('{"model_type": "llama",')
        return str(d), r"j/config.json: not valid JSON"
    if name == "no model_type":
        d = _copy(saved, tmp / "m")
        (d / "config.json").write_text(json.dumps({"hidden_size": 8}))
        return str(d), r"m/config.json: has no model_type"
    if name == "no weights":
        return str(_copy(saved, tmp / "w", ("model.safetensors",))), r"w: no weights \(expected one of model.safetensors"
    if name == "corrupt weights":
        d = _copy(saved, tmp / "cw")
        (d / "model.safetensors").write_bytes(b"\x00garbage")
        return str(d), r"cw: cannot load the model \("
    if name == "no tokenizer":
        skip = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
        return str(_copy(saved, tmp / "t", skip)), r"t: no tokenizer"
    raise AssertionError(name)


LOAD_ERRORS = [
    "missing dir", "a file", "hub id", "hub org/name", "no config", "bad json", "no model_type",
    "no weights", "corrupt weights", "no tokenizer",
]


@pytest.mark.parametrize("name", LOAD_ERRORS)
def test_load_errors(name, saved, tmp_path, no_network):
    path, message = _case(name, saved, tmp_path)
    with pytest.raises(ModelLoadError, match=message) as info:
        load(path)
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None  # a clear message, not a chained transformers traceback


def test_load_refuses_mismatched_tokenizer(saved, tmp_path, tok):
    d = _copy(saved, tmp_path / "mix", ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"))
    words = [a + b + c for a in "bcdfghklmnprst" for b in "aeiou" for c in "bcdfghklmnprst"]
    bigger = train_tokenizer([" ".join(words)] * 3, vocab_size=400, out_dir=d)
    assert len(bigger) > len(tok)
    with pytest.raises(ModelLoadError, match=r"tokenizer has \d+ tokens but the model embeds only \d+"):
        load(d)


def test_load_bad_dtype(saved):
    with pytest.raises(ModelLoadError, match="unknown dtype 'float33'"):
        load(saved, dtype="float33")


# --------------------------------------------------------------------------- TRL


def test_trl_sft_keeps_eos_in_labels(tmp_path, tok):
    """A pad token distinct from eos: the SFT labels end in eos, which the model must learn."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = [
        {"prompt": build_messages(f"{a}+{b}"), "completion": [{"role": "assistant", "content": format_completion("", str(a + b))}]}
        for a, b in [(1, 2), (30, 4), (5, 66), (7, 8)]
    ]
    args = SFTConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, report_to=[],
        use_cpu=True, save_strategy="no", disable_tqdm=True,
    )
    trainer = SFTTrainer(model=build_model("nano", tok), processing_class=tok, train_dataset=Dataset.from_list(rows), args=args)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        last = int(mask.sum()) - 1
        assert labels[last] == ids[last] == tok.eos_token_id  # eos is trained on
        assert (labels[mask == 0] == -100).all()  # padding is not
    assert trainer.train().training_loss > 0
