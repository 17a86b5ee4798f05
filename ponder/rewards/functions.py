"""Reward functions for GRPO, called exactly as TRL's GRPOTrainer calls them.

Each reward takes ``(completions, **columns)`` and returns one ``float | None`` per completion
(None = not applicable, e.g. no gold answer; TRL then leaves that reward out for that sample).
Unknown keyword arguments (``trainer_state``, ``log_metric``, extra dataset columns) are ignored.
The formulas are in each docstring and in ``docs/rewards.md``.

Shared columns (all optional unless a reward says otherwise):

* ``prompts`` -- passed by TRL; used to detect a pre-filled ``<think>`` and to group completions.
* ``prefilled_think`` -- bool per sample: the prompt ended with ``<think>``, so the completion
  starts inside the reasoning. Without it a string prompt ending in ``<think>`` or a completion of
  the shape "R</think>A" is recognised; a chat template that appends ``<think>`` is not.
* ``template`` -- "think" (answer after ``</think>``), "r1-zero" (answer must be in
  ``<answer>…</answer>``) or "auto" (the default: R1-Zero rules apply when answer tags appear).

Parametrised rewards are small classes (not closures) so that they pickle -- TRL's async rollout
worker ships reward functions to a child process -- and carry ``__name__`` for TRL's logs.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ponder.format import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from ponder.rewards import _inputs as inp
from ponder.rewards._inputs import RewardInputError

Rewards = list[float | None]


# ============================================================================ correctness

_ANSWER_BLOCK = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE), re.S)
_HASH_LINE = re.compile(r"####\s*([^\n]+)")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*")


def _with_open_think(text: str, prefilled: bool) -> str:
    """Put the pre-filled ``<think>`` back, so every parser sees the completion as the model wrote it."""
    return THINK_OPEN + text if prefilled and THINK_OPEN not in text else text


def _answer_part(text: str) -> str:
    """Everything after the first ``</think>``; "" for unterminated reasoning (it has no answer)."""
    close = text.find(THINK_CLOSE)
    if close >= 0:
        return text[close + len(THINK_CLOSE):]
    return "" if THINK_OPEN in text else text


def _all_boxed(text: str) -> list[str]:
    """Contents of every balanced ``\\boxed{…}`` / ``\\fbox{…}`` in ``text``, in order."""
    out = []
    for m in _BOX.finditer(text):
        i = m.end()
        if i >= len(text) or text[i] != "{":
            continue
        depth = 0
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                out.append(text[i + 1 : j])
                break
    return out


def _canon(value: str) -> str:
    """Spelling-insensitive form of a final answer, for counting distinct answers."""
    v = value.strip()
    boxed = _all_boxed(v)
    if boxed and v.startswith("\\"):  # "<answer>\boxed{3}</answer>" says 3
        v = boxed[-1]
    v = re.sub(r"^#+\s*", "", v)
    v = re.sub(r"\\(?:left|right|displaystyle)|\\[,;:! ]|\s+|\$", "", v)
    v = v.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").rstrip(".")
    return re.sub(r"^[a-zA-Z]=(?=.)", "", v)  # "x=5" and "5" are one answer


def final_answers(text: str) -> list[str]:
    """Every final answer the answer part states: ``<answer>`` blocks, ``\\boxed{}``, ``#### N`` lines.

    ``text`` must already carry its ``<think>`` (see ``_with_open_think``). Boxes and ``####``
    lines inside the reasoning are drafts and are not counted.
    """
    part = _answer_part(text)
    blocks = _ANSWER_BLOCK.findall(part)
    outside = _ANSWER_BLOCK.sub(" ", part)
    found = [b for b in blocks if b.strip()] + _all_boxed(outside) + _HASH_LINE.findall(outside)
    return [f.strip() for f in found if f.strip()]


def _conflicting(answers: list[str]) -> bool:
    """True when the answers do not all agree (string form first, then ``math_equal``)."""
    distinct = list(dict.fromkeys(_canon(a) for a in answers))
    if len(distinct) < 2:
        return False
    from ponder.verify.math import math_equal  # lazy: sympy is slow to import

    return any(not math_equal(distinct[0], other) for other in distinct[1:])


_TASKS: dict[str, Any] = {}
#: Tasks whose verifier runs a subprocess per completion: a batch is judged from a thread pool.
_PARALLEL_TASKS = frozenset({"code"})
#: Threads judging such a batch at once (sandboxed runs; see docs/benchmarks.md).
JUDGE_THREADS = 4


def _task(name: str) -> Any:
    """The task ``name`` (built once per process: tasks may load data or compile verifiers)."""
    if name not in _TASKS:
        from ponder.tasks import get_task  # lazy: tasks import their verifiers

        _TASKS[name] = get_task(name)
    return _TASKS[name]


@functools.lru_cache(maxsize=8192)
def _judge(text: str, gold: str, task: str | None, meta_json: str, ex_id: str, question: str,
           template: str) -> tuple[bool, str]:
    """``(correct, reason)`` for one completion (cached: accuracy, length and cosine all ask)."""
    answers = final_answers(text)
    if _conflicting(answers):
        return False, f"conflicting final answers: {' | '.join(a[:30] for a in answers)}"
    if template == "r1-zero" and not _ANSWER_BLOCK.search(_answer_part(text)):
        return False, "no <answer> block (r1-zero template)"
    if task:
        example = {"id": ex_id, "prompt": question, "gold": gold, "meta": json.loads(meta_json)}
        verdict = _task(task).score(text, example)
        return bool(verdict.correct), str(verdict.reason)
    from ponder.format import extract_answer
    from ponder.verify.math import math_equal

    answer = extract_answer(text)
    if answer is None:
        return False, "no answer found"
    ok = bool(math_equal(gold, answer))
    return ok, "equal" if ok else f"not equal: {answer[:40]!r}"


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
    """``(correct, reason)`` per completion; ``correct`` is None when the sample has no gold."""
    texts, pre = inp.read(completions, kwargs)
    n = len(texts)
    golds = inp.column(kwargs, "gold", n)
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
        meta = json.dumps(inp.meta_dict(metas[i], i), sort_keys=True, default=str)
        question = questions[i] if isinstance(questions[i], str) else _question(prompts[i])
        jobs.append((_with_open_think(texts[i], pre[i]), str(golds[i]), tasks[i] or None, meta,
                     "" if ids[i] is None else str(ids[i]), question, tmpl[i]))
    todo = [j for j in jobs if j is not None]
    if len(todo) > 1 and any(j[2] and j[2].partition(":")[0] in _PARALLEL_TASKS for j in todo):
        # verifiers that wait on a subprocess (the code sandbox): several at once use both
        # cores; the pure-Python math path would only pay the thread overhead
        with ThreadPoolExecutor(min(JUDGE_THREADS, len(todo))) as pool:
            verdicts = iter(list(pool.map(lambda j: _judge(*j), todo)))
    else:
        verdicts = iter([_judge(*j) for j in todo])
    return [(None, "no gold answer") if j is None else next(verdicts) for j in jobs]


def accuracy(completions: list, **kwargs: Any) -> Rewards:
    """1.0 if the final answer is correct, 0.0 if not, None when the sample has no ``gold``.

    r = 1[verifier(answer part, gold)], in {0, 1}. Columns: ``gold`` (required), ``task`` (a
    ``ponder.tasks`` name: its ``score`` decides, with ``meta``, ``id``, ``question`` rebuilt into an
    ``Example``; without it ``math_equal(gold, extract_answer(completion))``), ``template``,
    ``prefilled_think``. Guards, applied before the verifier: several final answers that
    disagree (``<answer>3</answer><answer>4</answer>``, two different ``\\boxed{}``) -> 0; only the
    answer part counts (boxes inside the reasoning, unterminated reasoning -> no answer); with the
    R1-Zero template only the ``<answer>`` block counts. The reasons go to TRL's completions
    table as column ``accuracy_reason`` when the trainer passes ``log_extra``.
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


