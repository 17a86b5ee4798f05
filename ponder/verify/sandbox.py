"""Run untrusted Python against tests: ``run_code(code, tests, limits) -> RunResult``.

Isolation is built on **bubblewrap** (``bwrap``): each call starts one sandbox with new
network, PID, IPC and UTS namespaces, a read-only view of ``/usr`` (plus ``/bin``, ``/lib*``,
a few files of ``/etc``) and of the interpreter's prefix, size-capped tmpfs mounts for
``/tmp`` and the working dir ``/sandbox`` (the code's cwd and ``$HOME``), ``--clearenv`` with
``PATH``/``LANG``/``HOME`` only, ``--die-with-parent`` and ``--new-session``. Nothing else of
the host's ``/root``, ``/home``, ``/work`` or its other processes is visible; the net namespace
has only a loopback of its own, so no socket reaches the host or the outside.

Inside, a small trusted *driver* (``ponder.verify.sandbox_driver``, sent in as marshalled
bytecode so the sandbox starts with ``python -I -S`` and compiles nothing of ours) forks one
child per execution. The child applies the resource limits (``RLIMIT_CPU``, ``AS``, ``NPROC``,
``NOFILE``, ``FSIZE``, ``CORE``) with ``resource.setrlimit`` -- in the child rather than a
``preexec_fn``, which is unsafe with threads -- drops to an unprivileged uid, and runs the
code. The driver enforces the wall-time limit, then kills every process the execution left
(``kill(-1)`` sent by a helper holding the code's own uid, which can reach nothing else), so
a daemonised grandchild cannot outlive its execution.

Why a uid drop: ponder may run as root (CI does), and the kernel never applies
``RLIMIT_NPROC`` to uid 0, so a fork bomb would be unbounded. bwrap runs privileged (root
needs no user namespace) with capabilities cut to SETUID/SETGID/KILL; the child switches to
a uid of its own (``_UID_BASE`` + a per-process, per-concurrent-call slot), which owns no
file on the host and whose process count belongs to this one execution. As non-root, bwrap
makes a user namespace and the limit counts the processes visible in it. The driver's memory
is protected from the code (other uid, or ``PR_SET_DUMPABLE=0``), so an io test's verdict --
computed by the driver -- cannot be forged.

Tests. A ``str`` is an assert-style test: Python statements run after the code, in its
globals. All of them run in **one** execution, in order, each reported separately (a
failing assert does not stop the next). A ``{"input": …, "output": …}`` dict is a
stdin/stdout case: one fresh forked execution per case, inside the same sandbox (a fork
costs ~1 ms against ~20 ms for a new sandbox; cases share the working dir, nothing else).
Outputs are compared stripped, with runs of whitespace in each line collapsed.

Reasons (``RunResult.reason`` and ``TestResult.reason``): ``passed``, ``wrong answer``,
``syntax error``, ``runtime error``, ``timeout`` (CPU or wall), ``memory``, ``output limit``,
``crash`` (killed by a signal), ``sandbox error`` (the machinery failed; never a pass).

Limits of the design, stated:

* The code may use the **standard library only** (``-I -S``: no site-packages, no user
  site, no ``PYTHON*`` variables). ``exit()``/``quit()`` are provided as in a normal run.
* Assert tests run in the code's own process, so code written to cheat (patching builtins,
  faking the report) can fake an assert verdict; it cannot escape or harm the host. io cases
  are judged outside the code's process and cannot be faked. Code that exits during loading
  still gets its tests run; code that ``os._exit``s fails them.
* Without bwrap (not installed, or it cannot start, e.g. no user namespaces) or with
  ``PONDER_SANDBOX=rlimit``, ponder logs one warning and runs with the resource limits
  only: no namespaces (network, files and processes of the host are reachable), cwd a fresh
  host temp dir. As root the code still runs under a uid of its own (so ``RLIMIT_NPROC``
  holds and the driver is out of its reach); when the interpreter lives in a directory other
  users cannot search (``/root/.pyenv``), that uid keeps ``CAP_DAC_READ_SEARCH`` -- it may read,
  not write, any host file -- with every other capability dropped and ``no_new_privs`` set (the
  warning says so).
* ``RLIMIT_AS`` counts address space, not resident memory; the default leaves room for the
  interpreter. Writable space is ``disk_bytes`` for ``/tmp`` and again for ``/sandbox``.
"""

