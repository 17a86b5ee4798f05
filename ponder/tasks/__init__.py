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
The ``code`` task is imported lazily from ``ponder.tasks.code`` so the others work without it.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable

from ponder.tasks.base import Example, Task, TaskError, Verdict
from ponder.tasks.countdown import CountdownTask
from ponder.tasks.files import AIME24Task, AMC23Task, GSM8KTask, JsonlTask, Math500Task, MinervaTask
from ponder.tasks.synthetic import AdditionTask, MultiplicationTask, reference_completion

__all__ = [
    "Example", "Verdict", "Task", "TaskError", "TASKS", "get_task", "describe", "parse_spec",
    "reference_completion",
]  # fmt: skip


def _lazy(module: str, attr: str, doc: str) -> Callable[..., Task]:
    """A factory importing ``module.attr`` on first use (its import errors surface then)."""

    def factory(**options: Any) -> Task:
        try:
            cls = getattr(importlib.import_module(module), attr)
        except ImportError as e:
            raise TaskError(f"task implementation {module}.{attr} is not available ({e})") from None
        return cls(**options)

    factory.__doc__ = doc
    return factory


TASKS: dict[str, Callable[..., Task]] = {
    "addition": AdditionTask,
    "multiplication": MultiplicationTask,
    "countdown": CountdownTask,
    "gsm8k": GSM8KTask,
    "math500": Math500Task,
    "aime24": AIME24Task,
    "amc23": AMC23Task,
    "minerva": MinervaTask,
    "jsonl": JsonlTask,
    "code": _lazy("ponder.tasks.code", "CodeTask", "Python programming problems checked by running tests."),
}

# split at commas that start a new "key=" item, so list values may contain commas
_ITEM_SPLIT = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"addition:digits=3,seed=1"`` → ``("addition", {"digits": "3", "seed": "1"})``."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    options: dict[str, str] = {}
    if rest.strip():
        for item in _ITEM_SPLIT.split(rest):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise TaskError(f"task spec {spec!r}: {item.strip()!r} must look like key=value")
            options[key.strip()] = value.strip()
    return name, options


def _factory(name: str) -> Callable[..., Task]:
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def get_task(spec: str, **options: Any) -> Task:
    """The task named by ``spec`` (a name or ``name:key=value,…``), with ``options`` on top."""
    name, spec_options = parse_spec(spec)
    return _factory(name)(**{**spec_options, **options})


def describe(name: str) -> str:
    """One line saying what the task is (the first line of its docstring)."""
    doc = (_factory(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
