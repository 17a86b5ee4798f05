"""Reward functions for GRPO, called exactly as TRL's GRPOTrainer calls them.

Each reward takes ``(completions, **columns)`` and returns one ``float | None`` per completion
(None = not applicable, e.g. no gold answer; TRL then leaves that reward out for that sample).
Unknown keyword arguments (``trainer_state``, ``log_metric``, extra dataset columns) are ignored.
The formulas are in each docstring and in ``docs/rewards.md``; ``ponder rewards list`` prints them.

Every reward registers itself in ``REWARDS`` (``ponder.rewards``): a plain function, or a small
class whose constructor takes the reward's parameters (classes, not closures, so that they
pickle -- TRL's async rollout worker ships reward functions to a child process -- and carry
``__name__`` for TRL's logs). Adding a reward is one function and one ``@REWARDS.register``.

Shared columns (all optional unless a reward says otherwise):

* ``prompts`` -- passed by TRL; a string prompt ending in ``<think>`` means the completion starts
  inside the reasoning; also groups completions.
* ``prefilled_think`` -- bool per sample, for conversational prompts whose chat template appends
  ``<think>`` itself (invisible in the messages).
* ``template`` -- "think" (answer after ``</think>``), "r1-zero" (answer must be in
  ``<answer>…</answer>``) or "auto" (the default: R1-Zero rules apply when answer tags appear).
* ``gold`` (or ``solution``, TRL's and open-r1's name), ``task``, ``meta``, ``id``, ``question``:
  what the judge needs (``ponder.tasks.judge``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import unicodedata
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ponder.format import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, parse
from ponder.registry import Registry
from ponder.rewards import _inputs as inp
from ponder.rewards._inputs import RewardInputError

log = logging.getLogger(__name__)

Rewards = list[float | None]

#: name -> reward function or reward class (a class is its own factory)
REWARDS: Registry = Registry("reward")


# ============================================================================ correctness

#: Threads judging a batch at once when the task's check waits on a subprocess (the code
#: sandbox; see docs/benchmarks.md). The pure-Python math path runs inline.
JUDGE_THREADS = 4


def _task(name: str | None) -> Any:
    """The task ``name`` (``math`` when none is named), built once per process."""
    from ponder.tasks import cached_task  # lazy: tasks import their verifiers

    return cached_task(name or "math")


@functools.lru_cache(maxsize=8192)
def _judge(text: str, start: bool, gold: str, task: str | None, meta_json: str, ex_id: str, question: str,
           template: str) -> tuple[bool | None, str]:
    """``(correct, reason)`` of one completion (cached: accuracy, length and cosine all ask)."""
    from ponder.tasks import judge

    t = _task(task)
    if not t.gold_verifiable(gold):
        return None, f"gold {gold[:40]!r} cannot be verified"
    example = {"id": ex_id, "prompt": question, "gold": gold, "meta": json.loads(meta_json)}
    v = judge(t, text, example, start="inside" if start else "plain", template=template)
    return bool(v.correct), str(v.reason)


def _question(prompt: Any) -> str:
    """The question text from a string prompt or a conversation (its last user turn)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return ""


def correctness(completions: list, kwargs: dict) -> list[tuple[bool | None, str]]:
    """``(correct, reason)`` per completion from the one judge (``ponder.tasks.judge``);
    ``correct`` is None when the sample has no gold, or a gold the verifier cannot read."""
    texts, pre = inp.read(completions, kwargs)
    n = len(texts)
    golds = inp.golds(kwargs, n)
    tasks = inp.column(kwargs, "task", n)
    metas = inp.column(kwargs, "meta", n)
    ids = inp.column(kwargs, "id", n)
    questions = inp.column(kwargs, "question", n)
    prompts = inp.column(kwargs, "prompts", n)
    tmpl = inp.templates(kwargs, "auto", n)
    jobs: list[tuple | None] = []
    for i in range(n):
        if golds[i] is None:
            jobs.append(None)
            continue
        if tasks[i] is not None and not isinstance(tasks[i], str):
            raise RewardInputError(f"column 'task' must hold task names, got {tasks[i]!r}")
        question = questions[i] if isinstance(questions[i], str) else _question(prompts[i])
        meta = json.dumps(inp.meta_dict(metas[i], i), sort_keys=True, default=str)
        jobs.append((texts[i], pre[i], str(golds[i]), tasks[i] or None, meta,
                     "" if ids[i] is None else str(ids[i]), question, tmpl[i]))
    todo = [j for j in jobs if j is not None]
    if len(todo) > 1 and any(_task(j[3]).needs_subprocess for j in todo):
        # checks that wait on a subprocess (the code sandbox): several at once use both cores
        with ThreadPoolExecutor(min(JUDGE_THREADS, len(todo))) as pool:
            verdicts = iter(list(pool.map(lambda j: _judge(*j), todo)))
    else:
        verdicts = iter([_judge(*j) for j in todo])
    return [(None, "no gold answer") if j is None else next(verdicts) for j in jobs]