def make_format(template: str = "auto", name: str = "format") -> Format:
    """A format reward; ``template="r1-zero"`` requires the ``<answer>`` block even when absent."""
    return Format(template, name)


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


def make_tag_count(template: str = "r1-zero", name: str = "tag_count") -> TagCount:
    """A tag-count reward for ``template`` ("r1-zero": 4 tags, "think": 2 tags)."""
    return TagCount(template, name)


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
        from ponder.format import parse

        texts, pre = inp.read(completions, kwargs)
        return [script_share(parse(t, prefilled_think=p).reasoning, self.script) for t, p in zip(texts, pre)]


def make_language_consistency(script: str = "latin", name: str = "language_consistency") -> LanguageConsistency:
    """A language-consistency reward for ``script`` ("latin", "cjk", "cyrillic")."""
    return LanguageConsistency(script, name)


# ============================================================================ length

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


def make_overlong(max_len: int = 4096, cache: int = 1024, name: str = "overlong") -> Overlong:
    """A soft overlong punishment with budget ``max_len`` and a linear zone of ``cache``."""
    return Overlong(max_len, cache, name)


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


def make_cosine(max_len: int = 1000, min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                min_value_correct: float = 0.5, max_value_correct: float = 1.0, name: str = "cosine") -> Cosine:
    """A cosine length-scaled accuracy reward (see ``Cosine``)."""
    return Cosine(max_len, min_value_wrong, max_value_wrong, min_value_correct, max_value_correct, name)


# Default instances, registered in ``ponder.rewards.REWARDS``.
format_reward = make_format()
tag_count = make_tag_count()
language_consistency = make_language_consistency()
overlong = make_overlong()
cosine = make_cosine()

FACTORIES: dict[str, Callable[..., Callable]] = {
    "format": make_format,
    "tag_count": make_tag_count,
    "language_consistency": make_language_consistency,
    "overlong": make_overlong,
    "cosine": make_cosine,
}

__all__ = [
    "RewardInputError", "accuracy", "length", "format_reward", "tag_count", "language_consistency",
    "overlong", "cosine", "make_format", "make_tag_count", "make_language_consistency", "make_overlong",
    "make_cosine", "Format", "TagCount", "LanguageConsistency", "Overlong", "Cosine", "FACTORIES",
    "final_answers", "format_ok", "script_share", "correctness",
]
