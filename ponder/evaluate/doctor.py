"""``ponder doctor MODEL``: is this model set up the way ponder will use it?

A consistency check to run before training, evaluating or serving a model. Each check gives a
``Finding``: PASS, WARN (works, but numbers may mislead), FAIL (ponder's results on this model
would be wrong or empty) or SKIP (cannot be checked here, e.g. token-level checks on an
endpoint), with the evidence and a concrete fix (the flag or command to use). docs/doctor.md
lists every check.

Checks, in order (``diagnose``):

* tokenizer (local models, or an endpoint given ``--tokenizer``): ``chat-template``,
  ``system-prompt`` (rendered with and without a system turn: does the template inject a default
  one, does it keep ours), ``think-tokens`` (are ``<think>``/``</think>`` single tokens);
* ``thinking-mode``: what ``decide_thinking`` decides for auto/on/off and why;
* ``eos`` (local): the tokenizer's EOS id is set and in ``generation_config.json`` (a ``.gguf``
  file: named in its metadata);
* ``context`` (local): the context length against prompt + thinking budget + ``max_tokens``,
  and against the sequence length a ponder checkpoint was trained on;
* ``training-template`` (ponder's checkpoints): the recorded thinking start, system prompt,
  answer template and SFT prompts against what eval and serve render;
* endpoints: ``endpoint-models`` (``GET /v1/models`` lists the model) and ``reasoning-split``
  (does the server separate ``reasoning_content`` from ``content``);
* samples on ``--task``, ``problems`` questions, each one greedy and ``n`` sampled:
  ``samples-close`` (share closing ``</think>``), ``samples-stop`` (share ending before
  ``max_tokens``), ``samples-answer`` (share with an answer the task's judge can extract),
  ``samples-correct``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Literal

from ponder.config import ModelOptions, PromptOptions, SamplingOptions, check_choice, option, shared
from ponder.evaluate.doctor_endpoint import check_endpoint, check_split
from ponder.format import (
    MODES,
    THINK_CLOSE,
    THINK_OPEN,
    RenderError,
    decide_thinking,
    render,
    system_text,
    template_inserts_system,
)
from ponder.generate.backends import load_backend, parse_model_spec
from ponder.generate.backends import prompt as prompt_of
from ponder.generate.types import DEFAULT_CLOSE_TEXT, Budget, GenerationError, SamplingParams

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]
STATUSES = ("PASS", "WARN", "FAIL", "SKIP")
#: the file every ponder training stage writes beside its checkpoint (ponder.train.common.CONFIG_FILE;
#: named here because evaluate may not import train)
TRAIN_CONFIG = "ponder_config.json"
#: the file ``ponder models import-gguf`` writes (ponder.models.gguf.PROVENANCE_FILE)
IMPORT_RECORD = "ponder_import.json"
#: a prompt this close to the context (share of it) leaves too little room to be safe
CONTEXT_MARGIN = 0.9
_MARK = "\x07QUESTION\x07"


class DoctorError(ValueError):
    """Bad doctor input (options); the message names the problem."""


@dataclass(frozen=True)
class Finding:
    """One check's result: ``check`` (its name in docs/doctor.md), ``status``, ``detail`` (the
    evidence), ``fix`` (the command or flag that fixes or works around it; "" on PASS)."""

    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class DoctorConfig(PromptOptions, SamplingOptions, ModelOptions):
    """Options of ``ponder doctor``."""

    task: str = shared("task", "addition")
    problems: int = option(2, "Questions of the task's test split to sample.")
    n: int = option(2, "Sampled completions per question, besides the greedy one (0: greedy only).")
    thinking_budget: int | None = option(None, "Thinking budget to check the context against and sample with; excludes effort.")
    effort: str | None = option(None, "Effort level low|medium|high (the model's effort table) instead of a thinking budget.")
    template: str = shared("template", "think")
    timeout: float = shared("timeout", 120.0)
    json: bool = option(False, "Print the findings as one JSON object instead of a table.", flag="--json")

    def __post_init__(self) -> None:
        if not self.model:
            raise DoctorError("give MODEL: a local checkpoint directory or openai:<model>@<base_url>")
        if self.problems < 1 or self.n < 0 or self.max_tokens < 1:
            raise DoctorError(f"need problems >= 1, n >= 0 and max_tokens >= 1 (got {self.problems}, {self.n}, "
                              f"{self.max_tokens})")
        check_choice(self, "thinking", MODES, error=DoctorError)
        check_choice(self, "template", ("think", "r1-zero"), error=DoctorError)

    def params(self) -> tuple[SamplingParams, SamplingParams, Budget]:
        """(greedy, sampled, budget); their checks raise GenerationError (a ValueError)."""
        greedy = SamplingParams(temperature=0.0, max_tokens=self.max_tokens)
        sampled = SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                                 seed=self.seed)
        return greedy, sampled, Budget(thinking_budget=self.thinking_budget, effort=self.effort)


@dataclass
class Report:
    """What ``diagnose`` found: the findings in check order and the facts they rest on."""

    model: str
    kind: str  # local | gguf (a .gguf file) | gguf-import | endpoint
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, check: str, status: Status, detail: str, fix: str = "") -> None:
        self.findings.append(Finding(check, status, detail, fix))

    @property
    def failed(self) -> bool:
        return any(f.status == "FAIL" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(f.status == s for f in self.findings) for s in STATUSES}

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "kind": self.kind, "ok": not self.failed, "counts": self.counts(),
                "findings": [asdict(f) for f in self.findings], "facts": self.facts}


def _q(text: str) -> str:
    """A value quoted for a shell command line."""
    return "'" + text.replace("'", "'\\''") + "'"


# --------------------------------------------------------------------------- tokenizer checks


def check_tokenizer(report: Report, tokenizer, thinking, cfg: DoctorConfig) -> None:
    """chat-template, system-prompt and think-tokens (see the module docstring)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        report.add("chat-template", "PASS", f"the tokenizer has a chat template ({len(template)} characters); "
                                            "every ponder command renders prompts through it")
    else:
        report.add("chat-template", "WARN", "the tokenizer has no chat template: ponder renders its plain layout "
                                            "(ponder.format.render.PLAIN_TEMPLATE), which a chat model was not trained on",
                   "save the model's own template as chat_template.jinja in the checkpoint directory")
        report.add("system-prompt", "SKIP", "no chat template to inject a system prompt")
    if isinstance(template, str) and template:
        _check_system(report, tokenizer, thinking, cfg)
    _check_think_tokens(report, tokenizer)