@REWARDS.register("accuracy")
def accuracy(completions: list, **kwargs: Any) -> Rewards:
    """1.0 if the final answer is correct, 0.0 if not, None without a (verifiable) gold.

    r = 1[judge(completion, gold)], in {0, 1}: ``ponder.tasks.judge``, the same verdict
    evaluation gives -- only the answer part counts (never the reasoning; an unterminated think
    block the model opened has no answer), several disagreeing final answers of one form are
    wrong, and with the R1-Zero template only the ``<answer>`` block counts. Columns: ``gold``
    (or ``solution``), ``task`` (a ``ponder.tasks`` name; default ``math``: ``math_equal``),
    ``meta``, ``id``, ``question``, ``template``, ``prefilled_think``. The reasons go to TRL's
    completions table as column ``accuracy_reason`` when the trainer passes ``log_extra``.
    """
    judged = correctness(completions, kwargs)
    log_extra = kwargs.get("log_extra")
    if callable(log_extra):
        log_extra("accuracy_reason", [reason for _, reason in judged])
    return [None if ok is None else float(ok) for ok, _ in judged]


# ============================================================================ format

class _Reward:
    """Base of the parametrised rewards: a picklable callable with a ``__name__`` for TRL's logs."""

    __name__ = "reward"

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "__name__")
        return f"{self.__name__}({params})"


def _check_template(template: str) -> str:
    if template not in ("auto", "think", "r1-zero"):
        raise ValueError(f"template must be 'auto', 'think' or 'r1-zero', got {template!r}")
    return template


_ONLY_ANSWER_BLOCK = re.compile(r"\s*" + re.escape(ANSWER_OPEN) + r"(.*)" + re.escape(ANSWER_CLOSE) + r"\s*", re.S)


def format_ok(text: str, prefilled: bool, template: str = "auto") -> bool:
    """The strict R1 template check behind ``format_reward`` (see there)."""
    t = text.strip()
    if prefilled:
        if t.count(THINK_OPEN) != 0 or t.count(THINK_CLOSE) != 1:
            return False
        reasoning, rest = t.split(THINK_CLOSE)
    else:
        if not t.startswith(THINK_OPEN) or t.count(THINK_OPEN) != 1 or t.count(THINK_CLOSE) != 1:
            return False
        reasoning, rest = t[len(THINK_OPEN):].split(THINK_CLOSE)
    if not reasoning.strip():
        return False
    if template == "r1-zero" or ANSWER_OPEN in t or ANSWER_CLOSE in t:
        if t.count(ANSWER_OPEN) != 1 or t.count(ANSWER_CLOSE) != 1:
            return False
        m = _ONLY_ANSWER_BLOCK.fullmatch(rest)
        return bool(m and m.group(1).strip())
    return bool(rest.strip())


@REWARDS.register("format")
class Format(_Reward):
    """1.0 iff the completion is exactly one think block with reasoning, then a non-empty answer.

    r = 1[completion matches ``<think>R</think>A``] with R and A non-blank, one ``<think>`` and one
    ``</think>``, nothing but whitespace before ``<think>``. When ``<think>`` was pre-filled the
    completion must be ``R</think>A`` (a second ``<think>`` fails). R1-Zero (``<answer>`` tags
    present, or template "r1-zero"): A must be exactly one ``<answer>…</answer>`` block with
    non-blank content and only whitespace around it. Range {0, 1}. Columns: ``template``,
    ``prefilled_think``, ``prompts``.
    """

    def __init__(self, template: str = "auto", name: str = "format"):
        self.template = _check_template(template)
        self.__name__ = name

    def __call__(self, completions: list, **kwargs: Any) -> Rewards:
        texts, pre = inp.read(completions, kwargs)
        tmpl = inp.templates(kwargs, self.template, len(texts))
        return [float(format_ok(t, p, m)) for t, p, m in zip(texts, pre, tmpl)]


