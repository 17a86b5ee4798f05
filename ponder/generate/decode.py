"""The decode steps under ``LocalEngine``: the model's own forward (``HFRunner``), the fused
Llama step (``FastLlama``), the sampler and the thread tuner.

A runner holds one call's KV cache: ``start`` takes the prefill cache of P prompts and expands it
to B rows, ``step`` decodes one token for every row, ``select`` drops finished rows (compaction)
and ``hide`` masks a taken-back token's cache column. ``LocalEngine`` (``ponder.generate.local``)
drives them; the design and measurements are in docs/generation.md.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import torch
import torch.nn.functional as F

from ponder.generate.types import SamplingParams
from ponder.models.lora import effective_weight, is_peft


def unwrap_peft(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a PEFT wrapper (its LoRA layers are injected in place, so its
    own forward applies the adapter), else ``model``."""
    return model.get_base_model() if is_peft(model) else model


@functools.lru_cache(maxsize=None)
def forward_args(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def forward(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, past=None):
    """One HF forward. ids, pos: [B, q]; mask: [B, cached + q] (1 = attend).

    Returns the last position's logits [B, V] (float32) and the model's cache.
    """
    model = unwrap_peft(model)  # PeftModel.forward drops position_ids
    args = forward_args(type(model))
    kw = dict(input_ids=ids, attention_mask=mask, past_key_values=past, use_cache=True)
    if "position_ids" in args:
        kw["position_ids"] = pos
    if "logits_to_keep" in args:
        kw["logits_to_keep"] = 1
    out = model(**kw)
    return out.logits[:, -1].float(), out.past_key_values


class HFRunner:
    """Decode with the model's own forward and cache (works for any transformers causal LM)."""

    name = "hf"

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def start(self, past, rows: torch.Tensor, valid: torch.Tensor, s_max: int) -> None:
        """Take the prefill cache of P prompts and expand it to B rows (``rows``: [B] prompt index)."""
        past.reorder_cache(rows)
        self.past = past
        L = valid.shape[1]
        self.keep = torch.zeros(len(rows), s_max, dtype=torch.long)  # [B, S] 1 = attend to column
        self.keep[:, :L] = valid[rows].long()
        self.t = L  # next cache column

    def step(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """tokens, pos: [B] -> logits [B, V]; the tokens go into cache column t."""
        self.keep[:, self.t] = 1
        mask = self.keep[:, : self.t + 1]
        logits, self.past = forward(self.model, tokens[:, None], mask, pos[:, None], self.past)
        self.t += 1
        return logits

    def select(self, idx: torch.Tensor) -> None:
        """Keep only batch rows ``idx`` (compaction)."""
        self.past.reorder_cache(idx)
        self.keep = self.keep[idx]

    def hide(self, row: int, col: int) -> None:
        """Make cache column ``col`` invisible to batch row ``row`` (a token taken back)."""
        self.keep[row, col] = 0


def _mm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x @ w (+ b) for a float weight stored as FastLlama keeps it ([in, out])."""
    return torch.mm(x, w) if b is None else torch.addmm(b, x, w)


def _per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``[in, out]`` weight ``w`` as int8 ``[out, in]`` and one symmetric scale per output
    channel (max |w| / 127)."""
    w = w.t().contiguous()
    scale = (w.abs().amax(1) / 127).clamp(min=1e-12)
    return torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


def _int8(w: torch.Tensor, b: torch.Tensor | None) -> tuple:
    """Weight-only int8 (``quantize="int8"``): (int8 [out, in], bfloat16 scales, bias) for
    ``aten._weight_int8pack_mm``, which takes bfloat16 activations (its float32 kernel is ~5x
    slower here)."""
    q, scale = _per_channel(w)
    return q, scale.bfloat16(), b


def _w8mm(x: torch.Tensor, w: tuple, b) -> torch.Tensor:
    q, scale, bias = w
    y = torch.ops.aten._weight_int8pack_mm(x.to(torch.bfloat16), q, scale).float()
    return y if bias is None else y + bias


def _int8_dynamic(w: torch.Tensor, b: torch.Tensor | None):
    """fbgemm's packed int8 weight (``quantize="int8-dynamic"``), as ``quantize_dynamic`` makes
    it: ``quantized.linear_dynamic`` also quantises each call's activations to 8 bits, one scale
    for the whole [B, in] input -- faster than ``_int8`` here, less accurate, and a row's output
    then depends on the other rows of its batch."""
    q, scale = _per_channel(w)
    with warnings.catch_warnings():  # quantized tensors are deprecated in favour of torchao (not a dependency)
        warnings.simplefilter("ignore")
        qt = torch._make_per_channel_quantized_tensor(q, scale.double(), torch.zeros(len(scale), dtype=torch.long), 0)
        return torch.ops.quantized.linear_prepack(qt, b)


def _qmm(x: torch.Tensor, w, b) -> torch.Tensor:
    """x @ W.T + b for a weight packed by ``_int8_dynamic`` (the bias is packed with it)."""
    return torch.ops.quantized.linear_dynamic(x, w)


#: quantize= value -> (weight packer, matmul)
_QUANT = {"int8": (_int8, _w8mm), "int8-dynamic": (_int8_dynamic, _qmm)}


class FastLlama:
    """A decode step for Llama-family weights that bypasses the HF forward (see module docstring).

    ``quantize``: the decode step's matmuls (q|k|v, o, gate|up, down, lm head) run on int8
    weights, "int8" weight-only (``_int8``) or "int8-dynamic" (``_int8_dynamic``); prefill and
    the embedding stay float32. For inference only: the logits are no longer HF's, and the
    weights are re-quantised on every ``load``.

    Shapes: B rows, D hidden, H query heads, KV key/value heads (G = H // KV queries per KV head),
    hd head dim, A = (H + KV)·hd (the q|k part), I intermediate, S cache length, V vocabulary.
    """

    name = "fast"
    TYPES = ("llama", "mistral", "qwen2")

    @classmethod
    def unsupported(cls, model: torch.nn.Module) -> str | None:
        """Why the fast step cannot run ``model``, or None when it can."""
        model = unwrap_peft(model)
        cfg = model.config
        if cfg.model_type not in cls.TYPES:
            return f"model type {cfg.model_type!r} has no fast decode step (only {', '.join(cls.TYPES)})"
        if getattr(cfg, "hidden_act", "silu") != "silu":
            return f"activation {cfg.hidden_act!r} is not silu"
        if any(p.dtype != torch.float32 for p in model.parameters()):
            return "the fast step runs float32 weights only"
        if getattr(cfg, "sliding_window", None) is not None:
            return "sliding-window attention is not implemented"
        if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
            return "only full-attention layers are implemented"
        inner = getattr(model, "model", None)
        rot = getattr(inner, "rotary_emb", None)
        if rot is None or not hasattr(getattr(model, "lm_head", None), "weight"):
            return "unexpected module layout (no model.rotary_emb / lm_head)"
        rope = getattr(rot, "rope_type", "default")
        if "dynamic" in rope or rope == "longrope":
            return f"RoPE type {rope!r} changes with length"
        for layer in inner.layers:
            a = layer.self_attn
            if hasattr(a, "q_norm") or hasattr(a, "k_norm") or not hasattr(layer.mlp, "gate_proj"):
                return "unexpected layer layout (q/k norms or a non-SwiGLU MLP)"
        return None

    QUANTIZE = tuple(_QUANT)

    def __init__(self, model: torch.nn.Module, quantize: str | None = None):
        if quantize is not None and quantize not in self.QUANTIZE:
            raise ValueError(f"quantize must be None or one of {', '.join(self.QUANTIZE)}, got {quantize!r}")
        self.model, self.quantize = unwrap_peft(model), quantize
        self.load()

    def signature(self) -> tuple:
        """Identity and in-place version of every parameter: changes when the weights do."""
        return tuple((id(p), p._version) for p in self.model.parameters())

    @torch.no_grad()
    def load(self) -> None:
        """Copy the HF weights into fused matrices ([out, in], as nn.Linear stores them).

        A LoRA layer contributes its merged weight ``W + scale·B A`` (``effective_weight``): the
        step then decodes base + adapter at the base's cost, and a reload after each optimizer
        step (GRPO's rollouts) follows the adapter as it trains."""
        m, cfg = self.model, self.model.config
        self.H, self.KV = cfg.num_attention_heads, cfg.num_key_value_heads
        self.hd = hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.H
        self.D, self.G, self.A = cfg.hidden_size, self.H // self.KV, (self.H + self.KV) * hd
        # Each head's q/k output rows are reordered from [x1 | x2] halves to interleaved pairs
        # (x1_j, x2_j), so RoPE -- (x1·cos - x2·sin, x2·cos + x1·sin) -- is one complex multiply;
        # a transpose puts the result back in HF's order before it is cached or used.
        perm = torch.stack([torch.arange(hd // 2), torch.arange(hd // 2) + hd // 2], -1).flatten()

        def pair(w: torch.Tensor, heads: int) -> torch.Tensor:
            return w.reshape(heads, hd, *w.shape[1:])[:, perm].reshape(heads * hd, *w.shape[1:])

        def bias(*mods) -> torch.Tensor | None:
            if all(x.bias is None for x in mods):
                return None
            return torch.cat([x.bias if x.bias is not None else torch.zeros(x.out_features) for x in mods])

        self.layers = []
        for layer in m.model.layers:
            a, mlp = layer.self_attn, layer.mlp
            w = effective_weight
            wqkv = torch.cat([pair(w(a.q_proj), self.H), pair(w(a.k_proj), self.KV), w(a.v_proj)])
            b = bias(a.q_proj, a.k_proj, a.v_proj)
            if b is not None:
                q_end = self.H * hd
                b = torch.cat([pair(b[:q_end], self.H), pair(b[q_end : self.A], self.KV), b[self.A :]])
            self.layers.append((
                layer.input_layernorm.weight,  # [D]
                wqkv.t(), b,  # [D, A + KV·hd] (a transposed view), [A + KV·hd] | None
                w(a.o_proj).t(), a.o_proj.bias,  # [H·hd, D]
                layer.post_attention_layernorm.weight,
                torch.cat([w(mlp.gate_proj), w(mlp.up_proj)]).t(),  # [D, 2I]
                bias(mlp.gate_proj, mlp.up_proj),
                w(mlp.down_proj).t(), mlp.down_proj.bias,  # [I, D]
            ))
        self.I = cfg.intermediate_size
        self.eps = m.model.norm.variance_epsilon
        self.emb = m.model.embed_tokens.weight  # [V, D]
        self.norm = m.model.norm.weight
        self.lm, self.lm_b = effective_weight(m.lm_head).t(), getattr(m.lm_head, "bias", None)  # [D, V], [V] | None
        self.mm = _mm
        if self.quantize:  # the float fused copies are dropped once packed
            pack, self.mm = _QUANT[self.quantize]
            self.layers = [(w1, pack(wqkv, b), b, pack(wo, bo), bo, w2, pack(wgu, bgu), bgu, pack(wd, bd), bd)
                           for w1, wqkv, b, wo, bo, w2, wgu, bgu, wd, bd in self.layers]
            self.lm = pack(self.lm, self.lm_b)
        self.gemv = None  # contiguous copies for single-row steps, made on first use
        rot_mod = m.model.rotary_emb
        self.inv_freq = rot_mod.inv_freq.float()
        self.rope_scale = float(getattr(rot_mod, "attention_scaling", 1.0))
        self.version = self.signature()
        self.table_len = 0

    def _tables(self, s_max: int) -> None:
        """RoPE rotations e^(i·pos·freq) for positions [0, s_max): complex [S, 1, hd/2].

        The angles and the attention scaling are computed exactly as HF's rotary embedding does.
        """
        if s_max <= self.table_len:
            return
        freqs = torch.arange(s_max).float()[:, None] * self.inv_freq  # [S, hd/2]
        rot = torch.complex(freqs.cos() * self.rope_scale, freqs.sin() * self.rope_scale)
        self.rot = rot[:, None, :].contiguous()
        self.table_len = s_max

    def start(self, past, rows: torch.Tensor, valid: torch.Tensor, s_max: int) -> None:
        """Copy the prefill cache (P prompts, L columns) into a static cache of B rows, S = s_max."""
        if self.signature() != self.version:
            self.load()
        self._tables(s_max)
        B, L = len(rows), valid.shape[1]
        self.k, self.v = [], []
        for i in range(len(self.layers)):
            lay = past.layers[i]
            k = torch.empty(B, self.KV, s_max, self.hd)  # [B, KV, S, hd], keys already rotated
            v = torch.empty(B, self.KV, s_max, self.hd)
            k[:, :, :L] = lay.keys.index_select(0, rows)
            v[:, :, :L] = lay.values.index_select(0, rows)
            self.k.append(k)
            self.v.append(v)
        self.bias = torch.zeros(B, s_max)  # [B, S] additive mask: 0 attend, -inf hidden
        self.bias[:, :L].masked_fill_(~valid[rows], float("-inf"))
        self.masked = not bool(valid.all())
        self.t = L

    def step(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """tokens, pos: [B] -> logits [B, V]; the new k/v go into cache column t.

        For B >= 2 every op is the one the HF forward runs on the same values (F.linear is mm
        with the transposed weight; rms_norm, the RoPE products and SDPA in HF's calling forms),
        so the logits match HF's bit for bit (a test checks padded and unpadded batches). A single
        row uses [K, N] weight copies instead, for speed; its logits differ by float rounding.
        """
        B, t, T = tokens.shape[0], self.t, self.t + 1
        H, KV, G, hd, A, I, D, eps = self.H, self.KV, self.G, self.hd, self.A, self.I, self.D, self.eps
        layers, lm, mm = self.layers, self.lm, self.mm
        if B == 1 and not self.quantize:  # a [1, K] x [K, N] product is ~2.5x faster with the weight stored [K, N]
            if self.gemv is None:
                c = lambda w: w.contiguous() if w is not None and w.dim() == 2 else w  # noqa: E731
                self.gemv = [tuple(map(c, layer)) for layer in self.layers], self.lm.contiguous()
            layers, lm = self.gemv
        x = F.embedding(tokens, self.emb)  # [B, D]
        rot = self.rot[pos]  # [B, 1, hd/2] complex
        mask = self.bias[:, None, None, :T] if self.masked else None  # [B, 1, 1, T]
        for i, (w1, wqkv, bqkv, wo, bo, w2, wgu, bgu, wd, bd) in enumerate(layers):
            h = F.rms_norm(x, (D,), w1, eps)
            qkv = mm(h, wqkv, bqkv)  # [B, A + KV·hd]
            # RoPE on q and k at once: pairs as complex numbers times e^(i·angle), back to [x1 | x2]
            qk = torch.view_as_complex(qkv[:, :A].reshape(B, H + KV, hd // 2, 2)) * rot
            qk = torch.view_as_real(qk).transpose(2, 3).reshape(B, H + KV, hd)
            kc, vc = self.k[i], self.v[i]
            kc[:, :, t] = qk[:, H:]
            vc[:, :, t] = qkv[:, A:].view(B, KV, hd)
            k, v = kc[:, :, :T], vc[:, :, :T]  # [B, KV, T, hd]
            if mask is None:  # HF's calling forms: GQA kernel without a mask ...
                o = F.scaled_dot_product_attention(qk[:, :H, None], k, v, scale=hd ** -0.5, enable_gqa=True)
            else:  # ... and with one, the G query heads of a KV head as G queries: [B, KV, G, hd]
                o = F.scaled_dot_product_attention(qk[:, :H].view(B, KV, G, hd), k, v, attn_mask=mask,
                                                   scale=hd ** -0.5)
            o = o.reshape(B, H * hd)
            # residuals as HF adds them (addmm(x, ...) rounds differently when B > 1)
            x = x + mm(o, wo, bo)
            h = F.rms_norm(x, (D,), w2, eps)
            gu = mm(h, wgu, bgu)  # [B, 2I]
            act = F.silu(gu[:, :I]) * gu[:, I:]
            x = x + mm(act, wd, bd)
        h = F.rms_norm(x, (D,), self.norm, eps)
        logits = mm(h, lm, self.lm_b)  # [B, V]
        self.t += 1
        return logits

    def select(self, idx: torch.Tensor) -> None:
        """Keep only batch rows ``idx``, copying just the used columns."""
        t = self.t
        for cache in (self.k, self.v):
            for i, c in enumerate(cache):
                new = torch.empty(len(idx), *c.shape[1:])
                new[:, :, :t] = c[:, :, :t].index_select(0, idx)
                cache[i] = new
        self.bias = self.bias.index_select(0, idx)

    def hide(self, row: int, col: int) -> None:
        """Make cache column ``col`` invisible to batch row ``row`` (a token taken back)."""
        self.bias[row, col] = float("-inf")
        self.masked = True


def sample(logits: torch.Tensor, sp: SamplingParams, gen: torch.Generator | None) -> torch.Tensor:
    """logits [B, V] -> token ids [B] (greedy, or temperature + top-k + top-p sampling)."""
    if sp.greedy:
        return logits.argmax(-1)
    x = logits / sp.temperature if sp.temperature != 1 else logits
    k = sp.top_k or 0
    if 0 < k < x.shape[-1]:
        vals, idx = x.topk(k, -1)  # sorted, most likely first
    elif sp.top_p < 1:
        vals, idx = x.sort(-1, descending=True)
    else:
        return torch.multinomial(torch.softmax(x, -1), 1, generator=gen).squeeze(1)
    if sp.top_p < 1:  # drop a token once the mass before it already reaches top_p
        p = torch.softmax(vals, -1)
        vals = vals.masked_fill(p.cumsum(-1) - p >= sp.top_p, float("-inf"))
    pick = torch.multinomial(torch.softmax(vals, -1), 1, generator=gen)
    return idx.gather(1, pick).squeeze(1)


class ThreadTuner:
    """Decode on k threads or on 1, whichever is faster right now, by timing steps.

    With k > 1 every parallel op waits for all its threads; on a shared machine a busy core turns
    that wait into a scheduler time slice, and decode steps ten times slower than on one thread
    were measured on the 2-core development machine. So both settings are timed (4 steps each,
    after one unmeasured step following each switch) at the start and again after 64, 128, 256,
    ... steps, and the faster time per row is kept. Used as a context manager, it restores
    torch's thread count on exit.
    """

    def __init__(self, k: int, tune: bool = True):
        self.k, self.best = (k if tune else 1), k
        self.plan: list[int] = []  # thread counts of the next timed steps
        self.samples: dict[int, list[float]] = {}
        self.n, self.next_probe, self.interval, self.switched = 0, 0, 64, False

    def __enter__(self) -> "ThreadTuner":
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.best)
        return self

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.old)

    def before(self) -> None:
        """Set the thread count for the next step."""
        if self.k == 1:
            return
        if not self.plan and self.n >= self.next_probe:
            self.plan, self.samples = [self.k] * 5 + [1] * 5, {self.k: [], 1: []}
        want = self.plan[0] if self.plan else self.best
        if want != torch.get_num_threads():
            torch.set_num_threads(want)
            self.switched = True

    def after(self, seconds: float, rows: int) -> None:
        """Record how long the step took for ``rows`` rows."""
        self.n += 1
        if self.plan:
            threads = self.plan.pop(0)
            if not self.switched:
                self.samples[threads].append(seconds / rows)
            if not self.plan:
                median = {t: sorted(v)[len(v) // 2] for t, v in self.samples.items() if v}
                if median:  # (every step of a probe can be a switched one when callers change threads)
                    self.best = min(median, key=median.get)
                self.next_probe, self.interval = self.n + self.interval, self.interval * 2
        self.switched = False