def _check_system(report: Report, tokenizer, thinking, cfg: DoctorConfig) -> None:
    try:
        bare = render(_MARK, tokenizer, thinking).text
        ours = render(_MARK, tokenizer, thinking, system="\x07SYSTEM\x07").text
    except RenderError as e:
        report.add("system-prompt", "FAIL", str(e), "fix the chat template (chat_template.jinja) so it renders "
                                                     "one user turn")
        return
    head = bare.split(_MARK)[0]
    report.facts["prompt_layout"] = bare.replace(_MARK, "{question}")
    kept = "\x07SYSTEM\x07" in ours
    if not template_inserts_system(tokenizer):
        if kept:
            report.add("system-prompt", "PASS", "the template adds no system prompt of its own and keeps a --system one")
        else:
            report.add("system-prompt", "WARN", "the template drops system turns: --system has no effect on this model",
                       "put instructions in the question, or add a system branch to chat_template.jinja")
        return
    injected = _injected(head, ours.split(_MARK)[0])
    report.facts["injected_system"] = injected
    if cfg.system:
        report.add("system-prompt", "PASS", f"the template injects a default system prompt ({injected!r}) when none "
                                            f"is given; --system {_q(cfg.system)} replaces it")
        return
    report.add("system-prompt", "WARN",
               f"the template injects a default system prompt when none is given: {injected!r}"
               + ("" if kept else "; and it drops a system turn of ours"),
               "pass the same --system on eval, ask and serve (e.g. --system r1) so it replaces the default; "
               "training renders with it too unless the stage's system is set")