from __future__ import annotations

import ast
import logging
import marshal
import math
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Union

# the trusted code that runs inside each sandbox, shipped in as marshalled bytecode
from ponder.verify.sandbox_driver import _BOOT, _DRIVER_CODE

log = logging.getLogger(__name__)

PASSED, WRONG_ANSWER, SYNTAX_ERROR, RUNTIME_ERROR = "passed", "wrong answer", "syntax error", "runtime error"
TIMEOUT, MEMORY, OUTPUT_LIMIT, CRASH, SANDBOX_ERROR = "timeout", "memory", "output limit", "crash", "sandbox error"
REASONS = (PASSED, WRONG_ANSWER, SYNTAX_ERROR, RUNTIME_ERROR, TIMEOUT, MEMORY, OUTPUT_LIMIT, CRASH, SANDBOX_ERROR)

IOCase = dict  # {"input": str, "output": str}
Test = Union[str, IOCase]


class SandboxError(ValueError):
    """Bad input to ``run_code`` (a malformed test or limit), or a sandbox mode that cannot run."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution (the code plus all assert tests, or one io case).

    cpu_seconds: CPU time (RLIMIT_CPU, rounded up to whole seconds; SIGKILL one second later).
    wall_seconds: wall-clock time, enforced by the driver (sleeping code uses no CPU).
    memory_bytes: address space (RLIMIT_AS); the interpreter itself needs ~30 MB.
    processes: tasks (processes and threads) the code may have at once (RLIMIT_NPROC).
    open_files: file descriptors (RLIMIT_NOFILE).
    output_bytes: largest file the code may write (RLIMIT_FSIZE); stdout and stderr are
        files too, so this caps them (writing past it is reason "output limit").
    disk_bytes: size of each writable tmpfs (``/sandbox``, ``/tmp``) under bwrap.
    report_chars: stdout (head) and stderr (tail) kept in the results.
    """

    cpu_seconds: float = 5.0
    wall_seconds: float = 10.0
    memory_bytes: int = 1 << 30
    processes: int = 16
    open_files: int = 64
    output_bytes: int = 8 << 20
    disk_bytes: int = 64 << 20
    report_chars: int = 4000

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "wall_seconds", "memory_bytes", "processes", "open_files",
                     "output_bytes", "disk_bytes", "report_chars"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise SandboxError(f"Limits.{name} must be a positive number, got {value!r}")
        if self.open_files < 8:
            raise SandboxError(f"Limits.open_files must be at least 8 (Python needs a few), got {self.open_files}")


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test: ``index`` into the tests, ``kind`` "assert" or "io"."""

    __test__ = False  # not a pytest test class, whatever its name

    index: int
    kind: str
    passed: bool
    reason: str
    detail: str = ""  # the failing assert and its message, the exception, or expected vs got
    duration: float = 0.0  # seconds of the execution that ran it (shared by all assert tests)


@dataclass(frozen=True)
class RunResult:
    """The outcome of ``run_code``.

    passed: every test passed (with no tests: the code ran without error).
    reason: ``passed`` or the reason of the first failure.
    stdout/stderr: of the first failing execution (else the first), cut to ``report_chars``.
    mode: "bwrap" (isolated) or "rlimit" (resource limits only).
    """

    passed: bool
    tests: list[TestResult]
    reason: str
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    mode: str = ""
    detail: str = ""
    details: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- modes and uids

_UID_BASE = 2_000_000_000  # far above login uids and the usual /etc/subuid ranges
_SLOTS = 256
_slot_lock = threading.Lock()
_slots_in_use: set[int] = set()
_slot_counter = 0
_mode_lock = threading.Lock()
_bwrap_probe: tuple[bool, str] | None = None
_warned = False


def _acquire_slot() -> int:
    """A slot number not used by another call in flight (shared only past 256 at once)."""
    global _slot_counter
    with _slot_lock:
        for slot in range(_SLOTS):
            if slot not in _slots_in_use:
                _slots_in_use.add(slot)
                return slot
        _slot_counter += 1
        return _slot_counter % _SLOTS


def _release_slot(slot: int) -> None:
    with _slot_lock:
        _slots_in_use.discard(slot)


def _slot_uid(slot: int) -> int:
    """A uid owned by nobody on the host, unique to (this process, slot).

    pids stay below 2**22 (the kernel's pid_max ceiling), so live processes never share a uid:
    the largest is 2e9 + 2**22 * 256 ≈ 3.07e9, inside the 32-bit uid range.
    """
    return _UID_BASE + (os.getpid() % (1 << 22)) * _SLOTS + slot


def _interpreter() -> tuple[str, list[str]]:
    """The interpreter to run and the directories it needs (its prefixes).

    The venv's base interpreter -- the same binary as ``sys.executable`` -- so only its
    prefix must be visible: with ``-I -S`` a venv would add nothing but its site-packages.
    """
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    return exe, sorted(prefixes)


def _readable_by_others(path: str) -> bool:
    """Every directory on the way to ``path`` is searchable by any user (o+x)."""
    path = os.path.realpath(path)
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        try:
            mode = os.stat("/".join(parts[:i]) or "/").st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return True


def _warn_reduced(why: str) -> None:
    global _warned
    with _mode_lock:
        if _warned:
            return
        _warned = True
    extra = ""
    if os.getuid() == 0 and not all(_readable_by_others(p) for p in _interpreter()[1]):
        extra = (" The interpreter is in a directory other users cannot read, so the code's uid keeps"
                 " the right to read (not write) every host file (CAP_DAC_READ_SEARCH).")
    log.warning("code sandbox: %s; isolation is reduced to resource limits (no namespaces).%s", why, extra)


def _bwrap_args(cwd: str, scratch: str, limits: Limits, scratch_bytes: int) -> list[str]:
    """The bwrap command line (without the interpreter command)."""
    # the bwrap the probe found on the caller's PATH (the child's PATH is the fixed one below)
    args = [shutil.which("bwrap") or "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
            "--setenv", "HOME", cwd, "--ro-bind", "/usr", "/usr"]  # fmt: skip
    for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for f in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", f, f]
    for p in _interpreter()[1]:
        if not p.startswith("/usr/"):
            # bwrap copies the modes of the host's parent dirs (/root is 0700): open them up
            parts = p.split("/")
            for i in range(2, len(parts)):
                args += ["--perms", "0755", "--dir", "/".join(parts[:i])]
            args += ["--ro-bind", p, p]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(limits.disk_bytes), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(limits.disk_bytes), "--tmpfs", cwd,
             "--perms", "0700", "--size", str(scratch_bytes), "--tmpfs", scratch,
             "--remount-ro", "/", "--chdir", cwd]  # fmt: skip
    if os.getuid() == 0:  # privileged bwrap: keep only what the driver needs to drop to a uid
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    return args


def _probe_bwrap() -> tuple[bool, str]:
    """Can bwrap start the interpreter here? Tried once per process (~20 ms)."""
    global _bwrap_probe
    with _mode_lock:
        if _bwrap_probe is None:
            if shutil.which("bwrap") is None:
                _bwrap_probe = (False, "bubblewrap (bwrap) is not installed")
            else:
                argv = _bwrap_args("/sandbox", "/run/ponder", Limits(), 1 << 20) + [_interpreter()[0], "-I", "-S", "-c", "pass"]
                try:
                    p = subprocess.run(argv, capture_output=True, timeout=30, env=_base_env("/"))
                    ok, why = p.returncode == 0, p.stderr.decode(errors="replace").strip()[-300:]
                except (OSError, subprocess.TimeoutExpired) as e:
                    ok, why = False, str(e)
                _bwrap_probe = (ok, "" if ok else f"bwrap cannot start a sandbox ({why})")
        return _bwrap_probe


def sandbox_mode() -> str:
    """``"bwrap"`` or ``"rlimit"``: what ``run_code`` will use now (``PONDER_SANDBOX`` decides,
    ``auto`` by default; ``rlimit`` forces the reduced mode, ``bwrap`` refuses to reduce)."""
    want = os.environ.get("PONDER_SANDBOX", "auto").strip().lower() or "auto"
    if want not in ("auto", "bwrap", "rlimit"):
        raise SandboxError(f"PONDER_SANDBOX must be auto, bwrap or rlimit, got {want!r}")
    if want == "rlimit":
        _warn_reduced("PONDER_SANDBOX=rlimit")
        return "rlimit"
    ok, why = _probe_bwrap()
    if ok:
        return "bwrap"
    if want == "bwrap":
        raise SandboxError(f"PONDER_SANDBOX=bwrap but {why}")
    _warn_reduced(why)
    return "rlimit"


def _base_env(home: str) -> dict[str, str]:
    """The whole environment the code sees: nothing of ours (secrets stay out)."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home}


# --------------------------------------------------------------------------- the host side


def check_tests(tests: Any) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, int]]]:
    """Validate ``tests`` and split them into assert sources and io ``(input, output)`` cases.

    ``order`` maps each test to ("assert" | "io", its index in that list). Raises
    ``SandboxError`` naming the first bad test (not a list, wrong type, invalid Python).
    """
    if isinstance(tests, (str, dict)) or not isinstance(tests, (list, tuple)):
        raise SandboxError(f"tests must be a list of assert strings or io dicts, got {type(tests).__name__}")
    asserts: list[str] = []
    cases: list[tuple[str, str]] = []
    order: list[tuple[str, int]] = []
    for i, t in enumerate(tests):
        if isinstance(t, str):
            try:
                compile(t, f"test {i}", "exec")
            except (SyntaxError, ValueError) as e:
                raise SandboxError(f"test {i} is not valid Python: {e}") from None
            order.append(("assert", len(asserts)))
            asserts.append(t)
        elif isinstance(t, dict):
            extra = set(t) - {"input", "output"}
            if "output" not in t or extra:
                raise SandboxError(f"test {i}: an io case is {{'input': str, 'output': str}}, got keys {sorted(t)}")
            inp, out = t.get("input", ""), t["output"]
            if not isinstance(inp, str) or not isinstance(out, str):
                raise SandboxError(f"test {i}: io case input and output must be strings")
            order.append(("io", len(cases)))
            cases.append((inp, out))
        else:
            raise SandboxError(f"test {i} must be an assert string or an io dict, got {type(t).__name__}")
    return asserts, cases, order


