"""LocalEngine: greedy parity with transformers, sampling, stop strings, thinking budgets, errors.

Two kinds of tiny model, both built here (nothing is downloaded):

* a random Llama (hidden 64, 2 layers, 4 heads / 2 KV heads) with ``initializer_range=0.2``.
  For two or more rows the fast step's logits equal the HF forward's bit for bit (checked
  directly), so greedy parity cannot flake; single-row runs differ by float rounding (~1e-5),
  far below this model's smallest top-2 logit gap on the tested paths (~7e-3).
  ``test_greedy_is_not_trivial`` guards that the outputs are varied, not one repeated token;
* a *scripted* Llama whose next token is a fixed function of the current token: one layer with
  zero o_proj/down_proj (the residual stream stays the token embedding), one-hot embeddings, and
  an lm_head that puts logit ~80 on the scripted successor. It makes the thinking-budget tests
  exact -- e.g. a model that always tries to close ``</think>`` at once, for budget forcing.
"""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from ponder.format import parse
from ponder.generate import Backend, Budget, GenerationError, LocalEngine, SamplingParams

PROMPTS = [
    "Question: what is 3 + 4?",
    "Wait",
    "The answer is 12. Question: what is 100 + 2? Let me think step by step.",
    "Question: what is 5 + 5?\n<think>",
]


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    """A 300-token byte-level BPE trained on a few lines, plus single-token think tags."""
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator([f"Question: what is {i} + {i % 7}?\nWait, {i} + {i % 7} = {i + i % 7}. "
                           f"The answer is {i + i % 7}." for i in range(200)], trainer)
    f = PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<s>", eos_token="</s>",
                                pad_token="<pad>", padding_side="left")
    f.add_tokens(["<think>", "</think>"])
    return f


def _llama(tok, seed: int = 0, cls=LlamaForCausalLM, cfg_cls=LlamaConfig, **kw) -> torch.nn.Module:
    cfg = cfg_cls(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=len(tok), initializer_range=0.2,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id, **kw)
    torch.manual_seed(seed)
    return cls(cfg).eval()


@pytest.fixture(scope="module")
def llama(tok):
    """The random Llama, with the EOS row of lm_head doubled so that greedy rows end on EOS at
    different steps (1, 15 and 16 tokens) while one runs to max_tokens."""
    m = _llama(tok)
    with torch.no_grad():
        m.lm_head.weight[tok.eos_token_id] *= 2
    return m


