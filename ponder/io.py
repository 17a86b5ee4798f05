"""Files the one way ponder writes and reads them: atomic writes, append-only JSONL that survives a
kill, JSONL reading whose errors name ``file:line``, and the resume check of a run directory.

* ``write_json_atomic`` / ``write_text_atomic``: a temp file, then one rename -- readers never
  see half a file.
* ``RecordWriter``: appends one complete line per ``write`` and flushes it, so a killed run keeps
  every record whose line was complete.
* ``read_records``: the complete lines of such a file; a torn last line (a kill mid-write) is
  dropped, and with ``repair`` cut off so appends start on a fresh line; a bad line elsewhere is
  an error naming it.
* ``json_objects``: user data (task files, code problems, SFT pairs, CLI inputs), one object a
  line, streamed; ``parse_object`` the same check for one text (``--extra-body``).
* ``check_resume``: a run directory's saved config against the new one; the first field that
  differs is named ("--resume: n was 4 in runs/x, now 8").
* ``package_file``: a data file an installed wheel ships, found without importing the package.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping


def package_file(package: str, filename: str) -> Path | None:
    """``filename`` inside the installed ``package``, or None when it is not installed. The
    location comes from the import machinery's spec, so a package whose ``__init__`` would fail
    (it imports what ponder does not install) still serves its data."""
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / filename
        if path.is_file():
            return path
    return None


def json_objects(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of ``path``, streamed (a ``.gz`` path is
    read through gzip, as benchmark files ship).

    A line that is not JSON, or not a JSON object, raises ``error("<path>:<n>: …")``; the caller
    checks the file exists first (its message knows what the file is for).
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, parse_object(line, f"{path}:{n}", error)


def parse_object(text: str, where: str, error: type[Exception] = ValueError) -> dict:
    """``text`` as a JSON object; anything else raises ``error`` naming ``where`` and what is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """``write_text_atomic`` of ``obj`` as indented JSON (non-JSON values as their ``str``)."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str))


class RunDirError(ValueError):
    """A damaged run directory, or one whose settings differ from the resumed run's."""


def read_records(path: str | os.PathLike, repair: bool = False, error: type[Exception] = RunDirError) -> list[dict]:
    """Complete JSON lines of ``path`` (see the module docstring); ``[]`` when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    records, good_end, pos = [], 0, 0
    for n, raw in enumerate(data.splitlines(keepends=True), 1):
        pos += len(raw)
        if not raw.strip():
            good_end = pos
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError:
            if pos == len(data):  # the torn tail of a killed write
                break
            raise error(f"{path}:{n}: not valid JSON; the run directory is damaged") from None
        if not raw.endswith(b"\n"):
            break  # complete JSON but no newline: also a torn tail (the newline is part of the write)
        records.append(rec)
        good_end = pos
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


class RecordWriter:
    """Append-only JSONL: each record is one ``write`` of a full line, flushed at once."""

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self.f = open(path, "a", encoding="utf-8")
        self.fsync = fsync

    def write(self, record: dict) -> None:
        self.f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.f.flush()
        if self.fsync:
            os.fsync(self.f.fileno())

    def write_all(self, records: Iterable[dict]) -> None:
        for r in records:
            self.write(r)

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_resume(saved: str | os.PathLike, new: Mapping[str, Any], keys: Iterable[str] | None = None, *,
                 defaults: Mapping[str, Any] | None = None, what: str = "--resume",
                 error: type[Exception] = RunDirError) -> None:
    """Refuse to continue a run whose saved config (JSON at ``saved``) differs from ``new`` in any
    of ``keys`` (default: every key); a key the saved config lacks counts as its default."""
    saved = Path(saved)
    try:
        old = json.loads(saved.read_text())
    except ValueError:
        raise error(f"{saved}: not valid JSON; the run directory is damaged") from None
    defaults = defaults or {}
    names = list(keys) if keys is not None else sorted(set(old) | set(new))
    for k in names:
        before, after = old.get(k, defaults.get(k)), new.get(k, defaults.get(k))
        if before != after:
            raise error(f"{what}: {k} was {before!r} in {saved.parent}, now {after!r}; "
                        "continue with the same settings or use another output")