def _communicate(proc: subprocess.Popen, deadline: float, cap: int) -> tuple[bytes, bytes, str]:
    """Read the driver's stdout/stderr until EOF, the deadline or ``cap`` bytes (then kill)."""
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    total, problem = 0, ""
    with selectors.DefaultSelector() as sel:
        for f in (proc.stdout, proc.stderr):
            sel.register(f.fileno(), selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                problem = "the sandbox overran its total time"
                break
            for key, _ in sel.select(left):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                    continue
                chunks[key.fd].append(data)
                total += len(data)
            if total > cap:
                problem = "the sandbox wrote more than expected"
                break
    if problem:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait()
    out, err = b"".join(chunks[proc.stdout.fileno()]), b"".join(chunks[proc.stderr.fileno()])
    proc.stdout.close()
    proc.stderr.close()
    return out, err, problem


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _classify(ex: dict[str, Any], limits: Limits) -> tuple[str | None, str]:
    """The failure of one execution as (reason, detail), or (None, "") when it ran cleanly."""
    status = ex["status"]
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    cpu_limit = math.ceil(limits.cpu_seconds)
    if ex["timed_out"]:
        return TIMEOUT, f"wall time over {limits.wall_seconds:g} s"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and ex["cpu"] >= cpu_limit - 0.05):
        return TIMEOUT, f"CPU time over {cpu_limit} s"
    if ex["out_over"] or ex["err_over"]:
        return OUTPUT_LIMIT, f"output over {limits.output_bytes} bytes"
    errors = [line.split("\t") for line in ex["report"] if line.startswith("E\t")]
    if errors:
        why = errors[0][1] if len(errors[0]) > 1 and errors[0][1] in REASONS else RUNTIME_ERROR
        return why, errors[0][2] if len(errors[0]) > 2 else ""
    if sig:
        return CRASH, f"killed by {_signal_name(sig)}"
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
        return RUNTIME_ERROR, f"exit status {os.WEXITSTATUS(status)}"
    return None, ""