def scripted(tok, table: dict[str, str], default: str) -> LlamaForCausalLM:
    """A Llama whose greedy next token after token ``a`` is ``table[a]`` (else ``default``).

    Keys and values are strings that encode to exactly one token ("</s>" is EOS).
    """
    V = len(tok)
    ids = {}
    for s in [*table, *table.values(), default]:
        enc = [tok.convert_tokens_to_ids(s)] if s in ("</s>", "<think>", "</think>") else tok.encode(s)
        assert len(enc) == 1, f"{s!r} is not one token"
        ids[s] = enc[0]
    cfg = LlamaConfig(hidden_size=V + (-V) % 8, intermediate_size=8, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=V,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    m = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        D = cfg.hidden_size
        m.model.embed_tokens.weight.copy_(torch.eye(V, D))  # token i -> e_i
        m.model.layers[0].self_attn.o_proj.weight.zero_()  # the layer adds nothing
        m.model.layers[0].mlp.down_proj.weight.zero_()
        W = torch.zeros(V, D)  # rmsnorm(e_i) = sqrt(D)·e_i, so logit(j) = sqrt(D)·W[j, i]
        W[ids[default], :V] = 10.0
        for a, b in table.items():
            W[:, ids[a]] = 0.0
            W[ids[b], ids[a]] = 10.0
        m.lm_head.weight.copy_(W)
    return m


def hf_greedy(model, tok, prompts, max_new: int) -> list[list[int]]:
    """transformers' own greedy generate, cut after the first EOS."""
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
    rows = []
    for r in out[:, enc.input_ids.shape[1]:].tolist():
        rows.append(r[: r.index(tok.eos_token_id) + 1] if tok.eos_token_id in r else r)
    return rows


GREEDY = SamplingParams(temperature=0, max_tokens=24)


# --------------------------------------------------------------------------- greedy parity


@pytest.mark.parametrize("fast", [True, False], ids=["fast-step", "hf-forward"])
def test_greedy_matches_transformers_generate(tok, llama, fast):
    engine = LocalEngine(llama, tok, fast=fast)
    assert engine.path == ("fast" if fast else "hf")
    ref = hf_greedy(llama, tok, PROMPTS, 24)
    got = engine.generate(PROMPTS, sampling=GREEDY)
    assert [len(g) for g in got] == [1] * len(PROMPTS)
    for (c,), r in zip(got, ref):
        assert c.token_ids == r
        assert c.finish_reason == ("eos" if r[-1] == tok.eos_token_id else "length")
        assert len(c.logprobs) == len(c.token_ids)
    assert {c.finish_reason for (c,) in got} == {"eos", "length"}  # both stop paths ran (and compaction)


def test_greedy_is_not_trivial(tok, llama):
    got = LocalEngine(llama, tok).generate(PROMPTS, sampling=GREEDY)
    lengths = [len(c.token_ids) for (c,) in got]
    assert len(set(sum((c.token_ids for (c,) in got), []))) > 15  # varied tokens
    assert len(set(lengths)) > 1  # rows finish at different steps


@pytest.mark.parametrize("kind", ["qwen2", "mistral", "gpt2"])
def test_other_architectures(tok, kind):
    if kind == "qwen2":  # q/k/v biases go through the fused matmul
        model = _llama(tok, 1, Qwen2ForCausalLM, Qwen2Config)
        with torch.no_grad():
            for layer in model.model.layers:
                for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    p.bias.normal_(0, 0.5)
    elif kind == "mistral":
        model = _llama(tok, 2, MistralForCausalLM, MistralConfig, sliding_window=None)
    else:  # no fast step: falls back to the HF forward by itself
        cfg = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=len(tok), initializer_range=0.2,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        torch.manual_seed(3)
        model = GPT2LMHeadModel(cfg).eval()
    engine = LocalEngine(model, tok)
    assert engine.path == ("hf" if kind == "gpt2" else "fast"), engine.path_reason
    ref = hf_greedy(model, tok, PROMPTS, 16)
    got = engine.generate(PROMPTS, sampling=SamplingParams(temperature=0, max_tokens=16))
    assert [c.token_ids for (c,) in got] == ref


@pytest.mark.parametrize("prompts", [PROMPTS, [PROMPTS[0]] * 3], ids=["padded", "unpadded"])
def test_fast_step_logits_equal_the_hf_forward_bit_for_bit(tok, prompts):
    """For B >= 2 the fast step runs HF's own ops on the same values: identical logits, so greedy
    parity does not depend on luck with near-ties. (Norm weights and q/k/v biases are made
    non-trivial so that nothing is exact by accident.)"""
    from ponder.generate.decode import forward as _forward

    model = _llama(tok, 5, Qwen2ForCausalLM, Qwen2Config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "bias" in name:
                p.uniform_(0.5, 1.5)
    runner = LocalEngine(model, tok).runner
    enc = tok(prompts, return_tensors="pt", padding=True)
    valid, B = enc.attention_mask.bool(), len(prompts)
    with torch.inference_mode():
        pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
        logits, past = _forward(model, enc.input_ids, valid.long(), pos)
        runner.start(past, torch.arange(B), valid, enc.input_ids.shape[1] + 20)
        _, hf_past = _forward(model, enc.input_ids, valid.long(), pos)
        mask, tok_, pos = valid.long(), logits.argmax(-1), valid.sum(1) - 1
        assert runner.masked == (len(set(prompts)) > 1)
        for _ in range(16):
            pos = pos + 1
            mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long)], 1)
            ours = runner.step(tok_, pos)
            ref, hf_past = _forward(model, tok_[:, None], mask, pos[:, None], hf_past)
            assert torch.equal(ours, ref)
            tok_ = torch.multinomial(torch.softmax(ref, -1), 1).squeeze(1)  # varied tokens