def _injected(bare_head: str, ours_head: str) -> str:
    """The template's own system prompt: what stands in the bare render where ours stands in the
    render with a system turn (``A + X + B`` against ``A + ours + B``), else the whole head."""
    a, sep, b = ours_head.partition("\x07SYSTEM\x07")
    if sep and bare_head.startswith(a) and bare_head.endswith(b) and len(bare_head) >= len(a) + len(b):
        found = bare_head[len(a):len(bare_head) - len(b)]
    else:
        found = bare_head
    return " ".join(found.split())[:160]


def _check_think_tokens(report: Report, tokenizer) -> None:
    try:
        open_ids = tokenizer.encode(THINK_OPEN, add_special_tokens=False)
        close_ids = tokenizer.encode(THINK_CLOSE, add_special_tokens=False)
        close_len = len(tokenizer.encode(DEFAULT_CLOSE_TEXT, add_special_tokens=False))
    except Exception as e:  # noqa: BLE001 - an odd tokenizer: report it, do not crash
        report.add("think-tokens", "FAIL", f"the tokenizer cannot encode the think tags ({type(e).__name__}: {e})")
        return
    pieces = [tokenizer.convert_ids_to_tokens(i) for i in close_ids] if hasattr(tokenizer, "convert_ids_to_tokens") \
        else [tokenizer.decode([i]) for i in close_ids]  # a GGUF file's tokenizer (llama.cpp's) has no token names
    report.facts.update(think_open_tokens=len(open_ids), think_close_tokens=len(close_ids),
                        forced_close_tokens=close_len)
    if len(open_ids) == 1 and len(close_ids) == 1:
        report.add("think-tokens", "PASS", f"<think> and </think> are one token each (ids {open_ids[0]}, "
                                           f"{close_ids[0]}); a forced close costs {close_len} tokens")
        return
    report.add("think-tokens", "WARN",
               f"<think> is {len(open_ids)} tokens and </think> {len(close_ids)} ({pieces}): the model spells the tags "
               f"as ordinary text, so it was likely never trained on them; budgets count the tokens it writes "
               f"inside the block, a forced close adds {close_len} tokens on top, and a </think> spelled with "
               "other tokens splits the text but does not trigger budget forcing",
               f"allow {close_len} extra tokens per forced close when sizing --thinking-budget; to train the "
               "format in, add the tags as tokens first (tokenizer.add_tokens(['<think>', '</think>']) and "
               "model.resize_token_embeddings), as ponder's own tokenizer does")


# --------------------------------------------------------------------------- thinking, eos, context


def check_thinking(report: Report, backend, tokenizer, config, cfg: DoctorConfig, remote: bool) -> None:
    if remote and tokenizer is None:
        decisions = {m: decide_thinking(m, remote=True) for m in MODES}
    else:
        decisions = {m: decide_thinking(m, tokenizer, config) for m in MODES}
    report.facts["thinking"] = {m: {"start": d.start, "reason": d.reason} for m, d in decisions.items()}
    used = backend.thinking
    others = "; ".join(f"{m} → {d.start}" for m, d in decisions.items() if m != cfg.thinking)
    report.add("thinking-mode", "PASS", f"--thinking {cfg.thinking} → {used.start}: {used.reason} ({others})")


def check_eos(report: Report, model, tokenizer) -> None:
    eos = getattr(tokenizer, "eos_token_id", None)
    if model is None:  # a .gguf file: llama.cpp stops at the eos its metadata names
        report.facts.update(eos_token_id=eos, eos_token=getattr(tokenizer, "eos_token", None))
        if eos is None:
            report.add("eos", "FAIL", "the GGUF file names no eos token (tokenizer.ggml.eos_token_id): generation "
                                      "ends only at max_tokens",
                       "set it with gguf-py's gguf-new-metadata, or import the file (ponder models import-gguf)")
        else:
            report.add("eos", "PASS", f"eos {tokenizer.eos_token!r} (id {eos}) from the file's metadata, where "
                                      "llama.cpp stops")
        return
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    gen_ids = [gen] if isinstance(gen, int) else list(gen or [])
    report.facts.update(eos_token_id=eos, eos_token=getattr(tokenizer, "eos_token", None),
                        generation_eos_ids=gen_ids)
    if eos is None:
        report.add("eos", "FAIL", "the tokenizer has no eos token: generation ends only at max_tokens",
                   "set eos_token in tokenizer_config.json to the token that ends an assistant turn (ChatML: <|im_end|>)")
    elif not gen_ids:
        report.add("eos", "WARN", f"generation_config.json names no eos_token_id; ponder stops at the tokenizer's "
                                  f"{tokenizer.eos_token!r} (id {eos}) but HF generate, vLLM and TRL read the file",
                   f"add \"eos_token_id\": {eos} to generation_config.json")
    elif eos not in gen_ids:
        report.add("eos", "WARN", f"the tokenizer's eos {tokenizer.eos_token!r} (id {eos}) is not in "
                                  f"generation_config.json's eos_token_id {gen_ids}: engines that read only the "
                                  "file will not stop at it",
                   f"add {eos} to eos_token_id in generation_config.json")
    else:
        report.add("eos", "PASS", f"eos {tokenizer.eos_token!r} (id {eos}) is set and in generation_config.json "
                                  f"{gen_ids}")


