"""File-based math tasks: GSM8K, MATH-500, AIME 2024, AMC 2023, Minerva, and any JSONL file.

Each benchmark is a JSONL file with its own field names (they are kept as the sets
circulate); a ``Fields`` record says which field is the prompt, which the gold answer (and
how to extract it), which the id, and which fields to keep in ``meta``:

========  ==========  ====================================  ==============  =========================
task      prompt      gold                                  id              meta
========  ==========  ====================================  ==============  =========================
gsm8k     question    ``#### N`` of answer (commas dropped)  index in split  solution (= answer)
math500   problem     answer                                unique_id       subject, level, solution
aime24    problem     answer as an integer ("025" → "25")   id              solution, url
amc23     problem     answer (27.0 → "27")                  id              url
minerva   problem     last ``\\boxed{}`` of solution         idx             type, solution
========  ==========  ====================================  ==============  =========================

Every example's meta also has ``source`` (the file) and ``line`` (1-based line number).

Paths. By default a benchmark reads ``<repo>/../shared/data/<dir>/{split}.jsonl`` (only GSM8K
has a train split). ``path=`` overrides it; a path containing ``{split}`` serves every split,
otherwise it holds the one split named by the ``split`` option (default "test").
Nothing is read until ``examples()`` is called, so ``get_task(name)`` is free.

Errors. A missing file, a line that is not a JSON object, a missing required field, a gold
that cannot be extracted or a repeated id raises ``TaskError`` naming the file, the line and
the field. Blank lines are skipped.

Scoring (``ponder.tasks.judge``) extracts the final answer with ``ponder.format.final_answer``
(GSM8K and AIME fall back to the last number when no answer is stated) and compares it with
``ponder.verify.math.math_equal`` (numeric, LaTeX and symbolic equivalence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ponder.config import option
from ponder.format import last_boxed
from ponder.io import json_objects
from ponder.tasks.base import BaseTask, Example, TaskError, Verdict
from ponder.tasks.toolkit import FileOptions, FileTask, check_split

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GOLD_EXTRACTS = (None, "boxed", "gsm8k", "integer")


@dataclass(frozen=True)
class Fields:
    """How a file's rows become examples."""

    prompt: str
    gold: str
    id: str | None = None  # None: the example's index within its split
    gold_extract: str | None = None  # None, "boxed", "gsm8k" or "integer"
    meta: tuple[str, ...] = ()
    solution: str | None = None  # field copied to meta["solution"] (the reference)