def test_fast_required_but_unsupported_raises(tok):
    model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=len(tok)))
    with pytest.raises(GenerationError, match="gpt2"):
        LocalEngine(model, tok, fast=True)


def test_weights_changed_in_place_are_picked_up(tok):
    model = _llama(tok, 4)
    engine = LocalEngine(model, tok)
    before = engine.generate(PROMPTS[:2], sampling=GREEDY)
    with torch.no_grad():  # what an optimizer step does
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    after = engine.generate(PROMPTS[:2], sampling=GREEDY)
    ref = hf_greedy(model, tok, PROMPTS[:2], 24)
    assert [c.token_ids for (c,) in after] == ref
    assert [c.token_ids for (c,) in after] != [c.token_ids for (c,) in before]


def test_n_greedy_samples_share_one_prefill(tok, llama):
    engine = LocalEngine(llama, tok)
    one = engine.generate(PROMPTS, sampling=GREEDY)
    three = engine.generate(PROMPTS, n=3, sampling=GREEDY)
    assert [len(g) for g in three] == [3] * len(PROMPTS)
    for (c,), group in zip(one, three):
        assert all(s.token_ids == c.token_ids for s in group)


# --------------------------------------------------------------------------- sampling


def _teacher_forced_logprobs(model, tok, prompt: str, ids: list[int]) -> torch.Tensor:
    p = tok(prompt)["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([p + ids])).logits[0, len(p) - 1 : -1]
    return torch.log_softmax(logits, -1)  # [len(ids), V]


def test_seeded_sampling_is_reproducible_and_samples_differ(tok, llama):
    engine = LocalEngine(llama, tok)
    sp = SamplingParams(temperature=1.0, max_tokens=12, seed=7)
    a = engine.generate(PROMPTS[:2], n=4, sampling=sp)
    b = engine.generate(PROMPTS[:2], n=4, sampling=sp)
    c = engine.generate(PROMPTS[:2], n=4, sampling=SamplingParams(temperature=1.0, max_tokens=12, seed=8))
    ids = lambda res: [[s.token_ids for s in g] for g in res]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)
    for group in a:  # grouped per prompt, and the n samples differ
        assert len(group) == 4 and len({tuple(s.token_ids) for s in group}) > 1


@pytest.mark.parametrize("sp", [SamplingParams(temperature=1, top_k=1, max_tokens=16, seed=0),
                                SamplingParams(temperature=1, top_p=1e-6, max_tokens=16, seed=0)],
                         ids=["top_k=1", "top_p~0"])
def test_truncation_to_one_token_is_greedy(tok, llama, sp):
    engine = LocalEngine(llama, tok)
    greedy = engine.generate(PROMPTS, sampling=SamplingParams(temperature=0, max_tokens=16))
    assert [c.token_ids for (c,) in engine.generate(PROMPTS, sampling=sp)] == [c.token_ids for (c,) in greedy]


def test_top_k_and_logprobs_are_of_the_raw_model(tok, llama):
    """Sampled tokens are within the top k; logprobs are log p under the untempered model."""
    engine = LocalEngine(llama, tok)
    sp = SamplingParams(temperature=2.0, top_k=3, max_tokens=20, seed=1, ignore_eos=True)
    (group,) = engine.generate([PROMPTS[0]], n=3, sampling=sp)
    for c in group:
        lsm = _teacher_forced_logprobs(llama, tok, PROMPTS[0], c.token_ids)
        ranks = (lsm > lsm.gather(1, torch.tensor(c.token_ids)[:, None])).sum(1)
        assert int(ranks.max()) < 3
        expected = lsm.gather(1, torch.tensor(c.token_ids)[:, None]).squeeze(1)
        assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-4)
        assert c.mean_logprob == pytest.approx(float(expected.mean()), abs=1e-4)


