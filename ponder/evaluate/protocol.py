"""Evaluation protocols: the named, cited settings a published score was measured under.

A published number is reproducible only with its whole protocol: prompt wording, few-shot
examples, whether the chat template is used, the thinking pre-fill, sampling (temperature,
top-p, n), the token limit, stop strings, the extraction rule and the metric. A protocol is a
YAML file (``ponder/evaluate/protocols/NAME.yaml``, or any path) with its source cited::

    name: lm-eval-gsm8k
    description: …
    source: EleutherAI/lm-evaluation-harness, lm_eval/tasks/gsm8k/gsm8k.yaml …
    fields:            # values of ponder.evaluate.harness.EvalConfig fields
      prompt_template: "Question: {question}\\nAnswer:"
      shots: 5
      …

``ponder eval MODEL --task T --protocol NAME`` starts from the protocol's fields; ``--config``,
flags and ``--set key=value`` override them (in that order). The run records the protocol, its
file hash and every field that differs from it (``protocol.json``, the report and
``metrics.json``), so a score is never quoted under a protocol it was not run under.

What the fields mean here (beyond the ordinary eval options):

* ``prompt_template``: the user text, with ``{question}`` replaced by the problem (plain
  replacement, not ``str.format``: LaTeX braces stay as written); empty = the bare question.
* ``shots``: that many worked examples from the task's train split (its first ones, in file
  order), each the templated question and the example's reference solution (``meta.solution``,
  else the gold). With the chat template they are user/assistant turns before the question;
  without it the shots and the question are joined by a blank line and each shot's answer follows
  its question after one space (lm-evaluation-harness's ``fewshot_delimiter`` / ``target_delimiter``).
* ``chat_template``: false sends raw text (no template, as lm-evaluation-harness does without
  ``--apply_chat_template``); an endpoint then needs ``--tokenizer`` (raw completions).
* ``extract``: extraction rules, the first decides ``correct`` and the others are reported beside
  it on the same completions (``EXTRACTORS``; empty = the task's own extraction and check).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from ponder.format import Prompt, after_equals, render_text, system_text

PROTOCOL_DIR = Path(__file__).with_name("protocols")


class ProtocolError(ValueError):
    """An unknown or malformed protocol; the message names the file and the field."""


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    source: str
    fields: dict[str, Any]
    path: Path

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def protocol_names() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))


def load_protocol(spec: str, allowed: Iterable[str] | None = None) -> Protocol:
    """The protocol named ``spec`` (a shipped name, or a path to a YAML file); ``allowed``: the
    field names it may set (``ponder.evaluate.harness.PROTOCOL_KEYS``; None: not checked)."""
    path = Path(spec) if spec.endswith((".yaml", ".yml")) else PROTOCOL_DIR / f"{spec}.yaml"
    if not path.is_file():
        raise ProtocolError(f"unknown protocol {spec!r}: choose one of {', '.join(protocol_names())} or give a .yaml file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ProtocolError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ProtocolError(f"{path}: a protocol is a mapping with name, source and fields")
    for key in ("name", "source", "fields"):
        if not raw.get(key):
            raise ProtocolError(f"{path}: missing {key!r} (every protocol cites its source)")
    if not isinstance(raw["fields"], dict):
        raise ProtocolError(f"{path}: 'fields' must map EvalConfig fields to values")
    if allowed is not None:
        known = set(allowed)
        for key in raw["fields"]:
            if key not in known:
                raise ProtocolError(f"{path}: field {key!r} is not a protocol setting; known: {', '.join(sorted(known))}")
    return Protocol(str(raw["name"]), str(raw.get("description", "")).strip(), str(raw["source"]).strip(),
                    dict(raw["fields"]), path)


def resolve(data: dict[str, Any], allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """EvalConfig data with its ``protocol``'s fields underneath (explicit values win)."""
    spec = data.get("protocol")
    if not spec:
        return data
    return {**load_protocol(str(spec), allowed).fields, **data}