def gold_from(value: Any, extract: str | None) -> str:
    """The gold answer string from a field value; raises ``ValueError`` when there is none.

    Integral floats become integers (AMC's ``27.0`` → ``"27"``); ``"gsm8k"`` takes the
    ``#### N`` value without thousands separators; ``"boxed"`` the last ``\\boxed{}``;
    ``"integer"`` requires an integer and drops leading zeros (AIME's ``"025"`` → ``"25"``).
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string or number, got {type(value).__name__}")
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        text = str(value).strip()
    if extract == "gsm8k":
        m = re.search(r"####\s*(.+?)\s*$", text)
        if not m:
            raise ValueError("no '#### N' final answer")
        text = m.group(1).replace(",", "").strip()
    elif extract == "boxed":
        boxed = last_boxed(text)
        if boxed is None:
            raise ValueError("no \\boxed{} answer")
        text = boxed.strip()
    elif extract == "integer":
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"{text!r} is not an integer")
        text = str(int(text))
    if not text:
        raise ValueError("empty answer")
    return text


def read_examples(path: Path, fields: Fields, id_prefix: str, split: str) -> Iterator[Example]:
    """Examples from one JSONL file, streamed; errors name the file, line and field.

    A missing file is reported at once; line errors when the iteration reaches them.
    """
    if not path.is_file():
        raise TaskError(f"{path}: no such file ({split} split)")
    return _rows(path, fields, id_prefix, split)


def _rows(path: Path, fields: Fields, id_prefix: str, split: str) -> Iterator[Example]:
    seen: dict[str, int] = {}
    index = 0
    for n, row in json_objects(path, TaskError):
        where = f"{path}:{n}"
        required = [fields.prompt, fields.gold] + ([fields.id] if fields.id else [])
        for name in required:
            if name not in row:
                raise TaskError(f"{where}: missing field {name!r}")
        if not isinstance(row[fields.prompt], str) or not row[fields.prompt].strip():
            raise TaskError(f"{where}: field {fields.prompt!r} must be a non-empty string")
        try:
            gold = gold_from(row[fields.gold], fields.gold_extract)
        except ValueError as e:
            raise TaskError(f"{where}: field {fields.gold!r}: {e}") from None
        raw_id = str(row[fields.id]) if fields.id else f"{split}/{index}"
        ex_id = f"{id_prefix}/{raw_id}" if id_prefix else raw_id
        if ex_id in seen:
            raise TaskError(f"{where}: duplicate id {ex_id!r} (first on line {seen[ex_id]})")
        seen[ex_id] = n
        meta: dict[str, Any] = {k: row[k] for k in fields.meta if k in row}
        if fields.solution and fields.solution in row:
            meta["solution"] = row[fields.solution]
        meta.update(source=str(path), line=n)
        yield {"id": ex_id, "prompt": row[fields.prompt], "gold": gold, "meta": meta}
        index += 1


def math_gold_verifiable(gold: str) -> bool:
    """True when the math verifier can read ``gold`` at all (``math_readable``). An unreadable
    gold (prose, malformed LaTeX) would make every answer "wrong"; rewards give such samples None
    instead, as TRL's accuracy reward does."""
    from ponder.verify.math import math_readable

    return math_readable(str(gold))


def check_math(answer: str, example: Example) -> Verdict:
    """Math equivalence of an extracted final answer with the gold answer."""
    from ponder.verify.math import math_equal  # lazy: sympy/math-verify load only when scoring

    gold = str(example["gold"])
    if math_equal(gold, answer):
        return Verdict(True, "equal", answer)
    return Verdict(False, f"not equal to {gold}", answer)


@dataclass
class JsonlOptions(FileOptions):
    """Options of ``jsonl``: any JSONL file of math problems."""

    prompt_field: str = option("question", "Field holding the problem text.")
    gold_field: str = option("answer", "Field holding the gold answer.")
    id_field: str | None = option(None, "Field holding a unique id (default: the example's index).")
    gold_extract: str | None = option(None, "How to get the gold from its field: none, boxed, gsm8k or integer.")
    meta_fields: list[str] = option([], "Fields copied into meta when present (comma-separated on the CLI).")
    answer_fallback: str | None = option(None, "Extraction fallback when no answer is stated: number, last_number or after_equals.")

    def __post_init__(self) -> None:
        if self.gold_extract in ("", "none"):
            self.gold_extract = None
        if self.gold_extract not in GOLD_EXTRACTS:
            raise TaskError(f"gold_extract must be one of none, boxed, gsm8k, integer; got {self.gold_extract!r}")
        super().__post_init__()


class _MathChecked:
    """Scored by math equivalence of the final answer with the gold (``math_equal``)."""

    def check(self, answer: str, example: Example) -> Verdict:
        """Math equivalence of the final answer with the gold (``math_equal``)."""
        return check_math(answer, example)

    def gold_verifiable(self, gold: str) -> bool:
        return math_gold_verifiable(str(gold))


