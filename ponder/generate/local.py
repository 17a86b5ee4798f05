"""The local engine: fast batched token generation for transformers causal LMs on CPU.

``LocalEngine(model, tokenizer).generate(prompts, n, sampling, budget)``; the interface is in
``types.py``, the design and its measurements in docs/generation.md. One call:

1. **Prefills once per prompt**: the P distinct prompts, left-padded to length L, go through the
   model's own forward in one batch (position ids count real tokens only, as in HF generate);
   the KV cache is then expanded to the B = P·n decoding rows.
2. **Decodes all rows together**, one token each per step. Left padding keeps every row's newest
   token in the same cache column t; a mask hides pad columns and taken-back tokens.
3. **Stops rows one by one** (EOS, stop string, token limit) and drops finished rows from the
   batch and cache once an eighth of it is finished, or every 32 steps.

Decode paths: ``fast``, a hand-written step for Llama-family weights (``llama``, ``qwen2``,
``mistral`` without sliding window) with fused q|k|v and gate|up matmuls, RoPE as one complex
multiply and a preallocated static cache, which removes the HF forward's Python overhead; and
``hf``, the model's own forward, for every other model (and non-float32 weights, sliding
windows, dynamic RoPE). For B >= 2 the fast step's logits equal the HF forward's bit for bit,
so greedy output equals ``model.generate(do_sample=False)``; a single row uses a faster weight
layout whose logits differ by float rounding only (a near-exact tie could break differently).

**Prefix cache** (``prefix_cache`` bytes, on by default): the KV of every prompt's full 16-token
blocks is kept (``ponder.generate.prefix_cache``); a prompt sharing a block-aligned prefix with
an earlier one prefills only the rest on top of the cached columns. Step 1's layout is then
[cached | suffix] per row, each part left-padded: L = C + S columns (C the longest hit, S the
longest suffix), the mask hiding both gaps.

Thinking budgets act per row at token level, on the token ids the tokenizer gives ``<think>``
and ``</think>`` -- one token each in reasoning models and ponder's tokenizers, several in
others (three in SmolLM2's): the sequences are matched whole, and the budget counts the tokens
the model writes inside the think block, not the tags. A tag the model spells with other tokens
still splits reasoning from answer (done on the text) but does not trigger budget logic.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import torch

from ponder.format import THINK_CLOSE, THINK_OPEN, ReasoningSplitter, decide_thinking, ends_in_think, tail_loop
from ponder.format.parse import held_prefix
from ponder.generate.decode import FastLlama, HFRunner, ThreadTuner, forward, forward_args, sample, unwrap_peft
from ponder.generate.prefix_cache import DEFAULT_BUDGET, PrefixCache, assemble
from ponder.generate.types import (
    Budget,
    Capabilities,
    Completion,
    GenerationError,
    SamplingParams,
    check_generate,
    effort_table_for,
    make_completion,
)

log = logging.getLogger(__name__)

PRE, THINK, ANSWER = 0, 1, 2  # a row's phase: before any <think>, inside it, after </think>


class _Row:
    """The state of one completion while it is generated."""

    __slots__ = ("plen", "ids", "lps", "cols", "phase", "think_from", "reason_end", "forced", "waits",
                 "forced_close", "finish", "text", "off", "read", "loop_breaks", "loop_from")

    def __init__(self, plen: int, phase: int):
        self.plen = plen  # prompt tokens
        self.ids: list[int] = []  # generated tokens
        self.lps: list[float] = []  # their log-probs
        self.cols: list[int] = []  # cache column of each generated token
        self.phase = phase
        self.think_from = 0  # len(ids) when the think block opened (the budget counts from here)
        self.reason_end = 0  # len(ids) when </think> completed
        self.forced: deque[tuple[int, bool]] = deque()  # tokens to emit next: (id, closes think)
        self.waits = 0
        self.forced_close = False
        self.loop_breaks = 0
        self.loop_from = 0  # len(ids) after the last broken loop (the guard looks after it)
        self.finish: str | None = None
        self.text, self.off, self.read = "", 0, 0  # incremental detokenisation (stop strings)


@dataclass(frozen=True)
class _Plan:
    """What one ``generate`` call decodes under: sampling, budget and their token forms."""

    sp: SamplingParams
    budget: Budget
    tb: int | None  # thinking budget in tokens (None: none)
    forcing: bool  # budget forcing is on (and the model has a </think> to take back)
    close_q: list[tuple[int, bool]]  # the forced close: (token id, completes </think>)
    wait_ids: list[int]  # budget forcing's "Wait"
    eos: frozenset[int]  # tokens that end a row (none with ignore_eos)


class LocalEngine:
    """Batched generation with a transformers causal LM on this machine (see module docstring).

    ``fast``: None picks the fast Llama step when the model supports it, False forces the HF
    forward, True requires the fast step. ``effort_table`` maps effort levels to thinking
    budgets (default: the model config's ``ponder_effort_budgets``, else
    ``DEFAULT_EFFORT_BUDGETS``). ``num_threads``: torch threads while generating; by default one
    thread when a step is too small to share (rows × parameters < 2e7), else torch's setting, but
    decoding drops to one thread whenever that is measured to be faster (``ThreadTuner``);
    ``threads_used`` is the count the last call settled on.
    ``add_special_tokens``: passed to the tokenizer for prompts (e.g. a BOS token).
    ``prefix_cache``: the prefix cache's byte budget (0 or None: off); ``prefix_block`` its block
    size in tokens; ``prefix_cache_stats()`` its counters (None when off, ``prefix_cache_reason``
    then says why).
    ``thinking``: the thinking mode (auto|on|off, ``ponder.format.decide_thinking``); the decision
    is ``self.thinking``. ``quantize``: "int8" (weight-only) or "int8-dynamic" decodes on int8
    weights (``FastLlama``; fast path only, inference only: the output is close to, not equal to,
    float32's). ``path`` says which decode path is used and ``path_reason`` why.
    """

    capabilities = Capabilities(local=True, token_level=True, streaming=True, concurrent=False, logprobs=True,
                                continuous=True, stop_hook=True)
    budget_honoured = True  # budgets act at token level

    def __init__(self, model, tokenizer, device: str = "cpu", *, fast: bool | None = None,
                 effort_table: Mapping[str, int] | None = None, num_threads: int | None = None,
                 add_special_tokens: bool = True, thinking: str = "auto", name: str | None = None,
                 prefix_cache: int | None = DEFAULT_BUDGET, prefix_block: int = 16, quantize: str | None = None):
        self.model, self.tokenizer, self.device = model.to(device), tokenizer, torch.device(device)
        self.add_special_tokens = add_special_tokens
        self.num_threads = num_threads
        self.n_params = sum(p.numel() for p in model.parameters())
        cfg = model.config
        self.max_positions = getattr(cfg, "max_position_embeddings", None)
        self.effort_table = dict(effort_table or getattr(cfg, "ponder_effort_budgets", None)
                                 or effort_table_for(self.max_positions, self.n_params))
        self.thinking = decide_thinking(thinking, tokenizer, cfg)
        self.name = name or getattr(cfg, "_name_or_path", "") or cfg.model_type
        why = FastLlama.unsupported(model) if self.device.type == "cpu" else "the fast step is CPU-only"
        if fast and why:
            raise GenerationError(f"fast=True but {why}")
        if fast is False:
            why = "fast=False was requested"
        if quantize is not None and quantize not in FastLlama.QUANTIZE:
            raise GenerationError(f"quantize must be one of {', '.join(FastLlama.QUANTIZE)} (or none), got {quantize!r}")
        if quantize and why:
            raise GenerationError(f"quantize={quantize!r} runs in the fast decode step, which this model cannot use: {why}")
        self.quantize = quantize
        self.runner = HFRunner(model) if why else FastLlama(model, quantize)
        self.path = self.runner.name
        self.path_reason = why or (f"{model.config.model_type} weights fused into the fast decode step"
                                   + (f", {quantize} weight-only matmuls" if quantize else ""))
        log.info("LocalEngine decode path: %s (%s)", self.path, self.path_reason)
        gc = getattr(model, "generation_config", None)
        eos = getattr(gc, "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = frozenset(eos)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or [0])[0]
        self.open_ids, self.close_ids = self._enc(THINK_OPEN), self._enc(THINK_CLOSE)
        self.prefix_cache: PrefixCache | None = None
        self.prefix_cache_reason = "prefix_cache=0 was requested"
        if prefix_cache:
            if "position_ids" in forward_args(type(unwrap_peft(model))):
                self.prefix_cache, self.prefix_cache_reason = PrefixCache(prefix_cache, prefix_block), ""
            else:  # positions would follow cache columns, not tokens, and the columns have gaps
                self.prefix_cache_reason = "the model's forward takes no position_ids"
        self._weights = self._signature()

    @classmethod
    def from_path(cls, path: str | os.PathLike, **kw) -> "LocalEngine":
        """Load a local Hugging Face checkpoint directory, or a LoRA adapter directory merged onto
        its base (``ponder.models.load``; never contacts a hub)."""
        from ponder.models import ModelLoadError, load

        p = Path(path)
        if not p.is_dir():
            raise GenerationError(f"model path {str(p)!r} is not a directory")
        try:
            model, tok = load(p)
        except ModelLoadError as e:
            raise GenerationError(str(e)) from None
        kw.setdefault("name", str(p))
        return cls(model.eval(), tok, **kw)

    def _enc(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        """Token ids -> text, special tokens kept (they are part of what the model wrote)."""
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    _decode = decode  # the hot paths below call it often

    def count_tokens(self, text: str) -> int:
        """Tokens of a rendered prompt, as ``generate`` encodes it."""
        return len(self.tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"])

    def refresh_weights(self) -> None:
        """Re-read the weights into the fast step's fused copies and drop the prefix cache's KV
        (training changes the weights in place, and an optimizer such as fused AdamW does not bump
        the tensors' versions, so only this call can tell)."""
        if isinstance(self.runner, FastLlama):
            self.runner.load()
        if self.prefix_cache is not None:
            self.prefix_cache.clear()
        self._weights = self._signature()

    def _signature(self) -> tuple:
        """Identity and in-place version of every parameter (changes on a non-fused update)."""
        return tuple((id(p), p._version) for p in self.model.parameters())

    def prefix_cache_stats(self) -> dict[str, int] | None:
        """The prefix cache's counters (``PrefixCache.stats``), or None when it is off."""
        return self.prefix_cache.stats() if self.prefix_cache is not None else None

    def generate(self, prompts: list[str], n: int = 1, sampling: SamplingParams | None = None,
                 budget: Budget | None = None, on_token: Callable[[int, list[int]], bool | None] | None = None,
                 stop_row: Callable[[int, list[float]], bool] | None = None) -> list[list[Completion]]:
        """``n`` completions for each prompt, grouped by prompt (see ``ponder.generate.types``).
        ``on_token(row, ids)`` (streaming): after each step, per row (prompt_i * n + sample_j) that
        emitted, with its ids so far (read-only; forcing may take back pieces of a split </think>).
        Returning True stops that row now (finish "length"; the server frees a gone client's rows).
        ``stop_row(row, logprobs)``: the same after each token with the row's log-probs so far;
        True stops the row (finish "length": confidence-based early stopping, ``deepconf``)."""
        prompts, sampling, budget = check_generate(prompts, n, sampling, budget)
        if not prompts:
            return []
        enc = self._encode_all(prompts)
        return self._generate(enc, [ends_in_think(p) for p in prompts], n, sampling, budget, on_token, stop_row)

    def _generate(self, enc: list[list[int]], pre: list[bool], n: int, sampling: SamplingParams, budget: Budget,
                  on_token, stop_row) -> list[list[Completion]]:
        """The grouped completions of checked, encoded prompts (``pre``: each ends in <think>)."""
        k = self.num_threads or (1 if len(enc) * n * self.n_params < 2e7 else torch.get_num_threads())
        with torch.inference_mode(), ThreadTuner(k, tune=self.num_threads is None) as tuner:
            rows = self._run(enc, pre, n, sampling, budget, tuner, on_token, stop_row)
        self.threads_used = tuner.best
        return self._grouped(rows, pre, n, sampling.stop)

    def _encode_all(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of each prompt; one that encodes to nothing is an error naming it."""
        enc = self.tokenizer(prompts, add_special_tokens=self.add_special_tokens)["input_ids"]
        for i, e in enumerate(enc):
            if not e:
                raise GenerationError(f"prompts[{i}] encodes to no tokens; a prompt needs at least one")
        return enc

    def _completion(self, r: _Row, prefilled: bool, stop) -> Completion:
        """The Completion of a finished row."""
        return make_completion(r.ids, self._decode, r.finish, r.lps, prefilled, stop, self.eos_ids,
                               forced_close=r.forced_close, waits=r.waits, loop_breaks=r.loop_breaks)

    def _grouped(self, rows: list[_Row], prefilled: list[bool], n: int, stop) -> list[list[Completion]]:
        """The completions of P·n finished rows, grouped by prompt (``prefilled``: one per prompt)."""
        return [[self._completion(r, pre, stop) for r in rows[i * n : (i + 1) * n]] for i, pre in enumerate(prefilled)]

    def _run(self, enc: list[list[int]], prefilled: list[bool], n: int, sp: SamplingParams,
             budget: Budget, tuner: ThreadTuner, on_token=None, stop_row=None) -> list[_Row]:
        """Prefill, then decode until every row is finished. Returns the B = P·n rows, grouped."""
        P = len(enc)
        rows_of = torch.arange(P).repeat_interleave(n)  # [B] prompt of each row, grouped
        plan = self._plan(sp, budget)
        tb, forcing, close_seq, eos = plan.tb, plan.forcing, plan.close_q, plan.eos
        # no per-row phase, loop or text tracking
        simple = tb is None and not forcing and not sp.stop and budget.loop_guard is None
        m = len(self.close_ids)
        # the most cache columns a row can use: its tokens (a thinking budget adds the reasoning,
        # the forced close and a second max_tokens of answer) plus columns of taken-back tokens
        max_gen = sp.max_tokens + budget.max_waits * (m - 1 if forcing else 0)
        if tb is not None:
            max_gen += tb + len(close_seq) + sp.max_tokens
        rows = [_Row(len(enc[p]), THINK if prefilled[p] else PRE) for p in rows_of.tolist()]
        for r in rows:
            if tb == 0 and r.phase == THINK:  # no thinking at all: close the pre-filled block now
                r.forced.extend(plan.close_q)
                r.forced_close = True

        logits, past, valid = self._prefill(enc)
        L = valid.shape[1]
        logits = logits[rows_of]  # [B, V]
        runner = self.runner
        runner.start(past, rows_of, valid, L + max_gen + 1)
        gen = torch.Generator().manual_seed(sp.seed) if sp.seed is not None else None
        active = list(range(len(rows)))  # batch position -> row index
        since = 0
        while True:
            chosen = sample(logits, sp, gen)  # [b]
            toks = chosen.tolist()
            col = runner.t  # the cache column these tokens will occupy
            changed, emitted, dead = False, [], 0
            for j, ri in enumerate(active):
                r = rows[ri]
                if r.finish is not None:
                    dead += 1
                    continue
                emitted.append(j)
                if simple:
                    tok = toks[j]
                    r.ids.append(tok)
                    if tok in eos:
                        r.finish = "eos"
                    elif len(r.ids) >= sp.max_tokens:
                        r.finish = "length"
                    continue
                tok = self._advance(r, j, toks[j], col, plan)
                if tok != toks[j]:
                    toks[j], changed = tok, True
            if emitted:  # log p(token) under the raw model distribution
                picked = torch.tensor(toks) if changed else chosen
                lp = torch.log_softmax(logits, -1).gather(1, picked[:, None]).squeeze(1).tolist()
                for j in emitted:
                    rows[active[j]].lps.append(lp[j])
                    if (on_token is not None and on_token(active[j], rows[active[j]].ids) is True
                            and rows[active[j]].finish is None):
                        rows[active[j]].finish = "length"  # the caller stopped the row (its client left)
                    if (stop_row is not None and rows[active[j]].finish is None
                            and stop_row(active[j], rows[active[j]].lps)):
                        rows[active[j]].finish = "length"  # the caller stopped the row (low confidence)
            dead += sum(1 for j in emitted if rows[active[j]].finish is not None)
            if dead == len(active):
                return rows
            since += 1
            if dead and (dead * 8 >= len(active) or since >= 32):  # compact: drop finished rows
                keep = [j for j, ri in enumerate(active) if rows[ri].finish is None]
                runner.select(torch.tensor(keep))
                active, toks, since = [active[j] for j in keep], [toks[j] for j in keep], 0
            pos = [rows[ri].plen + len(rows[ri].ids) - 1 for ri in active]
            tuner.before()
            t0 = time.perf_counter()
            logits = runner.step(torch.tensor(toks), torch.tensor(pos))
            tuner.after(time.perf_counter() - t0, len(active))

    def _prefill(self, enc: list[list[int]]):
        """Prefill P prompts with the HF forward -> (logits [P, V], cache, valid [P, L]).

        Without prefix-cache hits: ids [P, L] left-padded, L the longest prompt. With hits: C cached
        columns (``assemble``, prompt i's c_i right-aligned) then S suffix columns (prompt i's
        tokens after c_i, left-padded), L = C + S; only the suffixes go through the model. Position
        ids count real tokens only, as in HF generate, so a suffix continues at position c_i."""
        pc, P = self.prefix_cache, len(enc)
        if pc is not None and self._signature() != self._weights:  # an in-place update that bumped versions
            pc.clear()
            self._weights = self._signature()
        hits = [pc.lookup(e) for e in enc] if pc is not None else [(0, [])] * P
        C, cached = assemble(hits)
        S = max(len(e) - c for e, (c, _) in zip(enc, hits))
        ids = torch.full((P, S), self.pad_id, dtype=torch.long)  # [P, S] left-padded suffixes
        valid = torch.zeros(P, C + S, dtype=torch.bool)
        for i, (e, (c, _)) in enumerate(zip(enc, hits)):
            ids[i, S - (len(e) - c):] = torch.tensor(e[c:])
            valid[i, C - c : C] = True
            valid[i, C + S - (len(e) - c):] = True
        past = None
        if cached is not None:
            from transformers import DynamicCache

            past = DynamicCache(ddp_cache_data=[(kv[0], kv[1]) for kv in cached])  # [P, KV, C, hd] each
        pos = (valid.long().cumsum(-1) - 1).clamp(min=0)[:, C:]
        logits, past = forward(self.model, ids, valid.long(), pos, past)
        if pc is not None:
            self._remember(enc, hits, past, valid)
        return logits, past, valid

    def _remember(self, enc, hits, past, valid) -> None:
        """Store the new full blocks of each prompt's KV (columns where ``valid``) in the cache."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        layers = getattr(past, "layers", None)
        if (type(past) is not DynamicCache or not layers or any(type(x) is not DynamicLayer for x in layers)
                or len({tuple(x.keys.shape) for x in layers}) != 1):
            # a sliding window or hybrid cache: its columns are not one token each, or not all kept
            self.prefix_cache, self.prefix_cache_reason = None, f"the model's cache ({type(past).__name__}) " \
                "is not one full-attention DynamicCache"
            return
        b = self.prefix_cache.block
        for i, (e, (c, _)) in enumerate(zip(enc, hits)):
            if len(e) // b > c // b:  # a full block not cached yet
                cols = valid[i].nonzero().squeeze(1)
                kv = torch.stack([torch.stack([x.keys[i][:, cols], x.values[i][:, cols]]) for x in layers])
                self.prefix_cache.store(e, kv)  # [layers, 2, KV, len(e), hd]

    def _plan(self, sp: SamplingParams, budget: Budget) -> "_Plan":
        tb = budget.resolve(self.effort_table)
        close_seq = self._enc(budget.close_text)
        c = next((j for j in range(1, len(close_seq)) if THINK_CLOSE in self._decode(close_seq[:j])),
                 len(close_seq))
        return _Plan(sp=sp, budget=budget, tb=tb, forcing=budget.forcing and bool(self.close_ids),
                     close_q=[(tok, j == c - 1) for j, tok in enumerate(close_seq)],  # </think> ends at the c-th
                     wait_ids=self._enc(budget.wait_token), eos=frozenset() if sp.ignore_eos else self.eos_ids)

    def _advance(self, r: _Row, j: int, tok: int, col: int, plan: "_Plan") -> int:
        """Emit one token for row ``r`` (batch position j): apply forced tokens, budget forcing,
        the thinking budget and the stop conditions. Returns the token actually emitted."""
        sp, budget, tb, eos = plan.sp, plan.budget, plan.tb, plan.eos
        close, m = self.close_ids, len(self.close_ids)
        closes = forced = False
        if r.forced:
            (tok, closes), forced = r.forced.popleft(), True
        elif (plan.forcing and r.phase == THINK and r.waits < budget.max_waits and tok == close[-1]
              and r.ids[len(r.ids) - m + 1 :] == close[:-1]
              and len(r.ids) - (m - 1) - r.think_from < budget.min_thinking):
            # s1 budget forcing: the model closes its reasoning too early. Take back the tag's
            # earlier pieces (their cache columns are masked) and emit "Wait" instead.
            for _ in range(m - 1):
                self.runner.hide(j, r.cols.pop())
                r.ids.pop()
                r.lps.pop()
            if m > 1:
                r.text, r.off, r.read = self._decode(r.ids), max(0, len(r.ids) - 6), len(r.ids)
            r.waits += 1
            r.forced.extend((w, False) for w in plan.wait_ids)
            (tok, closes), forced = r.forced.popleft(), True
        r.ids.append(tok)
        r.cols.append(col)
        if r.phase == THINK and (closes or r.ids[-m:] == close):
            r.phase, r.reason_end = ANSWER, len(r.ids)
        elif r.phase == PRE and self.open_ids and r.ids[-len(self.open_ids):] == self.open_ids:
            r.phase, r.think_from = THINK, len(r.ids)
        if (tb is not None and r.phase == THINK and not r.forced_close and len(r.ids) - r.think_from >= tb
                and not any(closes for _, closes in r.forced)):  # (a close the loop guard queued finishes)
            r.forced = deque(plan.close_q)  # the model wrote its budget: close (the tags are not counted)
            r.forced_close = True
        if budget.loop_guard and not forced and not r.forced and tok not in eos:
            self._guard(r, plan)
        if not forced and tok in eos:
            r.finish = "eos"
        elif tb is None and len(r.ids) >= sp.max_tokens:
            r.finish = "length"
        elif tb is not None and r.phase != THINK and len(r.ids) - r.reason_end >= sp.max_tokens:
            r.finish = "length"  # with a thinking budget, max_tokens bounds the answer
        if sp.stop and r.finish is None:
            new = self._decode(r.ids[r.off :])
            old_len = len(self._decode(r.ids[r.off : r.read]))
            if len(new) > old_len and not new.endswith("\ufffd"):
                delta = new[old_len:]
                r.text += delta
                r.off, r.read = r.read, len(r.ids)
                tail = r.text[-(len(delta) + max(map(len, sp.stop)) - 1) :]
                if any(s in tail for s in sp.stop):
                    r.finish = "stop"
        return tok

    def _guard(self, r: _Row, plan: "_Plan") -> None:
        """The loop breaker: is the row's current section (think block or answer) stuck in a cycle?"""
        budget = plan.budget
        since = max(r.loop_from, r.think_from if r.phase == THINK else r.reason_end)
        if tail_loop(r.ids, budget.loop_span, budget.loop_repeats, start=since) is None:
            return
        r.loop_breaks += 1
        if budget.loop_guard == "close" and r.phase == THINK:
            r.forced = deque(plan.close_q)  # answer now, from what the reasoning reached
            r.loop_from = len(r.ids) + len(plan.close_q)
        else:
            r.finish = "stop"

    def stream(self, prompt: str, sampling: SamplingParams | None = None,
               budget: Budget | None = None) -> Iterator[tuple[str, object]]:
        """Stream one completion: ``("reasoning", delta)``, ``("answer", delta)``, then ``("done",
        Completion)``. The engine generates in a worker thread whose ``on_token`` hook feeds the
        text to ``ponder.format.ReasoningSplitter``, so the deltas concatenate exactly to the
        completion's ``reasoning``/``answer``. Closing the generator early stops the row."""
        if not isinstance(prompt, str):
            raise GenerationError(f"a local model's prompt is a rendered string, got {type(prompt).__name__}")
        q: queue.Queue = queue.Queue()
        state = {"text": ""}  # the text fed to the splitter so far: always a prefix of the final text
        gone = threading.Event()  # the consumer stopped reading (Ctrl-C, closed generator)
        stops = tuple((sampling or SamplingParams()).stop)
        stop_hold = max(map(len, stops), default=1) - 1

        def on_token(row: int, ids: list[int]) -> bool | None:
            if gone.is_set():
                return True  # stop the row: the engine returns at once, ready for the next call
            body = ids[:-1] if ids and ids[-1] in self.eos_ids else ids
            text = self.decode(body)
            if text.endswith("\ufffd"):
                return None  # an incomplete UTF-8 piece: wait for the next token
            cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
            if cuts:  # the completion ends before its stop string
                text = text[: min(cuts)]
            else:  # text that may still become a stop string, or a </think> budget forcing
                # takes back, is not final yet
                text = text[: len(text) - max(stop_hold, held_prefix(text, THINK_CLOSE))]
            if not text.startswith(state["text"]):
                return None
            delta, state["text"] = text[len(state["text"]):], text
            if delta:
                q.put(("delta", delta))
            return None

        def work() -> None:
            try:
                q.put(("result", self.generate([prompt], 1, sampling, budget, on_token=on_token)[0][0]))
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
                q.put(("error", e))

        t = threading.Thread(target=work, daemon=True)
        t.start()
        split = ReasoningSplitter(ends_in_think(prompt))
        try:
            while True:
                kind, item = q.get()
                if kind == "delta":
                    yield from split.feed(item)
                elif kind == "error":
                    raise item
                else:
                    # the stream ran up to the last token; the completion's text ends before a stop
                    # string or EOS: split what the completion holds beyond the streamed text
                    rest = item.text[len(state["text"]):] if item.text.startswith(state["text"]) else ""
                    yield from split.feed(rest)
                    yield from split.finish()
                    yield "done", item
                    return
        finally:
            gone.set()  # on an early exit the worker stops at its next token; the engine is not
            t.join()    # re-entrant, so wait for it before anyone can call it again