def _assert_results(ex: dict[str, Any], asserts: list[str], limits: Limits) -> list[TestResult]:
    """Per-test results of the assert execution, from the code's report lines."""
    reason, detail = _classify(ex, limits)
    lines = [line.split("\t") for line in ex["report"]]
    loaded = any(p[0] == "S" for p in lines)
    seen: dict[int, tuple[str, str]] = {}
    for p in lines:
        if p[0] == "T" and len(p) >= 3 and p[1].isdigit() and p[2] in REASONS:
            seen.setdefault(int(p[1]), (p[2], p[3] if len(p) > 3 else ""))
    out = []
    for i, src in enumerate(asserts):
        if loaded and i in seen:
            why, msg = seen[i]
            if why == PASSED:
                out.append(TestResult(i, "assert", True, PASSED, "", ex["wall"]))
                continue
            text = " ".join(src.split())[:200] + (f" -- {msg}" if msg else "")
        elif reason is not None:
            why, text = reason, detail
        else:  # clean exit without reaching this test: os._exit or a killed reporter
            why, text = RUNTIME_ERROR, "the program exited before this test ran"
        out.append(TestResult(i, "assert", False, why, text, ex["wall"]))
    return out


def _io_result(i: int, ex: dict[str, Any], expected: str, limits: Limits) -> TestResult:
    reason, detail = _classify(ex, limits)
    if reason is None and ex["match"]:
        return TestResult(i, "io", True, PASSED, "", ex["wall"])
    if reason is None:
        got = ex["stdout"].strip()
        reason, detail = WRONG_ANSWER, f"expected {expected.strip()[:200]!r}, got {got[:200]!r}"
    return TestResult(i, "io", False, reason, detail, ex["wall"])


