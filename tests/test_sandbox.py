"""The code sandbox: verdicts are right, and hostile code is contained.

Most behaviour is checked in both modes ("bwrap", the isolated one, and "rlimit", the reduced
one forced by PONDER_SANDBOX=rlimit). Containment that only namespaces give (network, files,
other processes, fork bombs as root) is checked under bwrap, which refuses to fall back
(PONDER_SANDBOX=bwrap) so a missing isolation fails loudly instead of passing vacuously.
Hostile tests use tiny limits so the file stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ponder.verify import sandbox
from ponder.verify.sandbox import Limits, SandboxError, run_code


def _bwrap_usable() -> tuple[bool, str]:
    """bwrap is installed *and* can start a sandbox here (an unprivileged container may forbid
    the namespaces); the skip message says which, so a missing isolation is visible in -rs."""
    if shutil.which("bwrap") is None:
        return False, "bubblewrap is not installed (make sandbox-deps)"
    ok, why = sandbox._probe_bwrap()
    return ok, why


HAS_BWRAP, NO_BWRAP_WHY = _bwrap_usable()
FAST = Limits(cpu_seconds=1, wall_seconds=2, memory_bytes=256 << 20, processes=8, output_bytes=1 << 20)


@pytest.fixture(params=["bwrap", "rlimit"])
def mode(request, monkeypatch):
    """Run the test in each sandbox mode (bwrap is skipped only where it is not installed)."""
    if request.param == "bwrap" and not HAS_BWRAP:
        pytest.skip(NO_BWRAP_WHY)
    monkeypatch.setenv("PONDER_SANDBOX", request.param)
    monkeypatch.setattr(sandbox, "_warned", True)  # the warning has its own test
    return request.param


@pytest.fixture
def isolated(monkeypatch):
    """bwrap mode, and no silent fallback to the reduced mode."""
    if not HAS_BWRAP:
        pytest.skip(NO_BWRAP_WHY)
    monkeypatch.setenv("PONDER_SANDBOX", "bwrap")
    assert sandbox.sandbox_mode() == "bwrap"
    return "bwrap"


def sandbox_processes() -> list[int]:
    """Host pids running as one of this process's sandbox uids (none may outlive a run).

    Other processes on the machine may run sandboxes too: only our own uid range counts.
    """
    ours = {sandbox._slot_uid(slot) for slot in range(sandbox._SLOTS)}
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid in ours:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


# --------------------------------------------------------------------------- verdicts

ADD = "def add(a, b):\n    return a + b\n"
AB = "a, b = map(int, input().split())\nprint(a + b)\n"


def test_passing_program_passes(mode):
    r = run_code(ADD, ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"])
    assert r.passed and r.reason == "passed" and r.mode == mode
    assert [(t.index, t.kind, t.passed) for t in r.tests] == [(0, "assert", True), (1, "assert", True)]
    r = run_code(AB, [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4", "output": "6"}])
    assert r.passed and [t.kind for t in r.tests] == ["io", "io"]


def test_wrong_answer_is_reported_per_test(mode):
    code = "def add(a, b):\n    return a - b\n"
    r = run_code(code, ["assert add(2, 0) == 2", "assert add(1, 2) == 3, 'one plus two'", "assert add(0, 0) == 0"])
    assert not r.passed and r.reason == "wrong answer"
    assert [t.passed for t in r.tests] == [True, False, True]
    assert "add(1, 2) == 3" in r.tests[1].detail and "one plus two" in r.tests[1].detail
    r = run_code(AB, [{"input": "1 2", "output": "3"}, {"input": "2 2", "output": "5"}])
    assert [t.reason for t in r.tests] == ["passed", "wrong answer"]
    assert r.tests[1].detail == "expected '5', got '4'" and r.stdout == "4\n"


def test_syntax_error(mode):
    r = run_code("def add(a, b)\n    return a + b\n", ["assert add(1, 2) == 3", "assert True"])
    assert r.reason == "syntax error" and [t.reason for t in r.tests] == ["syntax error"] * 2
    assert "SyntaxError" in r.tests[0].detail
    r = run_code("print(1 +)", [{"input": "", "output": "1"}])
    assert r.reason == "syntax error"


def test_runtime_errors(mode):
    r = run_code("x = undefined_name\n", ["assert True"])
    assert r.reason == "runtime error" and "NameError" in r.detail
    assert "NameError" in r.stderr  # the traceback is kept
    r = run_code("def f(x):\n    return 1 // x\n", ["assert f(1) == 1", "assert f(0) == 0"])
    assert [t.reason for t in r.tests] == ["passed", "runtime error"]
    assert "ZeroDivisionError" in r.tests[1].detail
    # a non-zero exit status fails an io case even when the output is right
    r = run_code("print(3)\nimport sys\nsys.exit(2)", [{"input": "", "output": "3"}])
    assert r.reason == "runtime error" and r.detail == "exit status 2"


def test_crash_is_reported_with_its_signal(mode):
    r = run_code("import ctypes\nctypes.string_at(0)", [{"input": "", "output": "1"}])
    assert (r.reason, r.detail) == ("crash", "killed by SIGSEGV")
    r = run_code("def f():\n    import os\n    os.abort()\n", ["assert f() is None"])
    assert r.reason == "crash" and r.tests[0].reason == "crash" and "SIGABRT" in r.detail


@pytest.mark.parametrize(
    "printed,expected,ok",
    [
        ("3\n", "3", True),
        ("  1   2 3  \n\n", "1 2 3", True),  # runs of spaces and trailing blank lines
        ("1 2\r\n3 4\r\n", "1 2\n3 4\n", True),  # CRLF
        ("1\t2\n", "1 2", True),
        ("1 2\n3 4", "1 2 3 4", False),  # line structure matters
        ("12", "1 2", False),
        ("", "0", False),
        ("YES", "yes", False),  # case matters
    ],
)
def test_io_comparison_normalises_whitespace_per_line(isolated, printed, expected, ok):
    r = run_code(f"import sys\nsys.stdout.write({printed!r})", [{"input": "", "output": expected}])
    assert r.passed is ok and r.reason == ("passed" if ok else "wrong answer")


def test_exit_during_loading_still_runs_the_tests(mode):
    r = run_code(ADD + "exit()\n", ["assert add(1, 2) == 3"])
    assert r.passed
    r = run_code(ADD + "import os\nos._exit(0)\n", ["assert add(1, 2) == 3"])
    assert not r.passed and "exited before" in r.detail


def test_no_tests_means_it_must_run_cleanly(mode):
    assert run_code("print('hello')", []).passed
    r = run_code("raise ValueError('boom')", [])
    assert not r.passed and r.reason == "runtime error" and "boom" in r.detail


def test_mixed_assert_and_io_tests_keep_their_order(mode):
    code = "def double(x):\n    return 2 * x\nif __name__ == '__main__':\n    import sys\n    data = sys.stdin.read()\n    if data: print(double(int(data)))\n"
    r = run_code(code, [{"input": "4", "output": "8"}, "assert double(3) == 6", {"input": "5", "output": "11"}])
    assert [(t.kind, t.passed) for t in r.tests] == [("io", True), ("assert", True), ("io", False)]


def test_environment_secrets_are_not_visible(mode, monkeypatch):
    monkeypatch.setenv("PONDER_TEST_SECRET", "hunter2")
    r = run_code("import os\nprint(sorted(os.environ))\nprint(os.environ.get('PONDER_TEST_SECRET'))", [])
    assert r.passed and "hunter2" not in r.stdout
    assert "PONDER_TEST_SECRET" not in r.stdout and "'HOME'" in r.stdout


# --------------------------------------------------------------------------- limits


def test_infinite_loop_times_out_on_cpu(mode):
    start = time.monotonic()
    r = run_code("while True:\n    pass\n", ["assert True"], Limits(cpu_seconds=1, wall_seconds=5))
    assert r.reason == "timeout" and time.monotonic() - start < 8
    assert r.tests[0].reason == "timeout"


def test_sleeping_code_hits_the_wall_time_limit(mode):
    start = time.monotonic()
    r = run_code("import time\ntime.sleep(60)", [{"input": "", "output": ""}], Limits(wall_seconds=1))
    assert r.reason == "timeout" and "wall" in r.detail and time.monotonic() - start < 5


def test_timeout_in_one_test_keeps_earlier_results(mode):
    code = "def f(n):\n    while n: pass\n    return 0\n"
    r = run_code(code, ["assert f(0) == 0", "assert f(1) == 0", "assert f(0) == 0"], FAST)
    assert [t.reason for t in r.tests] == ["passed", "timeout", "timeout"]


def test_memory_hog(mode):
    # generous time limits: on a busy machine filling 256 MB must not hit the clock first
    small = Limits(cpu_seconds=10, wall_seconds=20, memory_bytes=256 << 20)
    r = run_code("x = bytearray(2 << 30)", ["assert True"], small)
    assert r.reason == "memory" and "MemoryError" in r.detail
    r = run_code("x = []\nwhile True:\n    x.append(' ' * 10**6)", [{"input": "", "output": ""}], small)
    assert r.reason == "memory"


def test_huge_output_is_cut(mode):
    start = time.monotonic()
    r = run_code("while True:\n    print('x' * 1000)", [{"input": "", "output": "x"}], FAST)
    assert r.reason == "output limit" and time.monotonic() - start < 5
    assert len(r.stdout) == FAST.report_chars
    r = run_code("import sys\nsys.stderr.write('e' * (2 << 20))", ["assert True"], FAST)
    assert r.reason == "output limit" and len(r.stderr) == FAST.report_chars


def test_open_file_limit(mode):
    code = (
        "files = []\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        files.append(open('/dev/null'))\n"
        "except OSError as e:\n"
        "    print(len(files), e.errno)\n"
        "else:\n"
        "    print(len(files), 0)\n"
    )
    opened, errno = map(int, run_code(code, [], Limits(open_files=16)).stdout.split())
    assert errno == 24 and opened < 16  # EMFILE: stdin/out/err and the report pipe count too
    opened, errno = map(int, run_code(code, [], Limits(open_files=256)).stdout.split())
    assert (opened, errno) == (100, 0)  # the same code with room: the limit was the cause


def test_process_limit_caps_children(mode):
    # a bounded number of forks (never a bomb in the reduced mode): each child sleeps until swept
    code = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(12):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(20)\n"
        "        os._exit(0)\n"
        "    n += 1\n"
        "print(n)\n"
    )
    small = run_code(code, [], Limits(processes=4))
    assert small.passed, small.detail
    assert 1 <= int(small.stdout) <= 3  # the program itself is one of the four
    assert int(run_code(code, [], Limits(processes=32)).stdout) == 12
    assert sandbox_processes() == []  # the sleepers were swept


def test_each_run_starts_in_a_fresh_empty_dir(mode):
    code = (
        "import os\n"
        "print(sorted(os.listdir('.')))\n"
        "open('left_behind.txt', 'w').write('x')\n"
        "print(os.getcwd() != %r)\n"
    ) % os.getcwd()
    first, second = run_code(code, []), run_code(code, [])
    assert first.stdout == second.stdout == "[]\nTrue\n"


def test_fork_bomb_is_contained(mode):
    # also in the reduced mode: RLIMIT_NPROC under the code's own uid bounds it there too
    before = len(os.listdir("/proc"))
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    r = run_code(bomb, ["assert True"], Limits(cpu_seconds=1, wall_seconds=2, processes=8))
    assert r.reason == "timeout"
    assert sandbox_processes() == []  # nothing survived the run
    assert len(os.listdir("/proc")) < before + 50  # the host never saw an explosion
    # the limit is a count, not a ban: a few children are fine
    code = "import os\nfor _ in range(3):\n    if os.fork() == 0:\n        os._exit(0)\n    os.wait()\nprint('ok')"
    assert run_code(code, [], Limits(processes=4)).stdout == "ok\n"


def test_leftover_processes_are_killed_between_cases(isolated):
    # each case starts a detached sleeper; none may outlive its own case
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "def alive(p):\n"
        "    try:\n"
        "        return open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z'\n"
        "    except OSError:\n"
        "        return False\n"
        "print(sum(alive(p) for p in os.listdir('/proc') if p.isdigit()))\n"
    )
    r = run_code(code, [{"input": "", "output": "4"}, {"input": "", "output": "4"}])
    # alive inside: bwrap's init, the driver, the program, its sleeper -- not the last case's
    assert r.passed, r.tests
    assert sandbox_processes() == []


# --------------------------------------------------------------------------- isolation


def test_no_network(isolated):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        # the guard makes sure no packet can leave even if isolation were missing:
        # 192.0.2.1 (TEST-NET-1) is only attempted from a namespace with nothing but lo
        code = (
            "import socket\n"
            "assert [n for _, n in socket.if_nameindex()] == ['lo'], 'not in a network namespace'\n"
            "def reach(host, port):\n"
            "    try:\n"
            "        socket.create_connection((host, port), timeout=1).close()\n"
            "        return True\n"
            "    except OSError:\n"
            "        return False\n"
        )
        r = run_code(code, [f"assert not reach('127.0.0.1', {port})", "assert not reach('192.0.2.1', 80)"])
        assert r.passed, r.tests
        # and the same connect from the host does work: the test can fail
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        server.close()


def test_writes_outside_the_sandbox_fail(isolated, tmp_path):
    host_file = tmp_path / "host.txt"
    host_file.write_text("original")
    repo_file = Path(__file__).resolve().parents[1] / "sandbox_escape_probe.txt"
    home_file = Path(os.path.expanduser("~")) / "sandbox_escape_probe.txt"
    targets = [str(repo_file), str(home_file), "/etc/sandbox_escape_probe", "/usr/sandbox_escape_probe"]
    code = (
        "import os\n"
        "def write(path):\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('pwned')\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        f"assert not any(write(p) for p in {targets!r})\n"
        "with open('mine.txt', 'w') as f:\n"  # its own dir and /tmp are writable
        "    f.write('ok')\n"
        "with open('/tmp/x', 'w') as f:\n"
        "    f.write('ok')\n"
        f"write({str(host_file)!r})\n"  # the host's tmp is not its /tmp
    )
    r = run_code(code, [])
    assert r.passed, (r.detail, r.stderr)
    assert host_file.read_text() == "original"
    assert not any(Path(p).exists() for p in targets)


def test_killing_the_parent_fails_the_run_not_the_host(isolated):
    assert os.getuid() != 0 or sandbox.sandbox_mode() == "bwrap"  # never run kill(-1) unisolated
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        code = (
            "import os, signal\n"
            "assert os.getpid() < 10, 'not in a PID namespace'\n"  # guard: never outside one
            "for pid in (os.getppid(), 1, %d, %d):\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        pass\n"
            "os.kill(-1, signal.SIGKILL)\n"
        ) % (os.getpid(), sleeper.pid)
        r = run_code(code, ["assert True"], FAST)
        # as root the driver runs under another uid than the code, so it cannot be killed
        assert r.passed or os.getuid() != 0, r.detail
        assert sleeper.poll() is None  # the host's processes are untouched (and so are we)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_code_sees_only_its_own_processes_and_no_host_files(isolated):
    code = (
        "import os\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "assert pids == [1, 2, 3], pids\n"  # bwrap's init, the driver, the program
        "assert os.getuid() != 0\n"
        "for p in ('/work', '/home', '/root/.ssh', '/etc/passwd'):\n"
        "    assert not os.path.exists(p), p\n"
    )
    r = run_code(code, [])
    assert r.passed, (r.detail, r.stderr)


# --------------------------------------------------------------------------- the API


def test_many_threads_at_once(mode):
    code = "def f():\n    return %d\n"

    def one(i):
        return run_code(code % i, [f"assert f() == {i}", f"assert f() == {i + 1}"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert all([t.passed for t in r.tests] == [True, False] for r in results)


def test_bad_input_is_a_clear_error():
    with pytest.raises(SandboxError, match="list"):
        run_code("pass", "assert True")
    with pytest.raises(SandboxError, match="test 1 is not valid Python"):
        run_code("pass", ["assert True", "assert ("])
    with pytest.raises(SandboxError, match="test 0: an io case"):
        run_code("pass", [{"stdin": "1", "output": "1"}])
    with pytest.raises(SandboxError, match="test 0 must be"):
        run_code("pass", [3])
    with pytest.raises(SandboxError, match="cpu_seconds"):
        Limits(cpu_seconds=0)
    with pytest.raises(SandboxError, match="code must be a string"):
        run_code(None, [])


def test_bad_mode_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PONDER_SANDBOX", "docker")
    with pytest.raises(SandboxError, match="PONDER_SANDBOX"):
        run_code("pass", [])


def test_reduced_mode_warns_once(monkeypatch, caplog):
    monkeypatch.setenv("PONDER_SANDBOX", "rlimit")
    monkeypatch.setattr(sandbox, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="ponder.verify.sandbox"):
        results = [run_code(ADD, ["assert add(1, 1) == 2"]) for _ in range(2)]
        with ThreadPoolExecutor(4) as pool:
            results += list(pool.map(lambda _: run_code("pass", []), range(4)))
    assert all(r.passed and r.mode == "rlimit" for r in results)
    warnings = [rec for rec in caplog.records if "isolation is reduced" in rec.getMessage()]
    assert len(warnings) == 1 and "PONDER_SANDBOX=rlimit" in warnings[0].getMessage()


def test_missing_bwrap_falls_back(monkeypatch, caplog):
    monkeypatch.setenv("PONDER_SANDBOX", "auto")
    monkeypatch.setattr(sandbox, "_warned", False)
    monkeypatch.setattr(sandbox, "_bwrap_probe", None)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="ponder.verify.sandbox"):
        assert sandbox.sandbox_mode() == "rlimit"
        assert run_code(ADD, ["assert add(2, 2) == 4"]).mode == "rlimit"
    assert any("not installed" in rec.getMessage() for rec in caplog.records)
    monkeypatch.setenv("PONDER_SANDBOX", "bwrap")
    with pytest.raises(SandboxError, match="not installed"):
        sandbox.sandbox_mode()


def test_concurrent_callers_get_distinct_uids():
    slots = [sandbox._acquire_slot() for _ in range(3)]
    try:
        assert len(set(slots)) == 3 and len({sandbox._slot_uid(s) for s in slots}) == 3
    finally:
        for s in slots:
            sandbox._release_slot(s)


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare")
def test_driver_never_kills_broadly_outside_bwrap(tmp_path):
    """A job that wrongly claims bwrap mode must not make the driver kill(-1) its neighbours.

    Run where a mistake is harmless: a throw-away PID namespace (``unshare``) in which the
    driver is pid 2 with parent pid 1, as under bwrap, next to a sleeping neighbour.
    """
    import marshal

    (tmp_path / "w").mkdir()
    (tmp_path / "s").mkdir()
    limits = {"cpu_seconds": 5, "wall_seconds": 5.0, "memory_bytes": 1 << 30, "processes": 16,
              "open_files": 64, "output_bytes": 1 << 20, "report_chars": 100}  # fmt: skip
    job = {"code": "import time\ntime.sleep(0.3)", "asserts": [], "cases": [], "mode": "bwrap", "uid": -1,
           "cwd": str(tmp_path / "w"), "scratch": str(tmp_path / "s"), "host_pidns": "bogus", "limits": limits}  # fmt: skip
    (tmp_path / "job").write_bytes(b"%d\n" % len(sandbox._DRIVER_CODE) + sandbox._DRIVER_CODE + marshal.dumps(job))
    python = sandbox._interpreter()[0]
    script = (
        f"{python} -I -S -c \"$BOOT\" < {tmp_path}/job > {tmp_path}/out & driver=$!\n"
        "sleep 20 & sleeper=$!\n"
        "wait $driver\n"
        "echo driver=$driver\n"
        "kill -0 $sleeper && echo sleeper-alive\n"
        "kill $sleeper\n"
    )
    p = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
                       env={"PATH": "/usr/bin:/bin", "BOOT": sandbox._BOOT}, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "driver=2" in p.stdout, (p.stdout, p.stderr)  # the driver stood where bwrap's command stands
    assert "sleeper-alive" in p.stdout, (p.stdout, p.stderr)
    assert (tmp_path / "out").read_text().startswith("[{")  # and it did run the job


def test_hundreds_of_tests_each_get_their_own_verdict(isolated):
    tests = [f"assert f({i}) == {i}, 'long message ' * 40" for i in range(300)]
    r = run_code("def f(x):\n    return x if x % 2 == 0 else -1\n", tests)
    assert [t.passed for t in r.tests] == [i % 2 == 0 for i in range(300)]
    assert {t.reason for t in r.tests if not t.passed} == {"wrong answer"}


@pytest.mark.skipif(os.getuid() != 0, reason="the uid drop is what root needs")
def test_reduced_mode_as_root_runs_the_code_under_its_own_uid(monkeypatch, tmp_path):
    """Without namespaces, root's code still runs as another uid: it cannot write root's files
    or signal root's processes (this test's), and RLIMIT_NPROC applies to it."""
    monkeypatch.setenv("PONDER_SANDBOX", "rlimit")
    monkeypatch.setattr(sandbox, "_warned", True)
    target = tmp_path / "root_owned.txt"  # pytest's tmp dirs are 0700 root
    code = (
        "import os, signal\n"
        "print(os.getuid())\n"
        "def attempt(f):\n"
        "    try:\n"
        "        f()\n"
        "        return 'done'\n"
        "    except OSError as e:\n"
        "        return type(e).__name__\n"
        f"print(attempt(lambda: open({str(target)!r}, 'w')))\n"
        f"print(attempt(lambda: os.kill({os.getpid()}, 0)))\n"
    )
    r = run_code(code, [])
    uid, write, kill = r.stdout.split()
    assert int(uid) != 0 and (write, kill) == ("PermissionError", "PermissionError"), (r.stdout, r.stderr)
    assert not target.exists()


SYSTEM_PYTHON = "/usr/bin/python3.11"


@pytest.mark.skipif(os.getuid() != 0 or not os.path.exists(SYSTEM_PYTHON), reason="needs root and a system Python 3.11")
def test_reduced_mode_as_root_with_a_system_interpreter(tmp_path):
    """The other reduced-mode-as-root path: an interpreter every user can read (no capability kept).
    It runs in a child interpreter of its own because the venv's lives under /root."""
    script = (
        "import json\n"
        "from ponder.verify.sandbox import Limits, run_code, _interpreter, _readable_by_others\n"
        "assert all(map(_readable_by_others, _interpreter()[1]))\n"
        "fork = 'import os, time\\nn = 0\\nfor _ in range(12):\\n    try:\\n        pid = os.fork()\\n'"
        " '    except OSError:\\n        break\\n    if pid == 0:\\n        time.sleep(20)\\n        os._exit(0)\\n'"
        " '    n += 1\\nprint(n)\\n'\n"
        "out = {\n"
        "    'asserts': run_code('def f(x):\\n    return 2 * x\\n', ['assert f(2) == 4', 'assert f(1) == 3']).tests,\n"
        "    'io': run_code('print(int(input()) + 1)', [{'input': '41', 'output': '42'}]).passed,\n"
        "    'uid': run_code('import os\\nprint(os.getuid())', []).stdout,\n"
        "    'forks': run_code(fork, [], Limits(processes=4)).stdout,\n"
        "}\n"
        "print(json.dumps({k: [t.passed for t in v] if k == 'asserts' else v for k, v in out.items()}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PONDER_SANDBOX": "rlimit"}
    p = subprocess.run([SYSTEM_PYTHON, "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.splitlines()[-1])
    assert got["asserts"] == [True, False] and got["io"] is True
    assert int(got["uid"]) != 0 and 1 <= int(got["forks"]) <= 3


def test_reduced_mode_still_kills_detached_children(monkeypatch):
    """Without namespaces the driver is a subreaper: a double-forked, setsid'd child comes back to it."""
    monkeypatch.setenv("PONDER_SANDBOX", "rlimit")
    monkeypatch.setattr(sandbox, "_warned", True)
    code = (
        "import os, time\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.write(w, str(os.getpid()).encode())\n"
        "        time.sleep(30)\n"
        "    os._exit(0)\n"
        "print(os.read(r, 20).decode())\n"
    )
    r = run_code(code, [])
    assert r.passed, r.stderr
    pid = int(r.stdout)
    time.sleep(0.05)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = "gone"
    assert state in ("gone", "Z", "X"), f"detached child {pid} survived the run ({state})"
