"""LoRA adapters: the spec, SFT/GRPO training only the adapter, PEFT's format, merging, adapters as MODEL, resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from train_helpers import TASK, tiny_pretrain
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.config import ConfigError
from ponder.models import ModelLoadError, load
from ponder.models.lora import LoraSpec, is_adapter, load_peft, merge, parse_lora
from ponder.tasks import get_task
from ponder.tasks.synthetic import reference_completion
from ponder.train import grpo, pretrain, sft
from ponder.train.common import prompt_for

runner = CliRunner()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrain.run(tiny_pretrain(tmp_path_factory.mktemp("base") / "run", steps=20, lr=3e-3))


@pytest.fixture(scope="module")
def data(base, tmp_path_factory):
    _, tok = load(base)
    rows = [{"prompt": prompt_for(ex["prompt"], tok), "completion": reference_completion(ex)}
            for ex, _ in zip(get_task(TASK).examples("train"), range(16))]
    path = tmp_path_factory.mktemp("data") / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sft(base, data, out, **kw):
    d = dict(model=str(base), data=str(data), out=str(out), max_steps=4, batch_size=4, save_every=2,
             lora="r=4,alpha=8", lr=1e-2)
    d.update(kw)
    return sft.SFTConfig(**d)


@pytest.fixture(scope="module")
def adapter(base, data, tmp_path_factory):
    return sft.run(_sft(base, data, tmp_path_factory.mktemp("sft") / "run"))


# --------------------------------------------------------------------------- the spec


def test_spec_forms_and_presets():
    assert parse_lora("r=16,alpha=32,dropout=0,targets=all-linear") == LoraSpec()
    assert parse_lora("default") == LoraSpec()
    assert parse_lora("small,r=4") == LoraSpec(r=4, alpha=16)
    assert parse_lora("r=8,targets=q_proj,v_proj").target_list() == ["q_proj", "v_proj"]
    assert parse_lora({"r": 8, "alpha": 16}) == LoraSpec(r=8, alpha=16)
    assert parse_lora("") is None and parse_lora("none") is None
    assert str(parse_lora("attn")) == "r=16,alpha=32,dropout=0,targets=q_proj+k_proj+v_proj+o_proj"
    assert parse_lora(str(parse_lora("small,dropout=0.1"))) == parse_lora("small,dropout=0.1")  # round trip


@pytest.mark.parametrize("spec, message", [
    ("r=0", r"lora\.r must be >= 1"),
    ("r=two", r"lora\.r: 'two' is not a valid int"),
    ("rank=8,alpah=3", r"unknown key 'alpah'"),
    ("dropout=1.5", r"lora\.dropout must be in \[0, 1\)"),
    ("alpha=", r"alpha has no value"),
    ("huge", r"unknown preset 'huge'"),
    ("r=8,oops", r"unknown piece 'oops'"),
    ("targets=q_proj;rm -rf", r"lora\.targets"),
])
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_lora(spec)
    assert "\n" not in str(e.value)


def test_bad_spec_on_the_cli_is_one_line(base, data, tmp_path):
    r = runner.invoke(app, ["train", "sft", str(base), "--data", str(data), "--out", str(tmp_path / "o"),
                            "--lora", "r=8,alpah=3"])
    assert r.exit_code == 2 and "unknown key 'alpah'" in r.output and "Traceback" not in r.output


def test_unknown_target_module_is_named(base, data, tmp_path):
    with pytest.raises(ConfigError, match="no module named qproj.*q_proj"):
        sft.run(_sft(base, data, tmp_path / "o", lora="targets=qproj"))


# --------------------------------------------------------------------------- SFT


def test_sft_trains_only_the_adapter_and_saves_peft_format(base, adapter):
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert not {"config.json", "model.safetensors"} & names  # no full copy of the weights
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(base.resolve()) and cfg["r"] == 4 and cfg["lora_alpha"] == 8
    done = json.loads((adapter.parent / "ponder_done.json").read_text())
    assert 0 < done["trainable_params"] < done["total_params"] / 2 and done["peak_rss_mb"] > 0
    rows = [json.loads(x) for x in (adapter.parent / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["peak_rss_mb"] > 0 for r in rows)
    # the base is untouched: every base tensor of the trained PEFT model equals the checkpoint's
    plain, _ = load(base)
    peft_model, _ = load_peft(adapter)
    trained = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
               for k, v in peft_model.state_dict().items() if "lora_" not in k}
    for k, v in plain.state_dict().items():
        assert torch.equal(trained[k], v), k
    # while the adapter learned something (B starts at zero)
    assert any(v.abs().max() > 0 for k, v in peft_model.state_dict().items() if "lora_B" in k)


def test_resume_from_a_lora_checkpoint(base, data, adapter, tmp_path):
    """Remove the last checkpoint and the final adapter: the re-run resumes from checkpoint-2 and
    ends where the uninterrupted run ended."""
    out = tmp_path / "run"
    shutil.copytree(adapter.parent, out)
    for p in ("final", "checkpoint-4", "ponder_done.json"):
        shutil.rmtree(out / p) if (out / p).is_dir() else (out / p).unlink()
    assert (out / "checkpoint-2" / "adapter_model.safetensors").is_file()
    before = (out / "metrics.jsonl").read_text().splitlines()
    final = sft.run(_sft(base, data, out))
    after = (out / "metrics.jsonl").read_text().splitlines()
    assert after[:2] == before[:2] and len(after) == 4  # steps 1-2 kept from the first run: resumed, not redone
    want = load_peft(adapter)[0].state_dict()
    got = load_peft(final)[0].state_dict()
    for k in want:
        if "lora_" in k:
            torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- merge and MODEL


def test_merge_gives_the_adapters_logits(adapter, tmp_path):
    r = runner.invoke(app, ["models", "merge", str(adapter), str(tmp_path / "merged")])
    assert r.exit_code == 0, r.output
    merged, tok = load(tmp_path / "merged")
    assert (tmp_path / "merged" / "chat_template.jinja").is_file() and not is_adapter(tmp_path / "merged")
    peft_model, _ = load_peft(adapter)
    ids = tok(["What is 3 + 4? <think>", "What is 12 + 9?"], return_tensors="pt", padding=True)
    with torch.no_grad():
        want = peft_model(**ids).logits
        got = merged(**ids).logits
        base_only = peft_model.get_base_model()
        with peft_model.disable_adapter():
            plain = base_only(**ids).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (plain - want).abs().max() > 1e-3  # the adapter does change the logits
    with pytest.raises(ModelLoadError, match="not an empty directory"):
        merge(adapter, tmp_path / "merged")


def test_adapter_dir_is_a_model_for_ask_and_eval(adapter, tmp_path):
    r = runner.invoke(app, ["ask", str(adapter), "What is 1 + 2?", "--max-tokens", "8"])
    assert r.exit_code == 0, r.output
    assert "tokens:" in r.output
    r = runner.invoke(app, ["eval", str(adapter), "--task", "addition:digits=1,n_test=4", "--n", "1",
                            "--max-tokens", "8", "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())


def test_missing_base_is_a_clear_error(adapter, tmp_path):
    moved = tmp_path / "adapter"
    shutil.copytree(adapter, moved)
    cfg = json.loads((moved / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "gone")
    (moved / "adapter_config.json").write_text(json.dumps(cfg))
    r = runner.invoke(app, ["ask", str(moved), "hi", "--max-tokens", "4"])
    assert r.exit_code == 2 and "base model" in r.output and "is missing" in r.output
    assert "Traceback" not in r.output


# --------------------------------------------------------------------------- GRPO


def test_grpo_rollouts_follow_the_adapter(base, tmp_path):
    """Two LoRA GRPO steps; the next rollout (the engine refreshed for step 2) must come from
    base + the current adapter: its greedy output and sampled log-probs equal the PEFT model's
    HF forward, and differ from the base's."""
    from ponder.generate import SamplingParams

    cfg = grpo.GRPOConfig(model=str(base), task=TASK, out=str(tmp_path / "g"), steps=2, batch_size=2,
                          num_generations=3, max_completion_length=12, n_prompts=16, save_every=1,
                          lora="r=4,alpha=16", lr=5e-2)
    trainer, rollout = grpo.build_trainer(cfg, tmp_path / "g")
    trainer.train()
    model = trainer.model
    assert any(v.abs().max() > 0 for k, v in model.state_dict().items() if "lora_B" in k)
    prompts = [trainer.train_dataset[0]["prompt"]] * 3
    out = rollout(prompts, trainer)  # what step 3 would roll out
    assert rollout.engine.path == "fast"
    model.eval()
    tok = trainer.processing_class
    p_ids = torch.tensor([out["prompt_ids"][0]])
    with torch.no_grad():
        for c_ids, lps in zip(out["completion_ids"], out["logprobs"]):
            full = torch.cat([p_ids, torch.tensor([c_ids])], dim=1)
            logits = model(input_ids=full).logits[0, p_ids.shape[1] - 1: -1]
            want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c_ids)[:, None])[:, 0]
            torch.testing.assert_close(torch.tensor(lps), want, atol=1e-4, rtol=1e-4)
        greedy = rollout.engine.generate(prompts[:1], sampling=SamplingParams(temperature=0.0, max_tokens=12))[0][0]
        ids = p_ids
        for _ in range(len(greedy.token_ids)):
            nxt = model(input_ids=ids).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
        assert greedy.token_ids == ids[0, p_ids.shape[1]:].tolist()
        with model.disable_adapter():
            full = torch.cat([p_ids, torch.tensor([out["completion_ids"][0]])], dim=1)
            logits = model(input_ids=full).logits[0, p_ids.shape[1] - 1: -1]
            base_lps = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out["completion_ids"][0])[:, None])[:, 0]
    assert (base_lps - torch.tensor(out["logprobs"][0])).abs().max() > 1e-3  # the adapter is what they follow
    assert tok is not None