def test_top_p_keeps_the_nucleus(tok, llama):
    engine = LocalEngine(llama, tok)
    sp = SamplingParams(temperature=1.0, top_p=0.5, max_tokens=20, seed=2, ignore_eos=True)
    (group,) = engine.generate([PROMPTS[2]], n=3, sampling=sp)
    for c in group:
        lsm = _teacher_forced_logprobs(llama, tok, PROMPTS[2], c.token_ids)
        probs = lsm.exp()
        p_tok = probs.gather(1, torch.tensor(c.token_ids)[:, None]).squeeze(1)
        mass_before = (probs * (probs > p_tok[:, None])).sum(1)  # mass of strictly likelier tokens
        assert bool((mass_before < 0.5 + 1e-5).all())


# --------------------------------------------------------------------------- stop strings


@pytest.mark.parametrize("fast", [True, False], ids=["fast-step", "hf-forward"])
def test_stop_string_trims_text_and_sets_finish_reason(tok, llama, fast):
    engine = LocalEngine(llama, tok, fast=fast)
    sp = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    (full,), = engine.generate([PROMPTS[0]], sampling=sp)
    text = full.text
    i = next(i for i in range(3, len(text) - 2) if text[i:i + 2].isascii() and text[i:i + 2].isprintable())
    stop = text[i:i + 2]
    (c,), = engine.generate([PROMPTS[0]], sampling=SamplingParams(temperature=0, max_tokens=24,
                                                                  ignore_eos=True, stop=[stop, "never"]))
    assert c.finish_reason == "stop"
    assert c.text == text[: text.index(stop)]
    assert full.token_ids[: len(c.token_ids)] == c.token_ids  # stopped early, same tokens
    assert stop in tok.decode(c.token_ids) and stop not in tok.decode(c.token_ids[:-1])


# --------------------------------------------------------------------------- thinking budgets


@pytest.mark.parametrize("fast", [True, False], ids=["fast-step", "hf-forward"])
def test_thinking_budget_cuts_off_and_answer_gets_its_own_max_tokens(tok, fast):
    # thinks "x x x ..." forever; after the forced "\n</think>\n" it answers "A" then EOS
    model = scripted(tok, {"\n": "A", "A": "</s>"}, default="x")
    engine = LocalEngine(model, tok, fast=fast)
    prompt = "Question: what is 3 + 4?<think>"
    (c,), = engine.generate([prompt], budget=Budget(thinking_budget=10),
                            sampling=SamplingParams(temperature=0, max_tokens=5))
    x, nl, close, a = (tok.encode(s)[0] for s in ("x", "\n", "</think>", "A"))
    assert c.token_ids == [x] * 10 + [nl, close, nl, a, tok.eos_token_id]
    assert c.forced_close and c.think_closed and c.finish_reason == "eos"
    # the budget counts the model's own reasoning; the forced "\n</think>" (2 tokens) comes on top
    assert (c.reasoning_tokens, c.answer_tokens) == (10 + 2, 3)
    assert c.reasoning == "x" * 10 and c.answer == "A"
    assert c.text == "x" * 10 + "\n</think>\nA"
    # the answer's max_tokens is counted after </think>: 2 answer tokens, then "length"
    (c,), = engine.generate([prompt], budget=Budget(thinking_budget=10),
                            sampling=SamplingParams(temperature=0, max_tokens=2))
    assert (c.reasoning_tokens, c.answer_tokens, c.finish_reason) == (12, 2, "length")
    # without a budget the same model thinks until max_tokens
    (c,), = engine.generate([prompt], sampling=SamplingParams(temperature=0, max_tokens=30))
    assert (c.reasoning_tokens, c.answer_tokens, c.finish_reason) == (30, 0, "length")
    assert not c.think_closed and c.answer == ""


