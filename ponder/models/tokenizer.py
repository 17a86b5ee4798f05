"""Local tokenizers: a byte-level BPE trained on the task corpus, with the reasoning tags as tokens.

``train_tokenizer(texts)`` returns a ``PreTrainedTokenizerFast`` that transformers, TRL and vLLM
load unchanged from ``save_pretrained`` output. Choices, and why:

* **Byte-level BPE** (GPT-2 style, no prefix space): every string encodes and decodes back
  exactly, whatever its characters — there is no unknown token.
* **Digits one per token** (``split_digits=True``): ``1234`` is ``1 2 3 4``, so column
  arithmetic is the same operation at every position. Tiny models learn addition far faster
  this way than with merged multi-digit tokens.
* **Tags are ordinary tokens**: ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` are each one
  token, added with ``add_tokens`` (not as special tokens) because TRL decodes completions with
  ``skip_special_tokens=True``, which would erase special tokens before the reward reads them.
  They are removed from the BPE training text so no merges are wasted on their pieces.
* **Special tokens**: ``<|endoftext|>`` is both BOS and EOS (GPT-2 convention; nothing prepends it
  automatically, so the chat template and ponder's plain layout (``ponder.format.render``) give
  the same ids). Padding uses a separate ``<|pad|>``: TRL's SFT and GRPO mask padding by
  attention/completion masks and would cope with pad == eos, but transformers'
  ``DataCollatorForLanguageModeling`` sets ``labels[input_ids == pad_id] = -100``, which with
  pad == eos silently stops a model from ever learning to end its answer. One extra row is cheap.
* **Left padding**, passed to the constructor (an attribute set afterwards is not saved), as
  decoder-only batched generation needs.
* **Chat template**: the R1 plain layout, ``SYSTEM\\nUser: Q\\nAssistant: `` — identical to
  ``ponder.format.render(q, None, …)`` — with assistant turns rendered as
  ``content + eos`` inside ``{% generation %}`` so TRL's ``assistant_only_loss`` works.

Size: ``vocab_size`` is the total (256 bytes + merges + 2 special + 4 tags); a corpus too small
to support that many merges gives a smaller vocabulary (``len(tokenizer) <= vocab_size``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ponder.format import TAGS
from ponder.format.render import PLAIN_TEMPLATE

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)
TAG_TOKENS = TAGS  # ("<think>", "</think>", "<answer>", "</answer>")
_BYTES = 256
MIN_VOCAB = _BYTES + len(SPECIAL_TOKENS) + len(TAG_TOKENS)

# The chat template of ponder's tokenizers is ponder's plain layout (its one definition lives in
# ponder.format.render): a tokenizer and no tokenizer render the same prompt.
CHAT_TEMPLATE = PLAIN_TEMPLATE

_RESERVED = re.compile("|".join(re.escape(t) for t in (*TAG_TOKENS, *SPECIAL_TOKENS)))


class TokenizerError(ValueError):
    """The corpus or the options cannot produce a tokenizer; the message says why."""


def _pieces(texts: Iterable[str]) -> Iterator[str]:
    """The corpus with tag and special strings cut out (they are added whole, never merged)."""
    n = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TokenizerError(f"corpus item {i} is a {type(text).__name__}, not a str")
        n += 1
        for piece in _RESERVED.split(text):
            if piece:
                yield piece
    if n == 0:
        raise TokenizerError("the corpus is empty: train_tokenizer needs at least one text")


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 512,
    out_dir: str | os.PathLike | None = None,
    *,
    split_digits: bool = True,
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` and wrap it for transformers.

    texts: the training corpus (prompts and completions of the tasks to learn).
    vocab_size: total vocabulary size, including the 256 byte tokens, the two special tokens
        and the four tags (so at least ``MIN_VOCAB`` = 262). A small corpus may give fewer.
    out_dir: when given, the tokenizer is saved there with ``save_pretrained``.
    split_digits: one token per digit (recommended for arithmetic).
    model_max_length: the longest sequence the tokenizer reports as supported (the models of
        ``ponder.models.build`` default to 1024 positions).
    """
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < MIN_VOCAB:
        raise TokenizerError(
            f"vocab_size must be an int >= {MIN_VOCAB} (256 bytes + 2 special tokens + 4 tags), "
            f"got {vocab_size!r}"
        )
    if isinstance(texts, str):
        raise TokenizerError("texts must be an iterable of strings, not one string")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if split_digits
        else byte_level
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TAG_TOKENS),
        special_tokens=list(SPECIAL_TOKENS),
        # all 256 bytes, even those absent from the corpus: nothing is ever unknown
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_pieces(texts), trainer)

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,  # " ." must decode as " .", not "."
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
    )
    hf.add_tokens(list(TAG_TOKENS))
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        hf.save_pretrained(str(out_dir))
    return hf