class JsonlTask(_MathChecked, FileTask):
    """Any JSONL file of problems with gold answers, scored by math equivalence."""

    name = "jsonl"
    Options = JsonlOptions
    options: JsonlOptions

    def __init__(self, path: str | Path | None = None, **options: Any) -> None:
        super().__init__(path, **options)
        self.answer_fallback = self.options.answer_fallback

    def fields(self) -> Fields:
        o = self.options
        return Fields(o.prompt_field, o.gold_field, o.id_field, o.gold_extract, tuple(o.meta_fields))

    def path(self, split: str) -> Path:
        """The file that holds ``split``."""
        check_split(split, self.name)
        if self.options.path is None:
            raise TaskError("jsonl: no path given (e.g. jsonl:path=problems.jsonl,prompt_field=question)")
        return self.options.file(split, self.name)

    def examples(self, split: str = "test") -> Iterator[Example]:
        """The file's examples in file order (read lazily)."""
        return read_examples(self.path(split), self.fields(), "", split)


@dataclass
class MathOptions:
    """``math`` takes no options."""


class MathTask(_MathChecked, BaseTask):
    """Free-form math answers checked by math equivalence (no data of its own: the default
    verifier of rewards and ``ponder parse`` when no task is named)."""

    name = "math"
    Options = MathOptions

    def __init__(self, **options: Any) -> None:
        if options:
            raise TaskError(f"math takes no options, got {', '.join(options)}")

    def examples(self, split: str = "test") -> Iterator[Example]:
        raise TaskError("math has no data: use jsonl:path=… or a benchmark (gsm8k, math500, …)")


@dataclass
class BenchmarkOptions(FileOptions):
    """Options of the built-in benchmarks."""

    path: str | None = option(None, "JSONL file instead of ../shared/data/<dir>/{split}.jsonl; may contain {split}.")


class _BenchmarkTask(_MathChecked, FileTask):
    """A known benchmark: fixed fields, default path in the shared data directory."""

    name = ""
    dirname = ""
    FIELDS: Fields
    Options = BenchmarkOptions
    options: BenchmarkOptions

    def path(self, split: str) -> Path:
        """The file that holds ``split``."""
        check_split(split, self.name)
        if self.options.path is None:
            return DATA_DIR / self.dirname / f"{split}.jsonl"
        return self.options.file(split, self.name)

    def examples(self, split: str = "test") -> Iterator[Example]:
        """The benchmark's examples in file order (read lazily)."""
        path = self.path(split)
        if self.options.path is None and not path.is_file() and (path.parent / "test.jsonl").is_file():
            raise TaskError(f"{self.name} has no {split} split ({path} does not exist)")
        return read_examples(path, self.FIELDS, self.name, split)


class GSM8KTask(_BenchmarkTask):
    """GSM8K grade-school word problems (train 7,473 / test 1,319); integer answers."""

    name, dirname = "gsm8k", "gsm8k"
    answer_fallback = "number"  # lm-evaluation-harness's flexible extraction: the last number
    FIELDS = Fields("question", "answer", None, "gsm8k", (), solution="answer")


class Math500Task(_BenchmarkTask):
    """MATH-500 competition problems (500, test only); LaTeX answers."""

    name, dirname = "math500", "math500"
    FIELDS = Fields("problem", "answer", "unique_id", None, ("subject", "level", "unique_id"), solution="solution")


class AIME24Task(_BenchmarkTask):
    """AIME 2024 (30 problems, test only); integer answers 0–999."""

    name, dirname = "aime24", "aime24"
    answer_fallback = "number"  # integer answers
    FIELDS = Fields("problem", "answer", "id", "integer", ("url",), solution="solution")


class AMC23Task(_BenchmarkTask):
    """AMC 12 2023 (40 problems, test only); numeric answers."""

    name, dirname = "amc23", "amc23"
    FIELDS = Fields("problem", "answer", "id", None, ("url",))


class MinervaTask(_BenchmarkTask):
    """Minerva OCW science and engineering problems (272, test only); gold = solution's \\boxed{}."""

    name, dirname = "minerva", "minerva_math"
    FIELDS = Fields("problem", "solution", "idx", "boxed", ("type",), solution="solution")