def test_effort_maps_to_a_budget_through_the_table(tok):
    model = scripted(tok, {"\n": "A", "A": "</s>"}, default="x")
    prompt = "Question: what is 3 + 4?<think>"
    sp = SamplingParams(temperature=0, max_tokens=5)
    engine = LocalEngine(model, tok, effort_table={"low": 6, "medium": 12, "high": 20})
    got = {e: engine.generate([prompt], budget=Budget(effort=e), sampling=sp)[0][0].reasoning_tokens
           for e in ("low", "medium", "high")}
    assert got == {"low": 6 + 2, "medium": 12 + 2, "high": 20 + 2}  # + the forced "\n</think>"
    model.config.ponder_effort_budgets = {"low": 4, "medium": 5, "high": 7}  # the model's own table
    assert LocalEngine(model, tok).generate([prompt], budget=Budget(effort="high"),
                                            sampling=sp)[0][0].reasoning_tokens == 7 + 2


def test_budget_applies_once_the_model_opens_think_itself(tok):
    # no pre-filled <think>: the model writes "<think>" then thinks "x x ..."
    model = scripted(tok, {"?": "<think>", "\n": "A", "A": "</s>"}, default="x")
    (c,), = LocalEngine(model, tok).generate(["Question: what is 3 + 4?"], budget=Budget(thinking_budget=7),
                                             sampling=SamplingParams(temperature=0, max_tokens=5))
    # 7 tokens of its own after its <think>, then the forced close
    assert c.text == "<think>xxxxxxx\n</think>\nA"
    assert (c.reasoning_tokens, c.answer_tokens) == (1 + 7 + 2, 3)
    assert c.reasoning == "xxxxxxx" and c.answer == "A"


@pytest.mark.parametrize("fast", [True, False], ids=["fast-step", "hf-forward"])
def test_min_thinking_suppresses_early_close_with_wait(tok, fast):
    # a model that tries to close </think> at once, after anything; once closed it answers "A"
    model = scripted(tok, {"</think>": "A", "A": "</s>"}, default="</think>")
    engine = LocalEngine(model, tok, fast=fast)
    prompt = "Question: what is 3 + 4?<think>"
    sp = SamplingParams(temperature=0, max_tokens=8)
    (c,), = engine.generate([prompt], sampling=sp)
    assert (c.text, c.waits, c.reasoning_tokens) == ("</think>A", 0, 1)
    (c,), = engine.generate([prompt], sampling=sp, budget=Budget(min_thinking=3, max_waits=5))
    # "Wait" (1 token) is inserted while fewer than 3 reasoning tokens precede the </think>
    assert c.text == "WaitWaitWait</think>A" and c.waits == 3
    assert (c.reasoning, c.answer) == ("WaitWaitWait", "A")
    assert (c.reasoning_tokens, c.answer_tokens, c.finish_reason) == (4, 2, "eos")
    (c,), = engine.generate([prompt], sampling=sp, budget=Budget(min_thinking=3, max_waits=1))
    assert c.text == "Wait</think>A" and c.waits == 1  # at most max_waits
    # a multi-token wait phrase, and a thinking budget that still caps the reasoning
    w = len(tok.encode(" Wait,"))
    assert w in (2, 3)
    (c,), = engine.generate([prompt], sampling=sp,
                            budget=Budget(min_thinking=4, max_waits=9, wait_token=" Wait,"))
    assert c.text == " Wait, Wait,</think>A" and c.waits == 2 and c.reasoning_tokens == 2 * w + 1
    # the thinking budget (4 tokens of reasoning) cuts the second wait short, then closes
    (c,), = engine.generate([prompt], sampling=sp,
                            budget=Budget(min_thinking=4, thinking_budget=4, max_waits=9,
                                          wait_token=" Wait,"))
    assert (c.reasoning_tokens, c.waits, c.forced_close) == (4 + 2, 2, True)
    wait = tok.encode(" Wait,")
    assert c.text.startswith(tok.decode((wait + wait)[:4]) + "\n</think>\n")