def run_code(code: str, tests: list[Test], limits: Limits | None = None) -> RunResult:
    """Run ``code`` against ``tests`` in a sandbox; see the module docstring.

    Thread-safe: each call has its own sandbox, temp dirs and uid. Raises ``SandboxError``
    for malformed tests or limits; anything the code does is reported in the result instead.
    """
    if not isinstance(code, str):
        raise SandboxError(f"code must be a string, got {type(code).__name__}")
    limits = limits or Limits()
    asserts, cases, order = check_tests(tests)
    mode = sandbox_mode()
    start = time.monotonic()
    n_exec = (1 if asserts or not cases else 0) + len(cases)
    largest_input = max((len(i.encode("utf-8", "surrogatepass")) for i, _ in cases), default=0)
    scratch_bytes = largest_input + 3 * limits.output_bytes + (1 << 20)
    slot = _acquire_slot()
    tmp = None
    keep_read = False  # the dropped uid keeps CAP_DAC_READ_SEARCH (see _warn_reduced)
    try:
        if mode == "bwrap":
            cwd, scratch = "/sandbox", "/run/ponder"
            uid = _slot_uid(slot) if os.getuid() == 0 else -1
            argv = _bwrap_args(cwd, scratch, limits, scratch_bytes)
        else:
            tmp = tempfile.mkdtemp(prefix="ponder-sandbox-")
            cwd, scratch = os.path.join(tmp, "work"), os.path.join(tmp, "scratch")
            os.mkdir(cwd, 0o755)
            os.mkdir(scratch, 0o700)
            drop = os.getuid() == 0  # as root, always to a uid of its own: RLIMIT_NPROC needs it
            uid = _slot_uid(slot) if drop else -1
            if drop:
                os.chmod(tmp, 0o711)  # the code's uid must pass through to its cwd (not list it)
                os.chown(cwd, uid, uid)
                keep_read = not all(_readable_by_others(p) for p in _interpreter()[1])
            argv = []
        argv += [_interpreter()[0], "-I", "-S", "-c", _BOOT]
        job = {
            "code": code, "asserts": asserts, "cases": cases, "mode": mode, "uid": uid, "keep_read": keep_read,
            "cwd": cwd, "scratch": scratch, "host_pidns": os.readlink("/proc/self/ns/pid"),
            "limits": {"cpu_seconds": math.ceil(limits.cpu_seconds), "wall_seconds": float(limits.wall_seconds),
                       "memory_bytes": int(limits.memory_bytes), "processes": int(limits.processes),
                       "open_files": int(limits.open_files), "output_bytes": int(limits.output_bytes),
                       "report_chars": int(limits.report_chars)},
        }  # fmt: skip
        with tempfile.TemporaryFile() as stdin:
            stdin.write(b"%d\n" % len(_DRIVER_CODE) + _DRIVER_CODE + marshal.dumps(job))
            stdin.seek(0)
            proc = subprocess.Popen(
                argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=_base_env(cwd), cwd=cwd if tmp else "/", start_new_session=True,
            )  # fmt: skip
        deadline = start + n_exec * (limits.wall_seconds + 1.0) + 10.0
        cap = (1 << 20) + n_exec * (8 * limits.report_chars + 4096) + len(asserts) * 2048
        out, err, problem = _communicate(proc, deadline, cap)
        try:
            executions = ast.literal_eval(out.decode("utf-8", "replace")) if not problem else None
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            executions = None
        if not isinstance(executions, list) or len(executions) != n_exec:
            why = problem or f"driver exited with status {proc.returncode}: {err.decode(errors='replace')[-500:]}"
            return _failed_run(len(order), order, SANDBOX_ERROR, why, time.monotonic() - start, mode)
    finally:
        _release_slot(slot)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return _collect(executions, asserts, cases, order, limits, time.monotonic() - start, mode)