def check_context(report: Report, backend, prompt_tokens: int, budget: Budget, cfg: DoctorConfig,
                  trained_len: int | None) -> None:
    ctx = backend.max_positions
    think = budget.resolve(backend.effort_table)
    close = report.facts.get("forced_close_tokens", 0) if think is not None else 0
    need = prompt_tokens + (think or 0) + close + cfg.max_tokens
    parts = f"prompt {prompt_tokens}" + (f" + thinking {think} + close {close}" if think is not None else "") \
        + f" + max_tokens {cfg.max_tokens} = {need}"
    report.facts.update(context_length=ctx, tokens_needed=need, effort_table=dict(backend.effort_table))
    if not ctx:
        report.add("context", "SKIP", f"the model config gives no context length ({parts} tokens needed)")
        return
    high = backend.effort_table.get("high")
    aside = (f"; --effort high ({high} thinking tokens) would not fit" if
             high and prompt_tokens + high + close + cfg.max_tokens > ctx else "")
    notes = []
    if trained_len and need > trained_len:
        notes.append(f"the checkpoint was trained on sequences of {trained_len} tokens: positions past that are "
                     "untrained")
    room = ctx - prompt_tokens - close - (think or 0)
    if need > ctx:
        fix = (f"--max-tokens {max(room, 1)}" if room > 0 else
               f"--thinking-budget {max(ctx - prompt_tokens - close - cfg.max_tokens, 0)} or a smaller --max-tokens")
        report.add("context", "FAIL", f"{parts} tokens needed, but the context is {ctx}; generation is cut at the "
                                      "context's end", fix)
    elif need > CONTEXT_MARGIN * ctx or notes:
        report.add("context", "WARN", f"{parts} of a {ctx}-token context" + ("; " + "; ".join(notes) if notes else "")
                   + aside,
                   "keep --max-tokens + --thinking-budget below the context" +
                   (f" (here at most {trained_len} in all)" if trained_len and need > trained_len else ""))
    else:
        report.add("context", "PASS", f"{parts} of a {ctx}-token context{aside}")


# --------------------------------------------------------------------------- ponder's own checkpoints


def check_training(report: Report, path: Path, tokenizer, config, backend, cfg: DoctorConfig) -> int | None:
    """training-template on a ponder checkpoint; returns the trained sequence length (or None)."""
    rec_file = path / TRAIN_CONFIG
    if not rec_file.is_file():
        report.add("training-template", "SKIP", f"not trained by ponder (no {TRAIN_CONFIG}): nothing recorded "
                                                "to compare")
        return None
    try:
        rec = json.loads(rec_file.read_text())
    except (OSError, ValueError) as e:
        report.add("training-template", "WARN", f"{rec_file}: unreadable ({e})")
        return None
    problems, fixes = [], []
    recorded = getattr(config, "ponder_thinking", None)
    if recorded and backend.thinking.start != recorded:
        problems.append(f"trained with thinking start {recorded!r}, but --thinking {cfg.thinking} renders "
                        f"{backend.thinking.start!r}")
        fixes.append("--thinking auto")
    trained_system = system_text(rec.get("system") or None)
    used_system = system_text(cfg.system or None)
    if "system" in rec and trained_system != used_system:
        problems.append(f"trained with system prompt {trained_system!r:.60}, checked with {used_system!r:.60}")
        fixes.append(f"--system {_q(rec['system'])}" if rec.get("system") else "no --system")
    if rec.get("template") and rec["template"] != cfg.template:
        problems.append(f"trained on the {rec['template']} answer format, judged as {cfg.template}")
        fixes.append(f"--template {rec['template']}")
    data_note = _check_sft_data(rec, tokenizer, backend, problems, fixes)
    report.facts["training"] = {k: rec.get(k) for k in ("task", "template", "system", "data", "seq_len", "max_length")
                                if k in rec}
    if problems:
        report.add("training-template", "WARN", "; ".join(problems), "; ".join(dict.fromkeys(fixes)))
    else:
        shown = f"system prompt {trained_system!r:.40}" if trained_system else "no system prompt"
        report.add("training-template", "PASS", f"recorded thinking start {recorded!r}, {shown}, answer format "
                                                f"{rec.get('template', 'think')!r}: what eval and serve render"
                   + data_note)
    for key in ("seq_len", "max_length", "max_completion_length"):
        if isinstance(rec.get(key), int):
            return rec[key] if key != "max_completion_length" else None
    return None


