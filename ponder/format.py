"""The reasoning format: split a completion into reasoning and answer, extract a final answer.

A reasoning model writes ``<think>…</think>`` and then its answer. In practice completions
arrive in five shapes, and every one must parse (none may raise, whatever the string):

1. ``<think>R</think>A``                       -- the R1 template
2. ``<think>R</think><answer>A</answer>``      -- the R1-Zero template
3. ``R</think>A``                              -- ``<think>`` was pre-filled by the chat template
                                                  (vLLM / DeepSeek-R1-Distill chat templates do this)
4. ``<think>R``                                -- unterminated: all reasoning, no answer
5. ``A``                                       -- plain text, no tags

Final-answer extraction (``extract_answer``) looks, in order, for an ``<answer>`` block,
the last ``\\boxed{…}`` (nested braces allowed), a GSM8K ``#### N`` line, and
"The (final) answer is: …". It is applied to the *answer* part when there is one, so a
``\\boxed{}`` left in the reasoning is not mistaken for the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


@dataclass(frozen=True)
class Parsed:
    """A completion split into its parts.

    reasoning: text inside the think block ("" when there is none).
    answer: text after the think block, with ``<answer>`` tags removed when present.
    think_open: the completion itself contains ``<think>``.
    think_closed: the completion contains ``</think>`` (the reasoning ended).
    answer_tagged: the answer came from an ``<answer>…</answer>`` block.
    """

    reasoning: str
    answer: str
    think_open: bool
    think_closed: bool
    answer_tagged: bool

    @property
    def has_reasoning(self) -> bool:
        """True when the model wrote a (non-blank) think block."""
        return bool(self.reasoning.strip())


_ANSWER_BLOCK = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE), re.S)


def parse(completion: str, prefilled_think: bool = False) -> Parsed:
    """Split ``completion`` into reasoning and answer. Never raises for a ``str``.

    ``prefilled_think``: the prompt already ended in ``<think>``; a completion with neither
    tag is then all reasoning (unterminated) rather than a plain answer.
    """
    if not isinstance(completion, str):
        completion = "" if completion is None else str(completion)
    text = completion
    has_open = THINK_OPEN in text
    close_at = text.find(THINK_CLOSE)
    if close_at >= 0:
        # Shapes 1–3: reasoning runs from the (optional) first <think> to the first </think>.
        head = text[:close_at]
        open_at = head.find(THINK_OPEN)
        reasoning = head[open_at + len(THINK_OPEN):] if open_at >= 0 else head
        rest = text[close_at + len(THINK_CLOSE):]
        closed = True
    elif has_open or prefilled_think:
        # Shape 4: unterminated thinking -- everything after <think> is reasoning.
        open_at = text.find(THINK_OPEN)
        reasoning = text[open_at + len(THINK_OPEN):] if open_at >= 0 else text
        rest = ""
        closed = False
    else:
        # Shape 5: plain text.
        reasoning, rest, closed = "", text, False
    blocks = _ANSWER_BLOCK.findall(rest)
    if blocks:
        answer, tagged = blocks[-1], True
    else:
        answer, tagged = rest, False
    return Parsed(
        reasoning=reasoning.strip(),
        answer=answer.strip(),
        think_open=has_open,
        think_closed=closed,
        answer_tagged=tagged,
    )


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` (or ``\\fbox{…}``), matching nested braces.

    An unbalanced last box (``\\boxed{1 + {2}``) is skipped in favour of an earlier balanced one.
    Also accepts ``\\boxed 5`` (no braces, one token), as MATH solutions sometimes write.
    """
    best: str | None = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                c = text[j]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        best = text[i + 1 : j]
                        break
                j += 1
        else:
            tok = re.match(r"([^\s$}\\]+)", text[i:])
            if tok and m.group(0).endswith(" "):
                best = tok.group(1)
    return best


_HASH = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?\s*(.+?)(?:\s*$|\n)", re.I
)


def extract_answer(text: str) -> str | None:
    """The final answer in a completion, or None.

    Only the answer part is searched (the text after ``</think>``, or the whole text when
    there are no tags): a ``\\boxed{}`` inside the reasoning is a draft, not the answer, and an
    unterminated think block has no answer. Order: ``<answer>`` block (with a ``\\boxed{}``
    inside it unwrapped), last ``\\boxed{}``, GSM8K ``#### N``, "The (final) answer is: …",
    and finally a short bare answer ("42", "x = 3") taken as is.
    """
    if not isinstance(text, str) or not text:
        return None
    p = parse(text)
    part = p.answer
    if not part:
        return None
    boxed = last_boxed(part)
    if p.answer_tagged:
        return (boxed if boxed is not None else part).strip() or None
    if boxed is not None:
        return boxed.strip() or None
    hashes = _HASH.findall(part)
    if hashes:
        return hashes[-1].strip() or None
    said = _ANSWER_IS.findall(part)
    if said:
        return said[-1].strip().rstrip(".").strip().strip("$").strip() or None
    bare = part.rstrip(".").strip()
    if len(bare) <= 64 and "\n" not in bare:
        return bare.strip("$").strip() or None
    return None


# --------------------------------------------------------------------------- prompts

R1_SYSTEM = (
    "You are a helpful assistant. You first think about the reasoning process in your mind "
    "and then provide the user with the answer. The reasoning process is enclosed within "
    "<think> </think> and the answer follows it."
)
R1_ZERO_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think><answer> answer here </answer>."
)

TEMPLATES = ("think", "r1-zero")


def build_messages(question: str, template: str = "think", system: str | None = None) -> list[dict]:
    """Chat messages for ``question``: an optional system turn then the user turn.

    ``template``: "think" (``<think>…</think>answer``) or "r1-zero"
    (``<think>…</think><answer>…</answer>``); it picks the default system prompt.
    ``system=""`` means no system turn at all.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    if system is None:
        system = R1_SYSTEM if template == "think" else R1_ZERO_SYSTEM
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": question})
    return msgs


def build_prompt(
    question: str,
    template: str = "think",
    system: str | None = None,
    tokenizer=None,
    prefill_think: bool = True,
) -> str:
    """A plain-text prompt for a base model, or the tokenizer's chat template when given one.

    With no tokenizer (or one without a chat template) the R1 paper's plain layout is used:
    ``SYSTEM\\nUser: QUESTION\\nAssistant: <think>``. ``prefill_think`` ends the prompt with
    ``<think>`` so the completion starts inside the reasoning (shape 3 of ``parse``).
    """
    msgs = build_messages(question, template, system)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        if prefill_think and not text.rstrip().endswith(THINK_OPEN):
            text += THINK_OPEN
        return text
    sys_part = "".join(m["content"] + "\n" for m in msgs if m["role"] == "system")
    return f"{sys_part}User: {question}\nAssistant: " + (THINK_OPEN if prefill_think else "")


def format_completion(reasoning: str, answer: str, template: str = "think") -> str:
    """The target text a model should write, for SFT data: inverse of ``parse``."""
    if template == "r1-zero":
        return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{answer}"
