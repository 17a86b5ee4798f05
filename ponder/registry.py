"""One registry type for everything a user can name on the command line: rewards, tasks, strategies.

    REWARDS = Registry("reward")

    @REWARDS.register("brevity")          # or REWARDS.register("brevity", brevity) in one line
    def brevity(completions, **kw): ...

    REWARDS.get("brevity")                # the registered object
    REWARDS.get("mypkg.rewards:brevity")  # a user's own, by dotted path (module:attr or module.attr)

A registered class is its own factory: ``REWARDS.build("cosine", max_len=2048)`` calls it with
the parameters. Names are the CLI's and the recipes'; a dotted path never needs registering, so
a user's reward, task or strategy works everywhere a built-in one does.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
_DOTTED = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*|\.[A-Za-z_]\w*)$")


class RegistryError(KeyError, ValueError):
    """An unknown name or a dotted path that does not load; the message says which and why."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def load_dotted(path: str, kind: str = "object") -> Any:
    """``module:attr`` or ``module.attr`` -> the attribute (the module is imported)."""
    if ":" in path:
        module, _, attr = path.partition(":")
    else:
        module, _, attr = path.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise RegistryError(f"{kind} {path!r}: cannot import module {module!r} ({e})") from None
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise RegistryError(f"{kind} {path!r}: module {module!r} has no attribute {attr!r}") from None


class Registry(Generic[T]):
    """Names -> objects of one kind (see the module docstring)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Any:
        """``register(name, obj)`` registers at once; ``@register(name)`` decorates."""
        def add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = o
            return o

        return add(obj) if obj is not None else add

    def is_dotted(self, name: str) -> bool:
        return name not in self._items and bool(_DOTTED.match(name)) and ("." in name or ":" in name)

    def get(self, name: str) -> T:
        """The object called ``name``, or loaded from a dotted path."""
        if name in self._items:
            return self._items[name]
        if self.is_dotted(name):
            return load_dotted(name, self.kind)
        raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self._items)} "
                            f"(or a dotted path module:attr to your own)")

    def build(self, name: str, **params: Any) -> Any:
        """``get(name)`` called with ``params`` (a registered class is its own factory)."""
        obj: Any = self.get(name)
        if not callable(obj):
            raise RegistryError(f"{self.kind} {name!r} is not callable")
        return obj(**params)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def items(self):
        return self._items.items()

    def names(self) -> list[str]:
        return list(self._items)


Factory = Callable[..., Any]
