"""A KV cache keyed by token prefix, for ``LocalEngine``'s prefill (vLLM-style automatic prefix
caching on CPU tensors).

Layout. A prompt's tokens are cut into blocks of ``block`` tokens (default 16). Block j of a
prompt is stored under the key ``(id of block j-1, its tokens)``, so a key names the block *and
everything before it* exactly (no hashing collisions: the parent's id is a counter, the tokens a
tuple). Each block holds the keys and values the model computed for its tokens at their
positions: one float tensor ``[layers, 2, KV, block, hd]`` (k and v; keys as the model caches
them, i.e. already rotated by RoPE at their absolute positions, which is why only *prefixes* --
the same tokens at the same positions -- can be reused). Only full blocks are stored; a prompt's
last partial block is always prefilled.

Lookup walks a prompt's blocks from the start and stops at the first missing one: the hit is the
longest cached block-aligned prefix. At least one prompt token is always prefilled (its logits
start decoding), so a prompt that is entirely cached reuses ``len - 1`` tokens, the last block
sliced. ``LocalEngine`` then lays the hit out as a left-padded past (``assemble``: [P, KV, C, hd]
per layer, C the longest hit in the batch), prefills only the suffixes on top of it, and stores
the new full blocks of every prompt (``store``).

Limits. Memory is bounded by ``budget`` bytes of block tensors (LRU eviction of whole blocks; a
lookup touches a prompt's blocks deepest first, so a block is never older than its descendants
and eviction removes leaves before their ancestors). The KV depends on the weights: ``clear`` on
every weight change (``LocalEngine.refresh_weights``, and a parameter version check per call).
Only models whose prefill cache is a transformers ``DynamicCache`` of full-attention layers with
one shape are cached (sliding windows and hybrid caches are not: a window drops old columns).
Generated tokens are not stored (a prompt that repeats an earlier completion re-encodes it).
Reused KV equals recomputed KV up to float rounding (the suffix attends over the cached columns
in a different kernel call), so greedy output matches the uncached engine except at near ties.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

import torch

DEFAULT_BUDGET = 256 * 2**20  # bytes: ~5.5k tokens of SmolLM2-135M (46 KiB per token), ~2M of the tiny test model


@dataclass
class _Block:
    id: int
    kv: torch.Tensor  # [layers, 2, KV, block, hd]


class PrefixCache:
    """Blocks of prompt KV by token prefix, LRU within a byte budget (see module docstring)."""

    def __init__(self, budget: int = DEFAULT_BUDGET, block: int = 16):
        if block < 1:
            raise ValueError(f"prefix cache block must be >= 1 token, got {block}")
        self.budget, self.block = budget, block
        self._blocks: OrderedDict[tuple[int, tuple[int, ...]], _Block] = OrderedDict()
        self._ids = itertools.count(1)  # 0 is the empty prefix
        self.bytes = 0
        # counters: prompts looked up / reusing >= 1 token, prompt tokens reused / prefilled,
        # blocks evicted, clears after a weight change
        self.lookups = self.hits = self.tokens_reused = self.tokens_prefilled = 0
        self.evictions = self.invalidations = 0

    def _chain(self, tokens: list[int]) -> list[tuple[tuple[int, tuple[int, ...]], _Block]]:
        """The cached blocks of ``tokens``' longest cached block-aligned prefix, in order."""
        out, parent, b = [], 0, self.block
        for j in range(len(tokens) // b):
            key = (parent, tuple(tokens[j * b : (j + 1) * b]))
            blk = self._blocks.get(key)
            if blk is None:
                break
            out.append((key, blk))
            parent = blk.id
        return out

    def lookup(self, tokens: list[int]) -> tuple[int, list[torch.Tensor]]:
        """(c, blocks): the first c tokens of ``tokens`` are cached (c <= len - 1), their KV the
        concatenation of ``blocks`` cut to c columns. Counts the lookup."""
        chain = self._chain(tokens)
        for key, _ in reversed(chain):  # deepest first: ancestors end up the most recent
            self._blocks.move_to_end(key)
        c = min(len(chain) * self.block, len(tokens) - 1)
        blocks = [blk.kv for _, blk in chain[: -(-c // self.block)]] if c > 0 else []
        self.lookups += 1
        self.hits += c > 0
        self.tokens_reused += c
        self.tokens_prefilled += len(tokens) - c
        return c, blocks

    def store(self, tokens: list[int], kv: torch.Tensor) -> None:
        """Remember the full blocks of ``tokens``; ``kv``: [layers, 2, KV, len(tokens), hd], the
        prompt's KV in token order (copied: the caller's tensor may be a view of a batch)."""
        parent, b, path = 0, self.block, []
        for j in range(len(tokens) // b):
            key = (parent, tuple(tokens[j * b : (j + 1) * b]))
            blk = self._blocks.get(key)
            if blk is None:
                blk = _Block(next(self._ids), kv[:, :, :, j * b : (j + 1) * b].clone())
                self._blocks[key] = blk
                self.bytes += blk.kv.numel() * blk.kv.element_size()
            path.append(key)
            parent = blk.id
        for key in reversed(path):
            self._blocks.move_to_end(key)
        while self.bytes > self.budget and self._blocks:
            _, old = self._blocks.popitem(last=False)
            self.bytes -= old.kv.numel() * old.kv.element_size()
            self.evictions += 1

    def clear(self) -> None:
        """Forget every block (the weights changed)."""
        if self._blocks:
            self.invalidations += 1
        self._blocks.clear()
        self.bytes = 0

    def stats(self) -> dict[str, int]:
        """The counters, plus the blocks and bytes held now and the budget."""
        return {"lookups": self.lookups, "hits": self.hits, "tokens_reused": self.tokens_reused,
                "tokens_prefilled": self.tokens_prefilled, "blocks": len(self._blocks), "bytes": self.bytes,
                "budget_bytes": self.budget, "evictions": self.evictions, "invalidations": self.invalidations}


def assemble(hits: list[tuple[int, list[torch.Tensor]]]) -> tuple[int, torch.Tensor | None]:
    """The batch's cached past: (C, kv [layers, 2, P, KV, C, hd]), prompt i's c_i cached tokens
    right-aligned in columns [C - c_i, C) (zeros elsewhere, masked). (0, None) when nothing hit."""
    C = max((c for c, _ in hits), default=0)
    if C == 0:
        return 0, None
    ref = next(blocks[0] for c, blocks in hits if c)
    L2, _, KV, _, hd = ref.shape
    out = ref.new_zeros(L2, 2, len(hits), KV, C, hd)
    for i, (c, blocks) in enumerate(hits):
        if c:
            out[:, :, i, :, C - c :] = torch.cat(blocks, dim=3)[:, :, :, :c]
    return C, out