def _failed_run(n: int, order: list[tuple[str, int]], reason: str, detail: str, duration: float, mode: str) -> RunResult:
    tests = [TestResult(i, kind, False, reason, detail) for i, (kind, _) in enumerate(order)]
    return RunResult(False, tests, reason, duration=duration, mode=mode, detail=detail)


def _collect(executions: list[dict[str, Any]], asserts: list[str], cases: list[tuple[str, str]],
             order: list[tuple[str, int]], limits: Limits, duration: float, mode: str) -> RunResult:  # fmt: skip
    """Assemble the RunResult from the driver's per-execution records."""
    if asserts or not cases:
        assert_ex, io_ex = executions[0], executions[1:]
        by_assert = _assert_results(assert_ex, asserts, limits)
    else:
        assert_ex, io_ex, by_assert = None, executions, []
    tests: list[TestResult] = []
    shown = executions[0]
    for i, (kind, k) in enumerate(order):
        r = by_assert[k] if kind == "assert" else _io_result(k, io_ex[k], cases[k][1], limits)
        tests.append(TestResult(i, kind, r.passed, r.reason, r.detail, r.duration))
        if not r.passed and shown is executions[0] and all(t.passed for t in tests[:-1]):
            shown = assert_ex if kind == "assert" else io_ex[k]
    first_fail = next((t for t in tests if not t.passed), None)
    if not order:  # no tests: the code must run cleanly
        reason, detail = _classify(assert_ex, limits)
        if reason is None and not any(line == "D" for line in assert_ex["report"]):
            reason, detail = RUNTIME_ERROR, "the program exited before it finished"
        passed, reason = reason is None, reason or PASSED
    else:
        passed = first_fail is None
        reason, detail = (PASSED, "") if passed else (first_fail.reason, first_fail.detail)
    return RunResult(passed, tests, reason, shown["stdout"], shown["stderr"], duration, mode, detail,
                     {"executions": len(executions), "cpu": sum(e["cpu"] for e in executions)})  # fmt: skip