def _check_sft_data(rec: dict, tokenizer, backend, problems: list, fixes: list) -> str:
    """Do the SFT data's string prompts have the layout eval renders (same text around the question)?"""
    data = rec.get("data")
    if not isinstance(data, str) or not data:
        return ""
    p = Path(data)
    if not p.is_file():
        return f"; the SFT data {data} is gone, so its prompts were not compared"
    from ponder.io import json_objects

    rows = [r for _, r in islice(json_objects(p, ValueError), 50) if isinstance(r.get("prompt"), str)]
    if not rows:
        return ""
    layout = render(_MARK, tokenizer, backend.thinking).text
    head, tail = layout.split(_MARK)
    bad = [r["prompt"] for r in rows if not (r["prompt"].startswith(head) and r["prompt"].endswith(tail))]
    if not bad:
        return f"; {len(rows)} SFT prompts have the same layout"
    problems.append(f"{len(bad)} of {len(rows)} SFT prompts in {data} differ from the layout eval renders "
                    f"({head + '{question}' + tail!r:.80}); first: {bad[0]!r:.80}")
    for name in ("r1", "r1-zero"):
        h = render(_MARK, tokenizer, backend.thinking, system=name).text.split(_MARK)[0]
        if all(b.startswith(h) for b in bad):
            fixes.append(f"--system {name}")
            break
    else:
        fixes.append("rebuild the SFT data with `ponder sample` on this checkpoint (it renders prompts as eval does)")
    return ""


# --------------------------------------------------------------------------- samples