def overrides(cfg) -> dict[str, dict[str, Any]]:
    """The fields of ``cfg`` that differ from its protocol: ``{field: {protocol, used}}``."""
    if not cfg.protocol:
        return {}
    p = load_protocol(cfg.protocol)
    out = {}
    for key, value in p.fields.items():
        used = getattr(cfg, key)
        if _norm(used) != _norm(value):
            out[key] = {"protocol": value, "used": used}
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    return float(v)


def record(cfg) -> dict[str, Any] | None:
    """What ``protocol.json`` holds for a run of ``cfg`` (None without a protocol)."""
    if not cfg.protocol:
        return None
    p = load_protocol(cfg.protocol)
    return {"name": p.name, "source": p.source, "description": p.description, "file": str(p.path),
            "sha256": p.sha256, "fields": p.fields, "overrides": overrides(cfg)}


# --------------------------------------------------------------------------- extraction rules


# lm-evaluation-harness gsm8k: exact_match with ignore_case and these regexes_to_ignore, applied
# to both the extracted answer and the target before comparing.
_LM_EVAL_IGNORE = [re.compile(r","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$")]
_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def lm_eval_normalise(s: str) -> str:
    for rx in _LM_EVAL_IGNORE:
        s = rx.sub("", s)
    return s.strip().lower()


def _strict(text: str) -> str | None:
    m = _STRICT.search(text)  # take_first
    return m.group(1) if m else None


def _flexible(text: str) -> str | None:
    found = _FLEXIBLE.findall(text)
    if not found:
        return None
    last = found[-1]  # group_select -1; of the two alternatives the one that matched
    return next((g for g in last if g), None)


@dataclass(frozen=True)
class Extractor:
    """An extraction rule: ``find(answer_text)`` and how the found string is compared with the
    gold (``exact``: lm-evaluation-harness's normalised exact match; else the task's check)."""

    find: Callable[[str], str | None]
    exact: bool
    help: str


EXTRACTORS: dict[str, Extractor] = {
    "lm-eval-strict": Extractor(_strict, True, "the first '#### N' (lm-evaluation-harness gsm8k strict-match)"),
    "lm-eval-flexible": Extractor(_flexible, True, "the last number (lm-evaluation-harness gsm8k flexible-extract)"),
    # a small chat model often answers "33 + 13 = 46" with no stated answer: this reads the value
    # after the last "=", then compares it with the task's own check (integers: 046 == 46)
    "after-equals": Extractor(after_equals, False, "the number after the last '=' (the task's check)"),
    "ponder": Extractor(lambda s: None, False, "the task's own extraction and check (the default)"),
}


def check_extract(names: Sequence[str]) -> None:
    for name in names:
        if name not in EXTRACTORS:
            raise ProtocolError(f"unknown extraction rule {name!r}; known: {', '.join(EXTRACTORS)}")


class ExtractedTask:
    """``task`` judged with another extraction rule: the judge's parse and answer part stay the
    same, ``extract`` and (for exact rules) ``check`` change. The same-form conflict guard is off:
    lm-evaluation-harness's rules pick one match by position, whatever else the text says."""

    conflict_guard = False

    def __init__(self, task, rule: str):
        self.base, self.rule, self._x = task, rule, EXTRACTORS[rule]
        self.name = task.name
        self.answer_fallback = getattr(task, "answer_fallback", None)
        self.needs_subprocess = getattr(task, "needs_subprocess", False)
        self.nothing_found = f"no answer found ({rule})"

    def examples(self, split: str = "test"):
        return self.base.examples(split)

    def gold_verifiable(self, gold: str) -> bool:
        return self.base.gold_verifiable(gold)

    def extract(self, answer_text: str) -> str | None:
        return self._x.find(answer_text)

    def check(self, answer: str, example):
        from ponder.tasks import Verdict

        if not self._x.exact:
            return self.base.check(answer, example)
        ok = lm_eval_normalise(answer) == lm_eval_normalise(str(example["gold"]))
        return Verdict(ok, "exact match" if ok else "not an exact match", answer, {"rule": self.rule})

    def score(self, completion, example):
        from ponder.tasks import judge

        return judge(self, completion, example)


def scoring_task(task, extract: Sequence[str]):
    """The task whose judge decides ``correct``: ``task`` itself or it under ``extract[0]``."""
    check_extract(extract)
    if not extract or extract[0] == "ponder":
        return task
    return ExtractedTask(task, extract[0])


def also_judged(task, extract: Sequence[str], completion, example, template: str = "auto") -> dict[str, dict]:
    """The verdicts of the secondary rules (``extract[1:]``) on one completion:
    ``{rule: {"answer", "correct"}}``; ``task`` is the unwrapped task."""
    from ponder.tasks import judge

    out = {}
    for rule in extract[1:]:
        t = task if rule == "ponder" else ExtractedTask(task, rule)
        v = judge(t, completion, example, template=template)
        out[rule] = {"answer": v.answer, "correct": bool(v.correct)}
    return out


# --------------------------------------------------------------------------- prompts


def _question(template: str, q: str) -> str:
    return template.replace("{question}", q) if template else q


class PromptBuilder:
    """Renders a run's prompts under its protocol fields (built once per run: the shots are read
    once). ``prompts(examples)`` is None when the config asks for nothing beyond ponder's default
    rendering (the bare question under the chat template), so the ordinary path is untouched."""

    def __init__(self, cfg, task, backend):
        self.cfg, self.backend = cfg, backend
        self.plain = not cfg.prompt_template and not cfg.shots and cfg.chat_template
        self.shots: list[tuple[str, str]] = []
        if cfg.shots:
            try:
                pool = list(islice(task.examples("train"), cfg.shots + 1))
            except Exception as e:  # a task without a train split says so in its own words
                raise ProtocolError(f"--shots {cfg.shots} takes worked examples from the train split of "
                                    f"{cfg.task!r}: {e}") from None
            pool = pool[: cfg.shots]
            if len(pool) < cfg.shots:
                raise ProtocolError(f"--shots {cfg.shots}: the train split of {cfg.task!r} has only {len(pool)} examples")
            self.shots = [(_question(cfg.prompt_template, ex["prompt"]), str(ex["meta"].get("solution") or ex["gold"]))
                          for ex in pool]
        if not cfg.chat_template:
            from ponder.generate.backends import prompt

            if prompt(backend, "probe").text is None:
                raise ProtocolError("this protocol sends raw text prompts (chat_template: false): against an endpoint "
                                    "pass --tokenizer (the served model's) so ponder sends /v1/completions")

    def prompts(self, examples: Sequence[dict]) -> list[Prompt] | None:
        if self.plain:
            return None
        return [self.one(ex) for ex in examples]

    def one(self, example: dict) -> Prompt:
        from ponder.generate.backends import prompt

        q = _question(self.cfg.prompt_template, example["prompt"])
        system = self.cfg.system or None
        if self.cfg.chat_template:
            msgs = [m for sq, sa in self.shots for m in ({"role": "user", "content": sq},
                                                       {"role": "assistant", "content": sa})]
            return prompt(self.backend, [*msgs, {"role": "user", "content": q}] if msgs else q, system)
        parts = [f"{sq} {sa}" for sq, sa in self.shots] + [q]
        text = "\n\n".join(parts)
        sys_text = system_text(system)
        if sys_text:
            text = f"{sys_text}\n\n{text}"
        return render_text(text, self.backend.thinking)


__all__ = ["EXTRACTORS", "ExtractedTask", "Protocol", "ProtocolError", "PromptBuilder", "also_judged",
           "check_extract", "load_protocol", "lm_eval_normalise", "overrides", "protocol_names", "record", "resolve",
           "scoring_task"]