@REWARDS.register("tag_count")
class TagCount(_Reward):
    """Partial format credit: w per tag that appears exactly once, in order (open-r1 ``tag_count_reward``).

    Tags ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` with w = 1/4 (template "r1-zero", the
    open-r1 setting) or ``<think>``, ``</think>`` with w = 1/2 (template "think"). A tag counts when
    it occurs once and after every earlier tag that counts; a pre-filled ``<think>`` counts when the
    completion does not repeat it. Unlike open-r1 (which demands newlines around the tags and
    counts each tag on its own) a closing tag counts only after its opening tag counted and when
    the block between them is non-blank, so ``<think></think>`` cannot collect the reasoning
    credit. r = w * #counted, range [0, 1]. Columns: ``template``, ``prefilled_think``, ``prompts``.
    """

    def __init__(self, template: str = "r1-zero", name: str = "tag_count"):
        if template not in ("think", "r1-zero"):
            raise ValueError(f"tag_count template must be 'think' or 'r1-zero', got {template!r}")
        self.template = template
        self.__name__ = name

    @staticmethod
    def score(text: str, prefilled: bool, template: str) -> float:
        """The tag credit of one completion (``template`` "think" or "r1-zero")."""
        pairs = [(THINK_OPEN, THINK_CLOSE)] + ([(ANSWER_OPEN, ANSWER_CLOSE)] if template == "r1-zero" else [])
        weight = 1.0 / (2 * len(pairs))
        total, last = 0.0, -2  # position of the last tag that counted
        for open_tag, close_tag in pairs:
            n_open = text.count(open_tag) + (1 if prefilled and open_tag == THINK_OPEN else 0)
            open_at = -1 if prefilled and open_tag == THINK_OPEN else text.find(open_tag)
            open_ok = n_open == 1 and open_at > last
            if open_ok:
                total, last = total + weight, open_at
            close_at = text.find(close_tag)
            body = text[open_at + len(open_tag) if open_at >= 0 else 0 : close_at]
            if open_ok and text.count(close_tag) == 1 and close_at > last and body.strip():
                total, last = total + weight, close_at
        return total

    def __call__(self, completions: list, **kwargs: Any) -> Rewards:
        texts, pre = inp.read(completions, kwargs)
        tmpl = inp.templates(kwargs, self.template, len(texts))
        return [self.score(t, p, self.template if m == "auto" else m)
                for t, p, m in zip(texts, pre, tmpl)]


# ============================================================================ language

# Unicode ranges per script. Greek is neither target nor foreign: in reasoning it is maths (π, θ).
SCRIPTS: dict[str, str] = {
    "latin": "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff"
             "\uff21-\uff3a\uff41-\uff5a",
    "cjk": "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002fa1f\u3040-\u30ff\u31f0-\u31ff"
           "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f",
    "cyrillic": "\u0400-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f",
}
_LATIN = re.compile(f"[{SCRIPTS['latin']}]")
_GREEK = re.compile("[\u0370-\u03ff\u1f00-\u1fff]")
_CJK_CHAR = re.compile(f"([{SCRIPTS['cjk']}])")
# Maths markup is neutral: display maths, \begin{env}/\end{env}, and LaTeX command names.
# Inline $…$ is kept (GSM8K reasoning uses $ for dollars); its contents are digits, symbols and
# one-letter variables, which are neutral anyway.
_MATH = re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\\(?:begin|end)\{[^}]*\}|\\[A-Za-z]+", re.S)


def script_share(text: str, script: str) -> float:
    """Share of the words of ``text`` written in ``script``; 0.0 when there are no words.

    Words are runs of letters; each CJK character is a word of its own (Chinese and Japanese do
    not space words). Neutral, not counted: digits, punctuation, maths markup, Greek letters and
    one-letter Latin words (variables such as x; this also drops English "a"/"I", which barely
    moves the share). A word belongs to ``script`` when most of its letters do.
    """
    in_script = re.compile(f"[{SCRIPTS[script]}]")
    text = _MATH.sub(" ", unicodedata.normalize("NFC", text))
    text = _CJK_CHAR.sub(r" \1 ", text)
    counted = hits = 0
    for raw in re.findall(r"[^\W\d_]+", text):
        word = "".join(c for c in raw if c.isalpha() and not _GREEK.match(c))
        if not word or (len(word) == 1 and _LATIN.match(word)):
            continue
        counted += 1
        hits += 2 * len(in_script.findall(word)) > len(word)
    return hits / counted if counted else 0.0


@REWARDS.register("language_consistency")
class LanguageConsistency(_Reward):
    """DeepSeek-R1's language-consistency reward: the share of reasoning words in the target script.

    r = #words of the reasoning in ``script`` / #counted words (see ``script_share`` for what is
    neutral), range [0, 1]. Empty reasoning (or none: no think block) -> 0.0. Scripts are Unicode
    ranges: "latin" (English and other Latin-script languages), "cjk" (Chinese characters, kana,
    hangul), "cyrillic"; a script stands in for a language, so French counts as "latin".
    Columns: ``prefilled_think``, ``prompts``.
    """

    def __init__(self, script: str = "latin", name: str = "language_consistency"):
        if script not in SCRIPTS:
            raise ValueError(f"unknown script {script!r}; choose one of {', '.join(SCRIPTS)}")
        self.script = script
        self.__name__ = name

    def __call__(self, completions: list, **kwargs: Any) -> Rewards:
        texts, pre = inp.read(completions, kwargs)
        return [script_share(parse(t, p).reasoning, self.script) for t, p in zip(texts, pre)]


