"""Running model-written programs: bubblewrap namespaces plus resource limits, or nothing.

A program runs as `python3 -I -S` (the system interpreter, no site-packages, no environment hooks) inside a
bubblewrap sandbox:

- **namespaces**: new user, PID, network, mount, IPC, UTS and cgroup namespaces (`bwrap --unshare-all`). The
  network namespace has only a loopback device that is down, so no socket reaches anything. The PID namespace
  ends with the call: when it returns, every process the program started (background, double-forked, setsid)
  is killed with it. Nested user namespaces are refused (`--disable-userns`).
- **filesystem**: a fresh root holding `/usr` (and its `/bin`, `/lib` links) read-only, a private `/proc` and
  `/dev`, and a size-limited tmpfs at `/tmp`, the only writable place. The program and its input files are
  copied in (`--ro-bind-data`); no path of the host (checkout, `results/`, home, `/etc`) is visible.
- **identity and environment**: run as root, the harness first drops to `nobody` (setpriv); inside, the
  environment is cleared to PATH and LANG, so no token, password or tracking URI is inherited.
- **limits** (prlimit, set inside the namespace): CPU seconds, address space, processes, open files, file size,
  no core dumps; plus a wall-clock limit and a cap on the bytes read from stdout/stderr, both enforced here by
  killing the sandbox.

`isolation="weak-rlimits-only"` is the weaker mode for machines without usable user namespaces: the same limits, a
private working directory and a cleared environment, but no network, filesystem or PID isolation. It is
never chosen silently: a reward asks for it by name (its `isolation` argument), and the run's tags record it.
"""

from __future__ import annotations

import functools
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

PYTHON = "/usr/bin/python3"
"""The interpreter programs run under: the system's, read from the read-only /usr (never the project's venv)."""

ISOLATIONS = ("bubblewrap", "weak-rlimits-only")
"""The strong mode, and the weak one, named so that every tag and log that records it says so."""


class IsolationUnavailable(RuntimeError):
    """The sandbox cannot isolate here (no bwrap, or user namespaces are disabled)."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 5.0
    """Wall-clock seconds before the whole sandbox is killed."""
    cpu_s: int = 5
    """CPU seconds (RLIMIT_CPU) per process."""
    memory_mb: int = 512
    """Address space per process (RLIMIT_AS), MiB."""
    processes: int = 32
    """Processes and threads the program may have at once (RLIMIT_NPROC inside its namespace)."""
    output_bytes: int = 1 << 20
    """Bytes read from stdout and from stderr each; more kills the program."""
    tmp_mb: int = 16
    """Size of the writable /tmp, MiB."""
    files: int = 64
    """Open file descriptors (RLIMIT_NOFILE)."""


@dataclass(frozen=True)
class Outcome:
    status: str
    """ok | error (non-zero exit) | timeout | output_limit | killed (by a signal, e.g. a limit) | refused."""
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def reason(self) -> str:
        """One line saying why a program did not pass, for logs ('' when it ran cleanly)."""
        if self.ok:
            return ""
        tail = self.stderr.strip().splitlines()[-1:] or [""]
        return f"{self.status} (rc {self.returncode}) {tail[0][:200]}".strip()


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot isolate a program here, or None when it can (checked once per process by running
    `true` in a sandbox)."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if not os.path.exists(PYTHON):
        return f"{PYTHON} is missing: programs run under the system Python"
    try:
        done = subprocess.run(_bwrap_command(Limits(), {}) + ["/bin/true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap did not start: {e}"
    if done.returncode != 0:
        return f"bwrap failed (user namespaces disabled?): {done.stderr.decode(errors='replace').strip()[:300]}"
    return None


def check_isolation(isolation: str) -> None:
    """Raise IsolationUnavailable unless `isolation` can run here; the weak mode always can."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"unknown isolation {isolation!r} (known: {', '.join(ISOLATIONS)})")
    if isolation == "bubblewrap" and (problem := bubblewrap_problem()):
        raise IsolationUnavailable(
            f"the code sandbox cannot isolate programs here: {problem}. Install bubblewrap, or accept the weaker "
            "mode (no network, filesystem or PID isolation) by name: the reward's isolation: weak-rlimits-only"
        )


def _bwrap_command(limits: Limits, data: dict[str, int]) -> list[str]:
    """bwrap's argument list up to (not including) the program: `data` maps sandbox paths to fds to copy in."""
    cmd = _unprivileged() + [
        "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8", "--setenv", "HOME", "/tmp",
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
        "--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_mb << 20), "--tmpfs", "/tmp",
        "--dir", "/sandbox",
    ]  # fmt: skip
    for dest, fd in data.items():
        cmd += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
    return cmd + ["--chdir", "/tmp", "--", "prlimit", *_prlimit_args(limits), "--"]


