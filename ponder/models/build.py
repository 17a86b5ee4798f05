"""Tiny causal LMs: size presets, building from a tokenizer, saving, and loading local checkpoints.

Models are transformers **Llama** architecture (RMSNorm, rotary positions, SwiGLU MLP), fp32,
with tied input/output embeddings to save parameters. Llama, not Qwen2: with a ``qwen2`` config
transformers swaps in Qwen's own tokenizer class for a custom ``tokenizer.json``, which breaks a
byte-level tokenizer trained here; for ``llama`` it honours ``tokenizer_class`` in
``tokenizer_config.json``. A checkpoint written by ``save`` (``save_pretrained``, safetensors)
loads unchanged in transformers, TRL and vLLM.

Presets (parameters counted with embeddings, tied, at a 512-token vocabulary; each extra
vocabulary entry adds ``hidden_size`` parameters):

========  ======  ======  =====  ============  ==========
preset    hidden  layers  heads  intermediate  parameters
========  ======  ======  =====  ============  ==========
nano         128       4      4           448   1,016,960
micro        192       6      6           576   2,976,192
mini         320       8      5           864  10,081,600
========  ======  ======  =====  ============  ==========

``load(path)`` opens any local Hugging Face checkpoint directory and never contacts a hub: the
path must be an existing directory, every call passes ``local_files_only=True`` and the hub is
switched to offline mode. Every way a directory can be unusable is a ``ModelLoadError`` naming
the path and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from ponder.config import ConfigError, coerce, option

# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of a tiny Llama causal LM (the vocabulary comes from the tokenizer)."""

    hidden_size: int = option(128, "width of the residual stream (and of the embeddings)")
    num_layers: int = option(4, "number of transformer blocks")
    num_heads: int = option(4, "attention heads; hidden_size must be divisible by it")
    num_kv_heads: int | None = option(
        None, "key/value heads for grouped-query attention (None: as many as num_heads)"
    )
    intermediate_size: int = option(448, "hidden width of the SwiGLU MLP")
    max_position_embeddings: int = option(1024, "longest sequence (prompt + completion) in tokens")
    rope_theta: float = option(10000.0, "rotary position embedding base")
    rms_norm_eps: float = option(1e-6, "epsilon of the RMSNorm layers")
    initializer_range: float = option(0.02, "standard deviation of the initial weights")
    tie_word_embeddings: bool = option(True, "share the input embedding and output head (saves vocab*hidden)")
    seed: int = option(0, "seed for the initial weights (the global torch RNG is left untouched)")

    def __post_init__(self) -> None:
        for f in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position_embeddings"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"model.{f} must be a positive int, got {v!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.hidden_size ({self.hidden_size}) must be divisible by model.num_heads ({self.num_heads})"
            )
        kv = self.kv_heads
        if not isinstance(kv, int) or kv < 1 or self.num_heads % kv:
            raise ConfigError(f"model.num_kv_heads ({kv!r}) must be a positive divisor of num_heads ({self.num_heads})")

    @property
    def kv_heads(self) -> int:
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    def param_count(self, vocab_size: int) -> int:
        """Parameters of the built model at ``vocab_size`` (embeddings included, counted once if tied)."""
        d, head_dim = self.hidden_size, self.hidden_size // self.num_heads
        attn = 2 * d * d + 2 * d * self.kv_heads * head_dim  # q, o full; k, v per kv head
        mlp = 3 * d * self.intermediate_size  # gate, up, down
        block = attn + mlp + 2 * d  # two RMSNorm weights
        embed = vocab_size * d * (1 if self.tie_word_embeddings else 2)
        return embed + self.num_layers * block + d  # + final norm


PRESETS: dict[str, ModelConfig] = {
    "nano": ModelConfig(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=448),
    "micro": ModelConfig(hidden_size=192, num_layers=6, num_heads=6, intermediate_size=576),
    "mini": ModelConfig(hidden_size=320, num_layers=8, num_heads=5, intermediate_size=864),
}
NOMINAL_PARAMS = {"nano": 1_000_000, "micro": 3_000_000, "mini": 10_000_000}


def resolve_config(preset: str | dict[str, Any] | ModelConfig) -> ModelConfig:
    """A ``ModelConfig`` from a preset name, a config, or a mapping ``{"preset": name, **overrides}``.

    A mapping without ``"preset"`` overrides the defaults (which are the ``nano`` preset). Unknown
    keys are a ``ConfigError`` that lists the valid ones.
    """
    if isinstance(preset, ModelConfig):
        return preset
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ConfigError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
        return PRESETS[preset]
    if isinstance(preset, dict):
        data = dict(preset)
        base = resolve_config(data.pop("preset", "nano"))
        hints = typing.get_type_hints(ModelConfig)
        unknown = sorted(set(data) - set(hints))
        if unknown:  # a typo must never be silently ignored
            raise ConfigError(f"model: unknown option(s) {', '.join(unknown)}; valid: preset, {', '.join(sorted(hints))}")
        # overrides apply to the preset, and only the result is validated (mini with 10 heads is fine)
        return replace(base, **{k: coerce(v, hints[k], f"model.{k}") for k, v in data.items()})
    raise ConfigError(f"model preset must be a name, a mapping or a ModelConfig, got {type(preset).__name__}")


