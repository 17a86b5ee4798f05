"""math-verify in a persistent, killable worker process: the slow path of ``math_equal``.

math-verify's own timeouts use ``signal.alarm``, which fails outside the main thread, so they are
disabled (``parsing_timeout=None``, ``timeout_seconds=None``) and the call runs instead in a child
process that is killed and restarted when it overruns. A pair is equal only when math-verify
accepts it in both directions (its ``verify`` is not symmetric), and a list that math-verify reads
as a single value is not equal to anything. A pool of workers is shared by all
threads (one request per worker at a time); a forked child process starts its own pool.
Start-up (importing sympy, about a second) is not counted in a call's timeout. The pool holds
at most ``PONDER_VERIFY_WORKERS`` processes (default: the CPU count, at most 4; each ~150 MB).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
from pathlib import Path

#: What one call returns: (method, equal, reason); method is "math-verify", "timeout" or "error".
Reply = tuple[str, bool, str]

_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _items(text: str) -> int:
    """How many top-level list items ``text`` has: commas outside (), [], {} and \\{ \\}, except
    between thousands groups ("1,000")."""
    text = _THOUSANDS_COMMA.sub("", text.replace("\\{", "{").replace("\\}", "}"))
    depth, n = 0, 1
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            n += 1
    return n


def _collapsed(text: str, parsed: list) -> bool:
    """math-verify read a list of several items as a single value.

    It does so on malformed lists ("19, 46,, 82" is read as 82), and a single value then matches
    a wrong list that ends alike: the answer must be read whole or not at all.
    """
    from sympy import Tuple, preorder_traversal
    from sympy.logic.boolalg import BooleanFunction
    from sympy.matrices import MatrixBase
    from sympy.sets import Set

    if not parsed or isinstance(parsed[0], str) or _items(text) < 2:
        return False
    top, whole = parsed[0], (Set, Tuple, MatrixBase)
    if isinstance(top, (*whole, BooleanFunction)):
        return False
    # "x = 1, 2" is read as x = {1, 2}: the list is inside, and still whole.
    return not any(isinstance(node, whole) for node in preorder_traversal(top))


def _worker_main() -> None:
    """Child process: read ``{"g", "a"}`` JSON lines, answer ``{"eq", "err", "one_way"}`` lines.

    ``eq`` holds only when math-verify accepts the pair in both directions: its ``verify`` is not
    symmetric (a gold set against a predicted tuple is compared as sets, the other way round in
    order), and ``math_equal`` is. ``one_way``: gold → answer was accepted, answer → gold was
    not (the second direction is only tried when the first one accepts).
    A relation and a set are compared both ways (``allow_set_relation_comp``), as math-verify
    does by default only for a predicted set, so that ``x > 3`` and ``(3, \\infty)`` agree.
    Protocol output goes to the original stdout; anything a library prints goes to stderr so
    it cannot corrupt the protocol.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    logging.disable(logging.WARNING)  # math-verify warns that its timeouts are disabled
    import math_verify

    proto.write('{"ready": true}\n')
    for line in sys.stdin:
        try:
            req = json.loads(line)
            if "p" in req:  # can math-verify read this at all (as TRL parses a gold), raw or as LaTeX?
                found = [x for t in (req["p"], f"${req['p']}$") for x in math_verify.parse(t, parsing_timeout=None)]
                proto.write(json.dumps({"parsed": any(not isinstance(x, str) for x in found)}) + "\n")
                continue
            gp = math_verify.parse(f"${req['g']}$", parsing_timeout=None)
            ap = math_verify.parse(f"${req['a']}$", parsing_timeout=None)
            if not gp or not ap:
                out = {"eq": False, "err": "math-verify found nothing to parse"}
            elif _collapsed(req["g"], gp) or _collapsed(req["a"], ap):
                out = {"eq": False, "err": "it read a list as a single value"}
            else:
                # allow_set_relation_comp: by default math-verify compares "-2 \le x \le 2" with
                # [-2, 2] only when the interval is the prediction; here both directions must agree.
                opts = {"timeout_seconds": None, "allow_set_relation_comp": True}
                fwd = bool(math_verify.verify(gp, ap, **opts))
                bwd = fwd and bool(math_verify.verify(ap, gp, **opts))
                out = {"eq": bwd, "err": "", "one_way": fwd and not bwd}
        except BaseException as exc:  # noqa: BLE001 - one bad pair must not end the worker
            out = {"eq": False, "err": f"{type(exc).__name__}: {exc}"[:200]}
        proto.write(json.dumps(out) + "\n")


