"""Tasks = data + verifier, and the registry that names them.

``get_task(spec, **options)`` builds a task from a name or a spec string::

    get_task("addition")                                   # default options
    get_task("addition", digits=3)                         # keyword options
    get_task("addition:digits=3,n_test=100")               # the same from a CLI string
    get_task("jsonl:path=foo.jsonl,prompt_field=q,meta_fields=subject,level")

Spec grammar: ``name`` or ``name:key=value,key=value``. Values are strings coerced to the
option's type (``ponder.config.coerce``); a comma followed by something that is not
``key=`` continues the previous value, so list options take comma-separated items.
Keyword options override the spec's. Unknown names and options are a ``TaskError`` that
lists the valid ones.

Building a task is cheap: no file is read and nothing is generated until ``examples()``,
and ``score`` depends only on the example -- so a reward function may call
``get_task(name).score(completion, example)`` per completion.

Each task's options are a dataclass (``TASKS[name].Options``) with help text per field.
A task of your own needs no registration: name it by dotted path, ``mypkg.tasks:Quiz`` or
``mypkg.tasks:Quiz:level=2`` (a class with the ``Task`` methods, usually a ``BaseTask``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ponder.registry import Registry, RegistryError
from ponder.tasks.base import BaseTask, Example, Task, TaskError, Verdict, conflicting, judge
from ponder.tasks.code import CodeTask
from ponder.tasks.countdown import CountdownTask
from ponder.tasks.files import AIME24Task, AMC23Task, GSM8KTask, JsonlTask, Math500Task, MathTask, MinervaTask
from ponder.tasks.humaneval import HumanEvalTask
from ponder.tasks.synthetic import AdditionTask, MultiplicationTask

__all__ = [
    "BaseTask", "Example", "Verdict", "Task", "TaskError", "TASKS", "cached_task", "conflicting", "describe",
    "get_task", "judge", "parse_spec",
]  # fmt: skip

#: name -> task class (its own factory; ``TASKS[name].Options`` lists its options)
TASKS: Registry = Registry("task")
for _cls in (AdditionTask, MultiplicationTask, CountdownTask, GSM8KTask, Math500Task, AIME24Task, AMC23Task,
             MinervaTask, JsonlTask, MathTask, CodeTask, HumanEvalTask):
    TASKS.register(_cls.name, _cls)

# split at commas that start a new "key=" item, so list values may contain commas
_ITEM_SPLIT = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"addition:digits=3,seed=1"`` → ``("addition", {"digits": "3", "seed": "1"})``."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    head = rest.split(":", 1)[0]
    if name not in TASKS and head.strip().isidentifier():  # a dotted path module:attr, then its options
        name, rest = f"{name}:{head.strip()}", rest[len(head) + 1:]
    options: dict[str, str] = {}
    if rest.strip():
        for item in _ITEM_SPLIT.split(rest):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise TaskError(f"task spec {spec!r}: {item.strip()!r} must look like key=value")
            options[key.strip()] = value.strip()
    return name, options


def _factory(name: str):
    try:
        return TASKS.get(name)
    except RegistryError as e:
        raise TaskError(str(e)) from None


def get_task(spec: str, **options: Any) -> Task:
    """The task named by ``spec`` (a name or ``name:key=value,…``), with ``options`` on top."""
    name, spec_options = parse_spec(spec)
    return _factory(name)(**{**spec_options, **options})


@functools.lru_cache(maxsize=64)
def cached_task(spec: str) -> Task:
    """``get_task(spec)`` built once per process (rewards judge many completions per task)."""
    return get_task(spec)


def describe(name: str) -> str:
    """One line saying what the task is (the first line of its docstring)."""
    doc = (_factory(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
