"""Reading JSONL files the one way ponder does: objects per line, errors that name ``file:line``.

Every loader of user data (task files, code problems, SFT pairs, the ``verify``/``tasks score``
CLIs) goes through ``json_objects`` so a malformed line reads the same everywhere.
"""

from __future__ import annotations

import json
import os
from typing import Iterator


def json_objects(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of ``path``, streamed.

    A line that is not JSON, or not a JSON object, raises ``error("<path>:<n>: …")``; the caller
    checks the file exists first (its message knows what the file is for).
    """
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            yield n, row
