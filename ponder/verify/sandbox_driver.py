"""The trusted driver that runs inside each sandbox (see ``ponder.verify.sandbox``).

``_driver`` is shipped into the sandbox as a marshalled code object (``_DRIVER_CODE``, loaded by
the one-line ``_BOOT`` program given to ``python -I -S -c``), so the sandbox compiles nothing of
ours. It must therefore be self-contained: imports inside the function, no module globals, and
only stdlib modules that load fast (no json/re/signal: their imports cost 5-10 ms per run on
this machine). It reads one job (``marshal``: code, tests, limits, uid, mode) from stdin, forks
one child per execution (the child applies the limits, drops to the job's uid and runs the
code), enforces the wall time, sweeps leftover processes, and prints the executions' records as
a ``repr`` for the host side to classify.
"""

from __future__ import annotations

import marshal
from typing import Any


def _driver(stdin: Any) -> None:  # noqa: C901 - one self-contained function by necessity
    """Run the executions of one job (read from ``stdin``) and print their results as a repr."""
    import marshal
    import os
    import resource
    import select
    import time

    job = marshal.loads(stdin.read())
    lim, uid, scratch, cwd = job["limits"], job["uid"], job["scratch"], job["cwd"]
    keep_read = job.get("keep_read", False)
    reduced = job["mode"] == "rlimit"
    # kill(-1) from our own uid is safe only inside bwrap's PID namespace: every sign of it
    # must hold (a wrong job must never turn this into killing the host's processes)
    try:
        with open("/proc/1/comm") as f:
            init_is_bwrap = f.read().strip() == "bwrap"
        own_pidns = (job["mode"] == "bwrap" and init_is_bwrap and os.getpid() == 2 and os.getppid() == 1
                     and os.readlink("/proc/self/ns/pid") != job["host_pidns"])  # fmt: skip
    except OSError:
        own_pidns = False
    libc = None
    if reduced or uid < 0:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE=0: same-uid code may not ptrace us
        if reduced:
            libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come back to us
    fsize = lim["output_bytes"]
    keep = lim["report_chars"]

    def count_tasks(user):
        # tasks (threads included) of `user` visible in /proc: RLIMIT_NPROC counts them all
        n = 0
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if os.stat("/proc/" + d).st_uid == user:
                        n += len(os.listdir("/proc/" + d + "/task"))
                except OSError:
                    pass
        return n

    def child(fds, kind, code, asserts):
        # runs in the forked child; never returns
        try:
            os.setpgid(0, 0)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            os.closerange(4, 1 << 16)
            nproc = lim["processes"]
            if uid < 0 and os.getuid() != 0:  # our uid is shared: allow what exists plus the limit
                nproc += count_tasks(os.getuid()) - 1  # minus this process, counted in the limit
            cpu = lim["cpu_seconds"]
            for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, lim["memory_bytes"]),
                               (resource.RLIMIT_NOFILE, lim["open_files"]), (resource.RLIMIT_FSIZE, fsize),
                               (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, nproc)):  # fmt: skip
                resource.setrlimit(res, value if isinstance(value, tuple) else (value, value))
            if uid >= 0:
                if keep_read:
                    # reduced mode as root, interpreter under a private dir (/root/.pyenv):
                    # keep only the right to read and search files across the uid change
                    libc.prctl(8, 1, 0, 0, 0)  # PR_SET_KEEPCAPS
                    for cap in range(64):  # PR_CAPBSET_DROP all but CAP_DAC_READ_SEARCH (2)
                        if cap != 2:
                            libc.prctl(24, cap, 0, 0, 0)  # EINVAL past the last cap: ignored
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                if keep_read:
                    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, self
                    sets = (ctypes.c_uint32 * 6)(1 << 2, 1 << 2, 0, 0, 0, 0)  # effective, permitted, inheritable
                    if libc.capset(header, sets) != 0:
                        raise OSError(ctypes.get_errno(), "capset")
                    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no privileges back via exec
            if reduced:  # after setuid, which clears it: die with the driver
                libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG=SIGKILL
            os.chdir(cwd)
        except BaseException as e:
            os.write(3, ("E\tsandbox error\tsetup: %r\n" % (e,)).encode())
            os._exit(125)
        run_user(kind, code, asserts)

    def run_user(kind, code, asserts):
        import builtins
        import sys

        sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
        sys.argv = ["solution.py"]
        rep = open(3, "w", encoding="utf-8", errors="backslashreplace", closefd=False)

        def report(*parts):
            rep.write("\t".join(" ".join(str(p).split())[:500] for p in parts) + "\n")
            rep.flush()

        def quit_(code=None):  # site.py is not loaded (-S); programs still call exit()
            raise SystemExit(code)

        def failed(e):
            try:
                import traceback

                traceback.print_exception(type(e), e, e.__traceback__ and e.__traceback__.tb_next)
            except BaseException:
                pass
            why = "memory" if isinstance(e, MemoryError) else "runtime error"
            report("E", why, "%s: %s" % (type(e).__name__, e))

        def finish(status):
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:  # EFBIG past the output limit: the driver sees the size
                    pass
            os._exit(status)

        builtins.exit = builtins.quit = quit_
        scope = {"__name__": "__main__", "__builtins__": builtins}
        try:
            compiled = compile(code, "solution.py", "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
            sys.stderr.write("%s: %s\n" % (type(e).__name__, e))
            report("E", "syntax error", "%s: %s" % (type(e).__name__, e))
            finish(1)
        status = 0
        try:
            exec(compiled, scope)
        except SystemExit as e:  # io: the exit status counts; assert: loading simply ended
            if kind == "io" and e.code is not None:
                if isinstance(e.code, int):
                    status = e.code & 0xFF
                else:
                    sys.stderr.write("%s\n" % (e.code,))
                    status = 1
        except BaseException as e:
            failed(e)
            finish(1)
        if kind == "assert":
            report("S")
            for i, test in enumerate(asserts):
                try:
                    exec(compile(test, "test_%d" % i, "exec"), scope)
                    report("T", i, "passed")
                except AssertionError as e:
                    report("T", i, "wrong answer", e)
                except BaseException as e:
                    report("T", i, "memory" if isinstance(e, MemoryError) else "runtime error",
                           "%s: %s" % (type(e).__name__, e))  # fmt: skip
            report("D")
        finish(status)

    def sweep(pid):
        # kill whatever the execution left behind, so nothing survives into the next one
        try:
            os.killpg(pid, 9)
        except OSError:
            pass
        if uid >= 0:
            # the code's uid belongs to this execution alone: a helper that takes that uid and
            # sends kill(-1) can reach exactly the code's processes, wherever they are
            killer = os.fork()
            if killer == 0:
                try:
                    os.setgid(uid)
                    os.setuid(uid)
                    os.kill(-1, 9)
                finally:
                    os._exit(0)
            os.waitpid(killer, 0)
        elif own_pidns:
            try:
                os.kill(-1, 9)  # everything in bwrap's PID namespace except its init and us
            except OSError:
                pass
        if libc is not None and reduced:  # subreaper: escaped descendants are our children
            me = os.getpid()
            for _ in range(1000):
                try:
                    with open("/proc/%d/task/%d/children" % (me, me)) as f:
                        kids = [int(k) for k in f.read().split()]
                except OSError:
                    kids = []
                if not kids:
                    break
                for k in kids:
                    try:
                        os.kill(k, 9)
                        os.waitpid(k, 0)
                    except OSError:
                        pass
        if uid >= 0 or own_pidns:
            # killed is not yet gone: wait until the kernel has torn them down (and freed
            # their RLIMIT_NPROC count) so the next execution starts from nothing
            me = str(os.getpid())
            for _ in range(2000):
                for d in os.listdir("/proc"):
                    if d.isdigit() and d != me and d != "1":
                        try:
                            if uid < 0 or os.stat("/proc/" + d).st_uid == uid:
                                break
                        except OSError:
                            pass
                else:
                    return
                time.sleep(0.001)

    def read(path, limit):
        with open(path, "rb") as f:
            return f.read(limit)

    def norm(text):
        return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())

    def execute(kind, stdin_text, expected):
        names = [scratch + "/" + n for n in ("in", "out", "err", "rep")]
        with open(names[0], "wb") as f:
            f.write(stdin_text.encode("utf-8", "surrogatepass"))
        fds = [os.open(names[0], os.O_RDONLY)]
        fds += [os.open(n, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) for n in names[1:]]
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            child(fds, kind, job["code"], job["asserts"])
        for fd in fds:
            os.close(fd)
        deadline = start + lim["wall_seconds"]
        timed_out = False
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                os.kill(pid, 9)
                done, status, usage = os.wait4(pid, 0)
                break
            if pidfd is not None:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.poll(max(1, int(left * 1000)))
            else:
                time.sleep(min(left, 0.005))
        wall = time.monotonic() - start
        if pidfd is not None:
            os.close(pidfd)
        sweep(pid)
        out = read(names[1], fsize + 1)
        err = read(names[2], fsize + 1)
        n_lines = len(job["asserts"]) + 8  # one per test, plus S, D and an error
        rep = read(names[3], n_lines * 1100).decode("utf-8", "replace").splitlines()[:n_lines]
        text = out.decode("utf-8", "replace")
        return {
            "status": status, "timed_out": timed_out, "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "out_over": len(out) >= fsize, "err_over": len(err) >= fsize,
            "stdout": text[:keep], "stderr": err.decode("utf-8", "replace")[-keep:],
            "report": [line[:1000] for line in rep],
            "match": None if expected is None else norm(text) == norm(expected),
        }  # fmt: skip

    results = []
    if job["asserts"] or not job["cases"]:
        results.append(execute("assert", "", None))
    for stdin_text, expected in job["cases"]:
        results.append(execute("io", stdin_text, expected))
    data = repr(results).encode()
    while data:
        data = data[os.write(1, data):]
    os._exit(0)  # skip interpreter teardown (~1 ms)


# One line that loads the driver: the first stdin line is the size of its marshalled code.
_BOOT = (
    "import marshal,sys;r=sys.stdin.buffer;c=marshal.loads(r.read(int(r.readline())));"
    "type(lambda:0)(c,{'__builtins__':__builtins__})(r)"
)
_DRIVER_CODE = marshal.dumps(_driver.__code__)