def check_samples(report: Report, backend, task, examples: list[dict], cfg: DoctorConfig) -> None:
    from ponder.tasks import judge

    greedy, sampled, budget = cfg.params()
    prompts = [prompt_of(backend, ex["prompt"], cfg.system or None) for ex in examples]
    payloads = [p.payload for p in prompts]
    groups = backend.generate(payloads, 1, greedy, budget)
    if cfg.n:
        for g, more in zip(groups, backend.generate(payloads, cfg.n, sampled, budget)):
            g.extend(more)
    rows = []
    for ex, g in zip(examples, groups):
        for j, c in enumerate(g):
            v = judge(task, c, ex, template=cfg.template)
            p = c.parsed
            rows.append({"id": ex["id"], "greedy": j == 0, "thinking": p.thinking, "closed": p.think_closed,
                         "finish": c.finish_reason, "answer": v.answer, "correct": v.correct, "gold": ex["gold"],
                         "tokens": c.reasoning_tokens + c.answer_tokens, "forced_close": c.forced_close,
                         "text": c.text[:200]})
    report.facts["samples"] = rows
    total = len(rows)
    thinking = [r for r in rows if r["thinking"]]
    closed = sum(r["closed"] for r in thinking)
    forced = sum(r["forced_close"] for r in thinking)
    what = (f"{total} samples ({len(examples)} {task.name} question{'s' if len(examples) > 1 else ''} × 1 greedy"
            f" + {cfg.n} sampled)")
    start = backend.thinking.start
    budget_fix = _budget_fix(backend, budget)
    if not thinking:
        report.add("samples-close", "PASS" if start != "prefill" else "WARN",
                   f"none of {what} opened a think block: the model answers directly", "" if start != "prefill" else
                   "--thinking off")
    elif closed == 0:
        cut = sum(r["finish"] == "length" for r in thinking)
        why = (f"{cut} ran out of tokens inside the reasoning (no answer)" if cut else "") + (
            (", " if cut else "") + f"{len(thinking) - cut} ended inside the think block: the model ignores it, "
            "so reasoning and answer cannot be told apart" if cut < len(thinking) else "")
        report.add("samples-close", "FAIL",
                   f"0 of {len(thinking)} thinking samples closed </think> within {cfg.max_tokens} tokens; {why}",
                   f"--thinking off (the model answers without a think block), or {budget_fix}")
    elif closed - forced < len(thinking) / 2:
        report.add("samples-close", "WARN", f"{closed} of {len(thinking)} thinking samples closed </think>"
                   + (f" ({forced} only because the budget forced it)" if forced else ""),
                   "--thinking off: the model closes </think> only when the budget forces it" if forced else
                   f"a larger --max-tokens, --thinking off, or {budget_fix}")
    else:
        report.add("samples-close", "PASS", f"{closed} of {len(thinking)} thinking samples closed </think>"
                   + (f" ({forced} forced by the budget)" if forced else "") + f"; {what}")
    ended = sum(r["finish"] in ("eos", "stop") for r in rows)
    if ended == 0:
        eos = report.facts.get("eos_token")
        report.add("samples-stop", "FAIL", f"no sample ended before max_tokens ({cfg.max_tokens}): the answers need "
                                           f"more tokens, or the model never emits its end token"
                                           f"{f' {eos!r}' if eos else ''}",
                   f"--max-tokens {cfg.max_tokens * 4}; if it still runs on, the eos check above and the chat "
                   "template's end-of-turn token")
    elif ended < total / 2:
        report.add("samples-stop", "WARN", f"{ended} of {total} samples ended before max_tokens ({cfg.max_tokens})",
                   f"--max-tokens {cfg.max_tokens * 2}")
    else:
        report.add("samples-stop", "PASS", f"{ended} of {total} samples ended on their own before max_tokens")
    answered = sum(r["answer"] is not None for r in rows)
    correct = sum(r["correct"] for r in rows)
    fix = ("--template think (the model does not write <answer> tags)" if cfg.template == "r1-zero" else
           "a larger --max-tokens" if ended < total / 2 else
           f"a system prompt that asks for the answer format (--system r1), or see `ponder tasks show {task.name}`")
    if answered == 0:
        report.add("samples-answer", "FAIL", f"the {task.name} judge extracted no answer from any of {total} samples",
                   fix)
    elif answered < total / 2:
        report.add("samples-answer", "WARN", f"{answered} of {total} samples gave an extractable answer", fix)
    else:
        report.add("samples-answer", "PASS", f"{answered} of {total} samples gave an extractable answer")
    report.add("samples-correct", "PASS" if correct else "WARN", f"{correct} of {total} samples correct "
               f"(greedy: {sum(r['correct'] for r in rows if r['greedy'])} of {len(examples)})",
               "" if correct else f"the model may be too weak for {task.name}; read the samples with --json")


def _budget_fix(backend, budget: Budget) -> str:
    """How to make the model close </think>: a thinking budget, where this backend enforces one.
    A chat endpoint other than ``ponder serve`` is only sent the budget fields, which servers
    such as llama.cpp's drop, so there the way is ``--tokenizer`` (ponder renders the prompt and
    cuts the reasoning itself)."""
    caps = backend.capabilities
    if caps.budgets == "exact" or caps.forcing:
        return "--thinking-budget B to force </think> after B tokens"
    sent = f" (the --thinking-budget {budget.thinking_budget} sent did not cut it)" if budget.thinking_budget else ""
    return ("--tokenizer with the served model's tokenizer (directory or .gguf): ponder then renders the prompt "
            f"and a --thinking-budget forces </think>; this server is only asked to honour a budget{sent}")


# --------------------------------------------------------------------------- the run