def test_min_thinking_with_a_multi_token_close_tag_takes_the_pieces_back():
    """Without a </think> token the tag is several tokens; suppressing it removes all of them."""
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(["Hm ok. A"], trainers.BpeTrainer(
        vocab_size=260, special_tokens=["<pad>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tk = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="</s>", pad_token="<pad>", padding_side="left")
    pieces = tk.encode("</think>")
    assert len(pieces) == 8  # one byte each: < / t h i n k >
    chars = "</think>"  # a bigram script that spells "</think>" after every ">" (and after "m")
    table = {chars[i]: chars[i + 1] for i in range(len(chars) - 1)}
    model = scripted(tk, {**table, ">": "<", "H": "m", "m": "<"}, default="A")
    for fast in (True, False):
        (c,), = LocalEngine(model, tk, fast=fast).generate(
            ["Q?<think>"], sampling=SamplingParams(temperature=0, max_tokens=13),
            budget=Budget(min_thinking=3, max_waits=1, wait_token="H"))
        # first "</think>" (reasoning 0 < 3) is taken back and replaced by "H"; "Hm</think>" passes
        assert c.waits == 1
        assert c.text == "Hm</think></t" and c.reasoning == "Hm" and c.finish_reason == "length"
        assert c.reasoning_tokens == 2 + 8 and len(c.logprobs) == len(c.token_ids)


# --------------------------------------------------------------------------- interface and errors


def test_empty_prompt_list_and_protocol(tok, llama):
    engine = LocalEngine(llama, tok)
    assert engine.generate([]) == []
    assert isinstance(engine, Backend)


def test_threads_are_restored(tok, llama):
    before = torch.get_num_threads()
    LocalEngine(llama, tok, num_threads=1).generate(PROMPTS[:1], sampling=SamplingParams(max_tokens=2))
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("make", [
    lambda: SamplingParams(temperature=-0.1),
    lambda: SamplingParams(top_p=0),
    lambda: SamplingParams(top_p=1.5),
    lambda: SamplingParams(top_k=-1),
    lambda: SamplingParams(max_tokens=0),
    lambda: SamplingParams(stop=[""]),
    lambda: Budget(thinking_budget=-1),
    lambda: Budget(effort="extreme"),
    lambda: Budget(thinking_budget=10, effort="low"),
    lambda: Budget(thinking_budget=10, min_thinking=20),
    lambda: Budget(max_waits=-1),
    lambda: Budget(wait_token=""),
])
def test_bad_parameters_raise(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("kw, match", [
    (dict(prompts=PROMPTS, n=0), "n must be"),
    (dict(prompts=PROMPTS, n=-2), "n must be"),
    (dict(prompts=PROMPTS, n=1.5), "n must be"),
    (dict(prompts="a single string"), "list of strings"),
    (dict(prompts=["ok", 3]), r"prompts\[1\]"),
    (dict(prompts=["ok", ""]), r"prompts\[1\] encodes to no tokens"),
])
def test_bad_requests_raise(tok, llama, kw, match):
    with pytest.raises(GenerationError, match=match):
        LocalEngine(llama, tok).generate(**kw)


def test_effort_missing_from_table_raises(tok, llama):
    with pytest.raises(GenerationError, match="effort table"):
        LocalEngine(llama, tok, effort_table={"low": 4}).generate(PROMPTS[:1], budget=Budget(effort="high"))


def test_from_path_loads_a_local_checkpoint(tok, llama, tmp_path):
    llama.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    engine = LocalEngine.from_path(tmp_path)
    assert engine.path == "fast"
    (c,), = engine.generate(PROMPTS[:1], sampling=GREEDY)
    assert c.token_ids == hf_greedy(llama, tok, PROMPTS[:1], 24)[0]
    with pytest.raises(GenerationError, match="not a directory"):
        LocalEngine.from_path(tmp_path / "missing")


def test_reasoning_split_follows_the_prompt_prefill(tok):
    """The same completion is reasoning after a pre-filled <think>, and an answer otherwise."""
    model = scripted(tok, {}, default="x")
    engine = LocalEngine(model, tok)
    sp = SamplingParams(temperature=0, max_tokens=4)
    (think,), (plain,) = engine.generate(["Q?<think>", "Q?"], sampling=sp)
    assert think.text == plain.text == "xxxx"
    assert (think.reasoning, think.answer, think.reasoning_tokens) == ("xxxx", "", 4)
    assert (plain.reasoning, plain.answer, plain.answer_tokens) == ("", "xxxx", 4)
    assert parse(plain.text).answer == plain.answer