# ============================================================================ length

@REWARDS.register("length")
def length(completions: list, **kwargs: Any) -> Rewards:
    """Kimi k1.5 length reward, within each group of completions of the same prompt.

    λ = 0.5 − (len − min_len) / (max_len − min_len) over the group (λ = 0 when all lengths are
    equal); a correct completion gets λ, a wrong one min(0, λ), one without gold None. Range
    [−0.5, 0.5]. len is tokens when TRL passes ``completion_ids``, else characters. Columns:
    ``prompts`` (required: it defines the groups) and everything ``accuracy`` reads.
    """
    judged = correctness(completions, kwargs)
    n = len(judged)
    sizes = inp.lengths(inp.read(completions, kwargs)[0], kwargs)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(inp.group_keys(kwargs, n)):
        groups[key].append(i)
    out: Rewards = [None] * n
    for members in groups.values():
        lo, hi = min(sizes[i] for i in members), max(sizes[i] for i in members)
        for i in members:
            ok = judged[i][0]
            if ok is None:
                continue
            lam = 0.0 if hi == lo else 0.5 - (sizes[i] - lo) / (hi - lo)
            out[i] = lam if ok else min(0.0, lam)
    return out


@REWARDS.register("overlong")
class Overlong(_Reward):
    """DAPO soft overlong punishment (Yu et al. 2025, eq. 13).

    r = 0 if len ≤ L_max − L_cache; ((L_max − L_cache) − len) / L_cache if len ≤ L_max; −1 beyond.
    Range [−1, 0]. len is tokens when TRL passes ``completion_ids`` (set ``max_len`` to
    ``GRPOConfig.max_completion_length``), else characters. Reads no dataset column.
    """

    def __init__(self, max_len: int = 4096, cache: int = 1024, name: str = "overlong"):
        if max_len <= 0 or not 0 <= cache <= max_len:
            raise ValueError(f"overlong needs max_len > 0 and 0 <= cache <= max_len, got {max_len=}, {cache=}")
        self.max_len, self.cache = int(max_len), int(cache)
        self.__name__ = name

    def value(self, size: int) -> float:
        start = self.max_len - self.cache
        if size <= start:
            return 0.0
        return (start - size) / self.cache if size <= self.max_len else -1.0

    def __call__(self, completions: list, **kwargs: Any) -> Rewards:
        texts, _ = inp.read(completions, kwargs)
        return [self.value(s) for s in inp.lengths(texts, kwargs)]


@REWARDS.register("cosine")
class Cosine(_Reward):
    """Cosine length-scaled accuracy (Yeo et al. 2025, "Demystifying Long CoT", as in open-r1).

    r = v_min + ½(v_max − v_min)(1 + cos(π · min(len / max_len, 1))) with (v_min, v_max) =
    (min_value_correct, max_value_correct) for a correct answer (shorter is better) and
    (max_value_wrong, min_value_wrong) for a wrong one (longer is penalised less); None without
    gold. Defaults: correct in [0.5, 1], wrong in [−1, −0.5], max_len 1000 (open-r1's). len is
    tokens with ``completion_ids``, else characters (open-r1 uses characters). Columns: as accuracy.
    """

    def __init__(self, max_len: int = 1000, min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                 min_value_correct: float = 0.5, max_value_correct: float = 1.0, name: str = "cosine"):
        if max_len <= 0:
            raise ValueError(f"cosine needs max_len > 0, got {max_len}")
        self.max_len = int(max_len)
        self.min_value_wrong, self.max_value_wrong = float(min_value_wrong), float(max_value_wrong)
        self.min_value_correct, self.max_value_correct = float(min_value_correct), float(max_value_correct)
        self.__name__ = name

    def value(self, correct: bool, size: int) -> float:
        cos = math.cos(math.pi * min(size / self.max_len, 1.0))
        lo, hi = ((self.min_value_correct, self.max_value_correct) if correct
                  else (self.max_value_wrong, self.min_value_wrong))
        return lo + 0.5 * (hi - lo) * (1.0 + cos)

    def __call__(self, completions: list, **kwargs: Any) -> Rewards:
        judged = correctness(completions, kwargs)
        sizes = inp.lengths(inp.read(completions, kwargs)[0], kwargs)
        return [None if ok is None else self.value(ok, s) for (ok, _), s in zip(judged, sizes)]


__all__ = [
    "REWARDS", "RewardInputError", "accuracy", "length", "Format", "TagCount", "LanguageConsistency", "Overlong",
    "Cosine", "format_ok", "script_share", "correctness",
]