def diagnose(cfg: DoctorConfig, progress: Callable[[str], None] | None = None, backend=None) -> Report:
    """Run every check on ``cfg.model`` (see the module docstring). Bad input (an unusable model
    path, an unknown task) raises a ValueError; a check that fails is a finding, never an error.

    ``backend``: the model already loaded from ``cfg.model`` (the same thinking mode), to check
    several settings without loading it again."""
    from ponder.tasks import get_task

    say = progress or (lambda _stage: None)
    spec = parse_model_spec(cfg.model)
    task = get_task(cfg.task)
    examples = list(islice(task.examples("test"), cfg.problems))
    if not examples:
        raise DoctorError(f"task {cfg.task!r} has no test examples to sample")
    cfg.params()  # bad sampling or budget values stop here, before a model loads
    remote = spec.kind == "openai"
    if remote:
        report = Report(str(spec), "endpoint")
        say("asking the server for its models")
        reachable = check_endpoint(report, spec, cfg)
        backend = backend or load_backend(spec, thinking=cfg.thinking, extra_body=cfg.extra_body or None,
                                          timeout=cfg.timeout, tokenizer=cfg.tokenizer or None, max_retries=1)
        tokenizer, config, model = backend.tokenizer, None, None
    else:
        say(f"loading {spec.path}")
        backend = backend or load_backend(spec, thinking=cfg.thinking)
        # a .gguf file runs in llama.cpp: no transformers model or config, the file's metadata instead
        tokenizer, model = backend.tokenizer, getattr(backend, "model", None)
        config = getattr(model, "config", None)
        kind = "gguf" if spec.path.is_file() else "gguf-import" if (spec.path / IMPORT_RECORD).is_file() else "local"
        report = Report(str(spec.path), kind)
        if kind == "gguf-import":
            _import_facts(report, spec.path)
        report.facts["parameters"] = getattr(backend, "n_params", None)
    if tokenizer is not None:
        check_tokenizer(report, tokenizer, backend.thinking, cfg)
    else:
        for name in ("chat-template", "system-prompt", "think-tokens"):
            report.add(name, "SKIP", "the server renders prompts with its own template (give --tokenizer, the "
                                     "served model's tokenizer directory or .gguf file, to check it)")
    check_thinking(report, backend, tokenizer, config, cfg, remote)
    if remote:
        for name in ("eos", "context"):
            report.add(name, "SKIP", "the server's own setting (its stop tokens and context window, e.g. "
                                     "llama.cpp's --n_ctx) is not visible to a client; the samples-stop check "
                                     "below covers the end of generation")
        report.add("training-template", "SKIP", "the endpoint's training record is not visible to a client")
    else:
        check_eos(report, model, tokenizer)
        if kind == "gguf":
            report.add("training-template", "SKIP", "a GGUF file carries no ponder training record")
            trained_len = None
        else:
            trained_len = check_training(report, spec.path, tokenizer, config, backend, cfg)
        longest = max(backend.count_tokens(prompt_of(backend, ex["prompt"], cfg.system or None).text)
                      for ex in examples)
        check_context(report, backend, longest, cfg.params()[2], cfg, trained_len)
    if remote and not reachable:
        for name in ("reasoning-split", "samples-close", "samples-stop", "samples-answer", "samples-correct"):
            report.add(name, "SKIP", "the server cannot be reached")
        return report
    if remote:
        say("one chat request: where does the reasoning come back")
        check_split(report, spec, examples[0]["prompt"], cfg)
    say(f"sampling {len(examples) * (1 + cfg.n)} completions of {task.name}")
    try:
        check_samples(report, backend, task, examples, cfg)
    except GenerationError as e:
        report.add("samples-close", "FAIL", f"generation failed: {e}", "see the error; `ponder ask MODEL 'What is "
                                                                        "2 + 3?'` shows it in isolation")
    finally:
        if hasattr(backend, "close"):
            backend.close()
    return report


def _import_facts(report: Report, path: Path) -> None:
    try:
        rec = json.loads((path / IMPORT_RECORD).read_text())
    except (OSError, ValueError):
        return
    check = rec.get("check") or {}
    report.facts["import"] = {"source": rec.get("source"), "architecture": rec.get("architecture"),
                              "logits_equal": check.get("equal")}
