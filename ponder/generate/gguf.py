"""An in-process llama.cpp backend: ``MODEL`` may be a ``.gguf`` file (quantised or not).

``GGUFBackend(path)`` loads the file with llama-cpp-python's ``Llama`` and decodes it token by
token under ponder's control, so a GGUF model gets what ``LocalEngine`` gives a checkpoint:
exact thinking budgets, "Wait" forcing (``min_thinking``/``max_waits``), effort levels, the
loop guard, exact stop strings, seeds, per-token log-probs, ``n > 1``, streaming and the
thinking modes. The token-level rules are ``LocalEngine``'s own (``_plan``, ``_advance``,
``_guard``, ``stream`` are inherited, not copied); what differs is the model under them:

* **One llama.cpp context, one row at a time.** ``generate`` decodes the prompts' P·n rows one
  after the other in a single ``Llama`` context, under a lock (``concurrent=False``). llama.cpp
  could batch sequences, but a 2-core CPU gains nothing from it and the KV-cache bookkeeping
  would be ponder's to write.
* **Prefix reuse.** ``Llama`` keeps the tokens its KV cache holds (``input_ids[:n_tokens]``).
  Each row evaluates only the suffix of its prompt that the cache does not already hold (the
  longest common prefix is kept, the rest dropped), so the n samples of one prompt, a chat's
  next turn or a strategy's follow-up share the prompt's encoding. ``prompt_evaluated`` counts
  the prompt tokens the last call actually evaluated; llama.cpp's own counter
  (``llama_perf_context``) agrees.
* **Taking tokens back** (budget forcing replaces a ``</think>`` split over several tokens by
  "Wait"): the runner's ``hide`` drops the last token from the context (``n_tokens - 1``; the
  next ``eval`` removes its KV entries), where ``LocalEngine`` masks a cache column.
* **Sampling** is ponder's sampler (``ponder.generate.decode.sample``, on the logits llama.cpp
  returns, as a zero-copy tensor), not llama.cpp's sampler chain: greedy is the argmax of the
  same logits plain llama.cpp greedy decoding picks from, so the outputs are identical, and a
  seed makes sampling reproducible across calls. Log-probs are ``log_softmax`` of those logits.

**Tokenizer**: ``GGUFTokenizer`` is llama.cpp's own vocabulary (``Llama.tokenize`` with special
tokens parsed, ``detokenize`` with them kept), so the ids ponder counts are exactly the ids
llama.cpp evaluates. The chat template is the file's ``tokenizer.chat_template``, rendered by
transformers' Jinja renderer (``apply_chat_template``), which is what ``ponder.format.render``
calls; a file without a template gets ponder's plain layout.

**Threads**: ``threads`` (or ``PONDER_GGUF_THREADS``) sets llama.cpp's decode and prompt
threads; the default is 1. On the shared 2-core development machine 2 threads fell to
0.6 tok/s when another job held a core (every step waits for its slowest thread) while 1 thread
ran at 80-130 tok/s; see docs/generation.md for the measurement.

**Weight repacking** (llama.cpp's "extra buffer types": quantised weights re-laid at load for
its AMX / AVX-512 / interleaved kernels): ``repack`` (or ``PONDER_GGUF_REPACK=0|1``) turns it on
or off; the default is off on a CPU whose flags list AMX and on elsewhere. On an AMX-flagged
Xeon VM llama-cpp-python 0.3.36 segfaulted at the first decode of a Q4_1 file with repacking
and decoded normally without it (llama.cpp's trackers hold several AMX-path segfaults), so a
crash of the whole process costs more than the speed the kernels give where they work.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from ponder.format import THINK_CLOSE, THINK_OPEN, decide_thinking
from ponder.generate.decode import sample
from ponder.generate.local import PRE, THINK, LocalEngine, _Plan, _Row
from ponder.generate.types import (
    Budget,
    Capabilities,
    Completion,
    GenerationError,
    SamplingParams,
    effort_table_for,
)

THREADS_ENV = "PONDER_GGUF_THREADS"  # llama.cpp threads when ``threads`` is not given
CTX_ENV = "PONDER_GGUF_CTX"  # context length when ``n_ctx`` is not given
REPACK_ENV = "PONDER_GGUF_REPACK"  # 0/1: llama.cpp's load-time weight repacking (module docstring)
DEFAULT_CTX = 8192  # the context used at most by default (the KV cache is allocated up front)
GGUF_MAGIC = b"GGUF"


class GGUFLoadError(GenerationError):
    """A ``.gguf`` file that cannot be loaded; the one-line message names the file and why."""


def is_gguf(path: str | os.PathLike) -> bool:
    """True for a file named ``*.gguf`` or starting with the GGUF magic bytes."""
    p = Path(path)
    if not p.is_file():
        return False
    if p.suffix.lower() == ".gguf":
        return True
    with contextlib.suppress(OSError), open(p, "rb") as f:
        return f.read(4) == GGUF_MAGIC
    return False


def default_repack() -> bool:
    """Whether to let llama.cpp repack quantised weights at load: ``PONDER_GGUF_REPACK`` if set,
    else off where the CPU flags list AMX (see the module docstring), on elsewhere."""
    env = os.environ.get(REPACK_ENV, "").strip()
    if env:
        if env not in ("0", "1"):
            raise GGUFLoadError(f"{REPACK_ENV} must be 0 or 1, got {env!r}")
        return env == "1"
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:  # not Linux: no AMX-flagged VM to guard against that we know of
        return True
    return " amx_tile" not in flags


_PARAMS_LOCK = threading.Lock()


def with_fields(default: Callable, **fields) -> Callable:
    """``default`` (``llama_model_default_params``) with ``fields`` set on what it returns."""

    def params():
        out = default()
        for k, v in fields.items():
            setattr(out, k, v)
        return out

    return params


@contextlib.contextmanager
def llama_model_params(**fields):
    """Set llama.cpp model-loading fields that ``Llama.__init__`` has no argument for: it starts
    from ``llama_cpp.llama_model_default_params()``, looked up in its module at each load, so
    that function is wrapped for the duration of the load (under a lock: loads in other threads
    must not see the override)."""
    import llama_cpp.llama_cpp as low

    with _PARAMS_LOCK:
        default = low.llama_model_default_params
        low.llama_model_default_params = with_fields(default, **fields)
        try:
            yield
        finally:
            low.llama_model_default_params = default


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise GGUFLoadError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class GGUFTokenizer:
    """llama.cpp's vocabulary behind the slice of the Hugging Face tokenizer interface ponder uses
    (``encode``, ``__call__``, ``decode``, ``apply_chat_template``, the special-token ids).

    ``add_special_tokens=True`` adds BOS only where the file asks for it (``add_bos_token``).
    Decoding keeps special tokens as text and turns an incomplete UTF-8 sequence at the end into
    U+FFFD, as a byte-level HF tokenizer does (the stop-string scan waits for the next token).
    """

    def __init__(self, llm, chat_template: str | None = None):
        from llama_cpp import llama_cpp as C

        self._llm = llm
        meta = llm.metadata or {}
        self.chat_template = chat_template if chat_template is not None else meta.get("tokenizer.chat_template")
        self.add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
        vocab = C.llama_model_get_vocab(llm.model)
        self.vocab_size = llm.n_vocab()
        self.eos_token_id = llm.token_eos() if llm.token_eos() >= 0 else None
        self.bos_token_id = llm.token_bos() if llm.token_bos() >= 0 else None
        pad = meta.get("tokenizer.ggml.padding_token_id")
        self.pad_token_id = int(pad) if pad is not None and pad.isdigit() else self.eos_token_id
        # every end-of-generation token (EOS, EOT, <|endoftext|>, ...): what llama.cpp stops on
        self.eog_ids = frozenset(i for i in range(self.vocab_size) if C.llama_vocab_is_eog(vocab, i))
        self.eos_token = self._piece(self.eos_token_id)
        self.bos_token = self._piece(self.bos_token_id)

    def _piece(self, tid: int | None) -> str | None:
        return None if tid is None else self.decode([tid])

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``, special tokens (``<|im_start|>``, ...) parsed as such."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens and self.add_bos, special=True)

    def __call__(self, text: str | list[str], add_special_tokens: bool = True) -> dict:
        if isinstance(text, str):
            return {"input_ids": self.encode(text, add_special_tokens)}
        return {"input_ids": [self.encode(t, add_special_tokens) for t in text]}

    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False) -> str:
        """Token ids -> text (special tokens kept unless ``skip_special_tokens``)."""
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.eog_ids and i != self.bos_token_id]
        return self._llm.detokenize(ids, special=not skip_special_tokens).decode("utf-8", errors="replace")

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = False, **kw):
        """The file's chat template rendered by transformers' renderer (as ``AutoTokenizer`` would)."""
        from transformers.utils.chat_template_utils import render_jinja_template

        if not self.chat_template:
            raise ValueError("this GGUF file has no tokenizer.chat_template")
        rendered, _ = render_jinja_template(conversations=[list(messages)], chat_template=self.chat_template,
                                            add_generation_prompt=add_generation_prompt,
                                            bos_token=self.bos_token or "", eos_token=self.eos_token or "", **kw)
        text = rendered[0]
        return self.encode(text, add_special_tokens=False) if tokenize else text


class _Context:
    """The runner ``LocalEngine._advance`` calls: ``hide`` takes the newest token back."""

    def __init__(self, llm):
        self.llm = llm
        self.rewound = False

    def hide(self, row: int, col: int) -> None:
        # the taken-back token is always the newest one in the context (rows decode one at a time)
        self.llm.n_tokens -= 1
        self.rewound = True


class GGUFBackend(LocalEngine):
    """A GGUF model run in this process by llama.cpp (see the module docstring).

    ``threads``: llama.cpp threads (default ``PONDER_GGUF_THREADS``, else 1). ``n_ctx``: the
    context length (default ``PONDER_GGUF_CTX``, else the model's, at most 8,192).
    ``effort_table``, ``thinking``, ``name``, ``add_special_tokens``: as for ``LocalEngine``.
    ``chat_template``: replaces the file's template (a Jinja string).
    """

    capabilities = Capabilities(local=True, token_level=True, streaming=True, concurrent=False, logprobs=True)
    budget_honoured = True
    path, path_reason = "llama.cpp", "a GGUF file decoded by llama.cpp in this process"

    def __init__(self, gguf_path: str | os.PathLike, *, threads: int | None = None, n_ctx: int | None = None,
                 effort_table: Mapping[str, int] | None = None, thinking: str = "auto", name: str | None = None,
                 add_special_tokens: bool = True, chat_template: str | None = None, repack: bool | None = None):
        p = Path(gguf_path).expanduser()
        if not p.is_file():
            raise GGUFLoadError(f"GGUF file {str(p)!r} does not exist")
        with open(p, "rb") as f:
            magic = f.read(4)
        if magic != GGUF_MAGIC:
            raise GGUFLoadError(f"{p}: not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")
        try:
            from llama_cpp import Llama
        except ImportError:
            raise GGUFLoadError("running a .gguf file needs llama-cpp-python (pip install llama-cpp-python)") from None
        threads = threads or _env_int(THREADS_ENV) or 1
        if not isinstance(threads, int) or threads < 1:
            raise GGUFLoadError(f"threads must be a positive integer, got {threads!r}")
        want_ctx = n_ctx or _env_int(CTX_ENV)
        try:
            # the trained context comes from the header (milliseconds): the load sizes its KV
            # cache from n_ctx up front
            from transformers.integrations.gguf import read_gguf_metadata

            meta, _ = read_gguf_metadata(str(p))
            ctx_train = int(meta.get(f"{meta.get('general.architecture')}.context_length") or 0) or DEFAULT_CTX
        except Exception as e:  # noqa: BLE001 - a truncated or corrupt header fails anywhere in the reader
            first = (str(e).splitlines() or [""])[0]
            raise GGUFLoadError(f"{p}: unreadable GGUF header ({type(e).__name__}: {first})") from None
        ctx = want_ctx or min(ctx_train, DEFAULT_CTX)
        self.repack = default_repack() if repack is None else bool(repack)
        try:
            with llama_model_params(use_extra_bufts=self.repack):
                self.llm = Llama(str(p), n_ctx=ctx, n_batch=min(ctx, 512), n_threads=threads,
                                 n_threads_batch=threads, logits_all=False, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            first = (str(e).splitlines() or [""])[0]
            raise GGUFLoadError(f"{p}: llama.cpp cannot load it ({type(e).__name__}: {first})") from None
        # closed while the interpreter still works: Llama.__del__ during shutdown finds
        # llama_cpp's module globals already gone and prints a traceback
        weakref.finalize(self, self.llm.close)
        from llama_cpp import llama_cpp as C

        self.gguf_path, self.threads, self.threads_used = p, threads, threads
        self.n_ctx = self.llm.n_ctx()
        self.tokenizer = GGUFTokenizer(self.llm, chat_template)
        self.add_special_tokens = add_special_tokens
        self.num_threads = threads
        self.device = torch.device("cpu")
        self.n_params = int(C.llama_model_n_params(self.llm.model))
        self.max_positions = self.n_ctx
        self.effort_table = dict(effort_table or effort_table_for(ctx_train, self.n_params))
        self.thinking = decide_thinking(thinking, self.tokenizer, None)
        self.name = name or str(p)
        self.eos_ids = self.tokenizer.eog_ids
        self.pad_id = self.tokenizer.pad_token_id
        self.open_ids, self.close_ids = self._enc(THINK_OPEN), self._enc(THINK_CLOSE)
        self.runner = _Context(self.llm)
        self._lock = threading.Lock()
        self._recurrent = bool(getattr(self.llm, "_is_recurrent", False) or getattr(self.llm, "_is_hybrid", False))
        self._logits_view = None
        self.prompt_evaluated = 0  # prompt tokens the last generate call evaluated (the rest came from the cache)

    @classmethod
    def from_path(cls, path: str | os.PathLike, **kw) -> "GGUFBackend":
        return cls(path, **kw)

    def refresh_weights(self) -> None:
        """A GGUF file's weights never change under it: nothing to re-read."""

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens))

    # ------------------------------------------------------------------ llama.cpp context

    def _logits(self) -> np.ndarray:
        """The newest position's logits [V], a view of llama.cpp's buffer (valid until the next eval)."""
        from llama_cpp import llama_cpp as C

        ptr = C.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.tokenizer.vocab_size,))

    def _feed(self, tokens: list[int]) -> None:
        """Evaluate ``tokens`` after what the context holds (``Llama.eval`` first drops the KV
        entries past ``n_tokens``; a recurrent model, which cannot drop them, is re-evaluated)."""
        llm = self.llm
        if self._recurrent and self.runner.rewound:
            held = llm.input_ids[: llm.n_tokens].tolist()
            llm.reset()
            tokens = held + list(tokens)
        self.runner.rewound = False
        llm.eval(tokens)

    def _prime(self, enc: list[int]) -> np.ndarray:
        """Make the context hold exactly ``enc``, reusing its longest cached prefix; returns the
        logits after the prompt.

        At least two tokens are evaluated (one where the prompt is a single token): llama.cpp's
        one-token step computes other logits than a batch does for the same position (max abs
        difference 0.58 on SmolLM2 Q4_1, enough to change a greedy token), while a batch of two
        or more gives the last position bit-identical logits wherever the prompt is split. So
        the prompt's logits, and greedy output, are those of a fresh context evaluating the
        whole prompt at once (plain llama-cpp-python replays one token and can differ)."""
        llm = self.llm
        held = llm.input_ids[: min(llm.n_tokens, len(enc))]
        diff = np.nonzero(held != np.asarray(enc[: len(held)], dtype=held.dtype))[0]
        keep = int(diff[0]) if len(diff) else len(held)
        keep = max(0, min(keep, len(enc) - 2))
        if self._recurrent and keep < llm.n_tokens:
            keep = 0  # a recurrent state cannot be cut back: start over
        if keep == 0:
            llm.reset()
        else:
            llm.n_tokens = keep
        self.runner.rewound = False
        self.prompt_evaluated += len(enc) - keep
        llm.eval(enc[keep:])
        return self._logits()

    # ------------------------------------------------------------------ generation

    def _generate(self, enc: list[list[int]], pre: list[bool], n: int, sampling: SamplingParams, budget: Budget,
                  on_token, stop_row) -> list[list[Completion]]:
        """``LocalEngine.generate``'s contract, ``on_token`` included, but not ``stop_row``
        (``capabilities.stop_hook`` is off); rows are decoded one after the other."""
        if stop_row is not None:
            raise GenerationError("stop_row: a GGUF model decodes one row at a time and has no stop hook")
        plan = self._plan(sampling, budget)
        gen = torch.Generator().manual_seed(sampling.seed) if sampling.seed is not None else None
        out: list[list[Completion]] = []
        # torch (the sampler) on one thread: its idle OpenMP workers spin on the core llama.cpp
        # decodes on (a 2-thread logsumexp over the vocabulary measured 5 ms of CPU per token)
        with self._lock, torch.inference_mode(), _torch_threads(1):
            self.prompt_evaluated = 0
            for i, e in enumerate(enc):
                group = []
                for j in range(n):
                    group.append(self._completion(self._row(e, pre[i], plan, gen, on_token, i * n + j), pre[i],
                                                  sampling.stop))
                out.append(group)
        return out

    def _encode_all(self, prompts: list[str]) -> list[list[int]]:
        enc = super()._encode_all(prompts)
        for i, e in enumerate(enc):
            if len(e) >= self.n_ctx:
                raise GenerationError(f"prompts[{i}] has {len(e)} tokens; the context holds {self.n_ctx} "
                                      f"(set n_ctx or {CTX_ENV})")
        return enc

    def _row(self, enc: list[int], prefilled: bool, plan: _Plan, gen, on_token, index: int) -> _Row:
        """Decode one completion of ``enc`` with ``LocalEngine``'s token rules (``_advance``)."""
        r = _Row(len(enc), THINK if prefilled else PRE)
        if plan.tb == 0 and r.phase == THINK:  # no thinking at all: close the pre-filled block now
            r.forced.extend(plan.close_q)
            r.forced_close = True
        llm, sp = self.llm, plan.sp
        logits = self._prime(enc)
        while True:
            if r.forced:
                tok = -1  # _advance emits the forced token instead
            elif sp.greedy:
                tok = int(logits.argmax())
            else:
                tok = int(sample(torch.from_numpy(logits)[None], sp, gen)[0])
            top = logits.max()
            lse = top + np.log(np.exp(logits - top).sum(dtype=np.float64))  # logsumexp over the vocabulary
            tok = self._advance(r, 0, tok, llm.n_tokens, plan)
            r.lps.append(float(logits[tok] - lse))  # log p(token) under the raw distribution
            if on_token is not None and on_token(index, r.ids) is True and r.finish is None:
                r.finish = "length"  # the caller stopped the row (its client left)
            if r.finish is None and llm.n_tokens + 1 > self.n_ctx:
                r.finish = "length"  # the context is full
            if r.finish is not None:
                return r
            self._feed([tok])
            logits = self._logits()


@contextlib.contextmanager
def _torch_threads(k: int):
    old = torch.get_num_threads()
    torch.set_num_threads(k)
    try:
        yield
    finally:
        torch.set_num_threads(old)