# --------------------------------------------------------------------------- build and save


def llama_config(cfg: ModelConfig, vocab_size: int, bos_id: int | None, eos_id: int, pad_id: int) -> LlamaConfig:
    """The transformers ``LlamaConfig`` for ``cfg`` with the tokenizer's vocabulary and ids."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg.rope_theta)},
        rms_norm_eps=cfg.rms_norm_eps,
        initializer_range=cfg.initializer_range,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
    )


def build_model(
    preset: str | dict[str, Any] | ModelConfig,
    tokenizer,
    *,
    seed: int | None = None,
    max_position_embeddings: int | None = None,
) -> LlamaForCausalLM:
    """A freshly initialised fp32 Llama for ``tokenizer`` (vocab = ``len(tokenizer)``).

    ``seed`` and ``max_position_embeddings`` override the config's values. The same config and
    seed give identical weights; the global torch RNG state is not changed.
    """
    cfg = resolve_config(preset)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    if max_position_embeddings is not None:
        cfg = replace(cfg, max_position_embeddings=max_position_embeddings)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ConfigError("the tokenizer has no eos token: a model could never learn to stop")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config = llama_config(cfg, len(tokenizer), tokenizer.bos_token_id, eos, pad)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = LlamaForCausalLM(config)
    model.to(torch.float32)
    model.config.ponder_thinking = "model"  # ponder's models open <think> themselves (ponder.format.render)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = tokenizer.bos_token_id, eos, pad
    return model


def save(model, tokenizer, out_dir: str | os.PathLike) -> Path:
    """Write model (safetensors) and tokenizer into ``out_dir`` so ``load`` and vLLM read them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def count_params(model: torch.nn.Module) -> int:
    """Distinct parameters of ``model`` (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())  # parameters() already de-duplicates


# --------------------------------------------------------------------------- load


class ModelLoadError(ValueError):
    """A path is not a usable local checkpoint; the message names the path and the problem."""


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _force_offline() -> None:
    """Switch the Hugging Face hub client to offline mode (belt and braces: every call is local)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import huggingface_hub.constants as hub_constants

    # The env var is read once, at import; the module flag is what transformers consults later.
    hub_constants.HF_HUB_OFFLINE = True


def check_checkpoint(path: str | os.PathLike) -> Path:
    """Validate that ``path`` looks like a loadable local checkpoint; return it resolved."""
    if not isinstance(path, (str, os.PathLike)):
        raise ModelLoadError(f"a model path must be a string or path, got {type(path).__name__}")
    p = Path(path).expanduser()
    if not p.exists():
        if isinstance(path, str) and _HUB_ID.match(path):
            raise ModelLoadError(
                f"{path!r} is not a local directory; ponder never downloads models "
                "(give the path of a checkpoint directory with config.json, weights and tokenizer files)"
            )
        raise ModelLoadError(f"{p}: no such directory")
    if not p.is_dir():
        raise ModelLoadError(f"{p}: is a file, not a checkpoint directory")
    cfg_file = p / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"{p}: no config.json (not a Hugging Face model directory)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelLoadError(f"{cfg_file}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or not cfg.get("model_type"):
        raise ModelLoadError(f"{cfg_file}: has no model_type, so the architecture is unknown")
    if not any((p / f).is_file() for f in WEIGHT_FILES):
        raise ModelLoadError(f"{p}: no weights (expected one of {', '.join(WEIGHT_FILES)})")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(f"{p}: no tokenizer (expected {' or '.join(TOKENIZER_FILES)})")
    return p.resolve()


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    found = getattr(torch, str(dtype), None)
    if not isinstance(found, torch.dtype):
        raise ModelLoadError(f"unknown dtype {dtype!r}; use float32 (the CPU default), bfloat16 or float16")
    return found


def load(
    path: str | os.PathLike, device: str = "cpu", dtype: str | torch.dtype = torch.float32
) -> tuple[torch.nn.Module, Any]:
    """Load ``(model, tokenizer)`` from a local checkpoint directory, in eval mode.

    ``dtype`` defaults to float32: the project's CPUs have AVX2 only, where bf16 is emulated and
    slow. Any failure — a bad path, missing files, or an error inside transformers — is a
    ``ModelLoadError`` naming ``path``.
    """
    p = check_checkpoint(path)
    torch_dtype = _dtype(dtype)
    _force_offline()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # transformers raises OSError, ValueError, KeyError, … here
        raise ModelLoadError(f"{p}: cannot load the tokenizer ({type(e).__name__}: {e})") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True, dtype=torch_dtype)
        model.to(device)
    except Exception as e:
        raise ModelLoadError(f"{p}: cannot load the model ({type(e).__name__}: {e})") from None
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise ModelLoadError(
            f"{p}: the tokenizer has {len(tokenizer)} tokens but the model embeds only {rows}; "
            "they do not belong together"
        )
    model.eval()
    return model, tokenizer