def test_grpo_run_saves_an_adapter_that_continues_from_sft(adapter, tmp_path):
    cfg = grpo.GRPOConfig(model=str(adapter), task=TASK, out=str(tmp_path / "g"), steps=2, batch_size=2,
                          num_generations=2, max_completion_length=8, n_prompts=16, save_every=1, lora="r=4,alpha=8")
    final = grpo.run(cfg)
    assert is_adapter(final)
    sft_base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"] == sft_base
    rows = [json.loads(x) for x in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["peak_rss_mb"] > 0 for r in rows)
    with pytest.raises(ConfigError, match="adapter of another shape.*r: 4 -> 16"):
        grpo.build_trainer(grpo.GRPOConfig(model=str(adapter), task=TASK, out=str(tmp_path / "h"), lora="default"),
                           tmp_path / "h")


def test_recipes_take_a_lora_spec_per_stage():
    from ponder.train.pipeline import PipelineError, load_recipe, resolve

    stages = {s.name: s for s in resolve(load_recipe("r1", ["sft.lora=small", "grpo.lora=default"]))}
    assert stages["sft"].config.lora == "r=8,alpha=16,dropout=0,targets=all-linear"
    assert stages["grpo"].config.lora == str(LoraSpec()) and stages["final"].config.lora == ""
    with pytest.raises(PipelineError, match=r"grpo\.lora: unknown key 'rnk'"):
        resolve(load_recipe("r1", ["grpo.lora=rnk=3"]))