def _unprivileged() -> list[str]:
    """Run as root, drop to nobody first: root is exempt from RLIMIT_NPROC and may write what it likes."""
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] if os.geteuid() == 0 else []


def _prlimit_args(limits: Limits) -> list[str]:
    mem = limits.memory_mb << 20
    return [f"--cpu={limits.cpu_s}", f"--as={mem}", f"--nproc={limits.processes}", f"--nofile={limits.files}",
            f"--fsize={limits.tmp_mb << 20}", "--core=0"]  # fmt: skip


def _memfd(name: str, content: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, content) if len(content) < (1 << 16) else _write_all(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


def run(
    program: str,
    *,
    stdin: str = "",
    files: dict[str, bytes] | None = None,
    limits: Limits = Limits(),
    isolation: str = "bubblewrap",
) -> Outcome:
    """Run a Python `program` with `stdin`; `files` (name -> content) are readable at /sandbox/<name> (and
    `open(name)` from the working directory is /tmp, so use the absolute path). Never raises for what the
    program does; raises IsolationUnavailable when the isolation asked for cannot run here."""
    check_isolation(isolation)
    files = files or {}
    bad = [n for n in files if not n or "/" in n or n.startswith(".")]
    if bad:
        raise ValueError(f"sandbox file names must be plain names, got {bad}")
    fds: list[int] = []
    workdir = None
    try:
        if isolation == "bubblewrap":
            data = {"/sandbox/main.py": _memfd("main.py", program.encode())}
            data.update({f"/sandbox/{n}": _memfd(n, c) for n, c in files.items()})
            fds = list(data.values())
            cmd = _bwrap_command(limits, data) + [PYTHON, "-I", "-S", "/sandbox/main.py"]
            popen = dict(pass_fds=fds)
        else:
            workdir = tempfile.mkdtemp(prefix="harness-sandbox-")
            for n, c in {"main.py": program.encode(), **files}.items():
                with open(os.path.join(workdir, n), "wb") as f:
                    f.write(c)
            if os.geteuid() == 0:
                os.chown(workdir, 65534, 65534)
            cmd = _unprivileged() + [
                "prlimit",
                *_prlimit_args(limits),
                "--",
                PYTHON,
                "-I",
                "-S",
                os.path.join(workdir, "main.py"),
            ]
            popen = dict(cwd=workdir, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir})
        return _supervise(cmd, stdin.encode(), limits, popen)  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _supervise(cmd: list[str], stdin: bytes, limits: Limits, popen: dict) -> Outcome:
    """Start `cmd` in its own session, feed stdin, read capped output until exit, wall limit or output limit."""
    start = time.monotonic()
    env = popen.pop("env", {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env=env, **popen,
    )  # fmt: skip
    # fed from a thread: a program that never reads a large stdin must not block us past the wall limit
    feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
    feeder.start()
    out = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    status = None
    with selectors.DefaultSelector() as sel:
        for stream in out:
            os.set_blocking(stream.fileno(), False)
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map():
            left = limits.wall_s - (time.monotonic() - start)
            if left <= 0:
                status = "timeout"
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                chunk = key.fileobj.read(65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                out[key.fileobj] += chunk
                if len(out[key.fileobj]) > limits.output_bytes:
                    status = "output_limit"
            if status:
                break
    if status:
        _kill(proc)
    try:
        rc = proc.wait(timeout=max(0.1, limits.wall_s - (time.monotonic() - start)) if not status else 10)
    except subprocess.TimeoutExpired:  # output closed but the process lingers: the wall limit still holds
        status = "timeout"
        _kill(proc)
        rc = proc.wait()
    _kill(proc)  # what the program left behind in its session (the weak mode has no PID namespace to end)
    proc.stdout.close()
    proc.stderr.close()
    if status is None:
        status = "ok" if rc == 0 else ("killed" if rc < 0 or rc > 128 else "error")
    text = [bytes(out[s][: limits.output_bytes]).decode(errors="replace") for s in (proc.stdout, proc.stderr)]
    return Outcome(status, rc, text[0], text[1], time.monotonic() - start)


def _feed(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except (BrokenPipeError, ValueError, OSError):  # the program exited or was killed first
        pass


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the sandbox's whole session; bwrap's death takes its PID namespace, and everything in it, along."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_many(jobs: Iterable[dict], workers: int | None = None) -> list[Outcome]:
    """`run(**job)` for each job, `workers` at a time (default: the cores this process may use), in order."""
    jobs = list(jobs)
    workers = workers or len(os.sched_getaffinity(0))
    if len(jobs) <= 1 or workers == 1:
        return [run(**j) for j in jobs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda j: run(**j), jobs))