class _Worker:
    """One persistent math-verify process, used by one thread at a time."""

    START_TIMEOUT = 120.0  # importing sympy on a busy machine; not counted in the call timeout

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from ponder.verify.mv_worker import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root, env=env,
            text=True, bufsize=1,
        )
        if self._readline(self.START_TIMEOUT) is None:
            self.kill()
            raise RuntimeError("the math-verify worker did not start")

    def _readline(self, timeout: float) -> str | None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(timeout, 0.0))
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return line or None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def parses(self, text: str, timeout: float) -> bool | None:
        """Whether math-verify reads ``text`` as mathematics (None: timeout or a dead worker)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"p": text}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            self.kill()
            return None
        line = self._readline(timeout)
        if line is None:
            self.kill()
            return None
        return bool(json.loads(line).get("parsed"))

    def ask(self, gold: str, answer: str, timeout: float) -> Reply:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"g": gold, "a": answer}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            self.kill()
            return ("error", False, "math-verify worker died")
        line = self._readline(timeout)
        if line is None:
            crashed = not self.alive
            self.kill()
            if crashed:
                return ("error", False, "math-verify worker died")
            return ("timeout", False, f"timeout after {timeout:g}s in math-verify")
        out = json.loads(line)
        if out["err"]:
            return ("math-verify", False, f"math-verify: {out['err']}")
        equal = bool(out["eq"])
        if out.get("one_way"):
            return ("math-verify", False, "not equal (math-verify accepts it in one direction only)")
        return ("math-verify", equal, "equal (math-verify)" if equal else "not equal (math-verify)")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass


class _Pool:
    """Up to ``size`` workers shared by all threads; a forked child starts its own pool."""

    def __init__(self, size: int) -> None:
        self.size, self.pid = size, os.getpid()
        self.idle: list[_Worker] = []
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(size)

    def ask(self, gold: str, answer: str, timeout: float) -> Reply:
        return self._with_worker(lambda w: w.ask(gold, answer, timeout),
                                 lambda exc: ("error", False, f"math-verify worker error: {exc}"))

    def parses(self, text: str, timeout: float) -> bool | None:
        return self._with_worker(lambda w: w.parses(text, timeout), lambda exc: None)

    def _with_worker(self, call, on_error):
        with self.slots:
            with self.lock:
                w = self.idle.pop() if self.idle else None
            try:
                if w is None or not w.alive:
                    w = _Worker()
                res = call(w)
            except Exception as exc:  # noqa: BLE001 - never raise from math_equal
                if w is not None:
                    w.kill()  # its protocol state is unknown: never reuse it
                return on_error(exc)
            if w.alive:
                with self.lock:
                    self.idle.append(w)
            return res

    def close(self) -> None:
        with self.lock:
            for w in self.idle:
                w.kill()
            self.idle.clear()


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            raw = os.environ.get("PONDER_VERIFY_WORKERS", "")
            if raw and not (raw.isdigit() and int(raw) > 0):
                raise ValueError(f"PONDER_VERIFY_WORKERS must be a positive integer, got {raw!r}")
            _pool = _Pool(int(raw) if raw else min(4, os.cpu_count() or 1))
        return _pool


@atexit.register
def shutdown_workers() -> None:
    """Stop the math-verify worker processes (they are restarted on demand)."""
    with _pool_lock:
        if _pool is not None and _pool.pid == os.getpid():
            _pool.close()


def ask(gold: str, answer: str, timeout: float) -> Reply:
    """Is ``answer`` equal to ``gold`` for math-verify (both wrapped in ``$…$``)? Never raises."""
    return _get_pool().ask(gold, answer, timeout)


def parses(text: str, timeout: float) -> bool | None:
    """Whether math-verify reads ``text`` as mathematics, in a worker (None: it did not answer)."""
    return _get_pool().parses(text, timeout)


def warm_up(timeout: float = 120.0) -> bool:
    """Start a worker and exercise sympy once (about a second, paid once per worker) so the
    first real call is not slow; True when the worker answered."""
    return ask(r"\cot x", r"\frac{\cos x}{\sin x}", timeout)[0] == "math-verify"
