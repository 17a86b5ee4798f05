"""Local tokenizers and tiny causal LMs: train a tokenizer, build a model, save and load checkpoints.

Nothing here ever downloads: tokenizers are trained on the task corpus, models are initialised
from a size preset, and ``load`` only opens local checkpoint directories (or LoRA adapter
directories, merged onto their local base: ``ponder.models.lora``).
"""

import os

# Before transformers / huggingface_hub are imported (they read it once, at import): ponder never
# talks to a model hub. ``load`` additionally forces offline mode if they were imported earlier.
os.environ["HF_HUB_OFFLINE"] = "1"

from ponder.models.build import (  # noqa: E402
    NOMINAL_PARAMS,
    PRESETS,
    ModelConfig,
    ModelLoadError,
    build_model,
    count_params,
    resolve_config,
    save,
)

# ``load`` and ``check_checkpoint`` accept a LoRA adapter directory too (merged onto its base)
from ponder.models.lora import LoraSpec, check_checkpoint, is_adapter, load, parse_lora  # noqa: E402
from ponder.models.tokenizer import (  # noqa: E402
    CHAT_TEMPLATE,
    EOS_TOKEN,
    PAD_TOKEN,
    TAG_TOKENS,
    TokenizerError,
    train_tokenizer,
)

__all__ = [
    "CHAT_TEMPLATE", "EOS_TOKEN", "PAD_TOKEN", "TAG_TOKENS", "TokenizerError", "train_tokenizer",
    "NOMINAL_PARAMS", "PRESETS", "ModelConfig", "ModelLoadError", "build_model", "check_checkpoint",
    "count_params", "load", "resolve_config", "save", "LoraSpec", "is_adapter", "parse_lora",
]
