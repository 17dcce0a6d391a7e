"""The code sandbox against hostile programs: each a real program run through harness.sandbox (bubblewrap).

Needs bubblewrap (apt-get installs it when we are root, else these tests are skipped with that reason). Run as
root, the sandbox drops to nobody before bwrap, so the path a non-root user takes (bwrap in an unprivileged user
namespace) is the one tested; `test_an_unprivileged_caller_gets_the_same_sandbox` also runs it from a process
that never was root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import sandbox
from harness.sandbox import IsolationUnavailable, Limits
from tests.conftest import ROOT, debian_package

QUICK = Limits(wall_s=3.0, cpu_s=3)


@pytest.fixture(scope="module", autouse=True)
def bubblewrap():
    debian_package("bubblewrap", "/usr/bin/bwrap", "the sandbox tests")
    sandbox.bubblewrap_problem.cache_clear()
    assert sandbox.bubblewrap_problem() is None, sandbox.bubblewrap_problem()


def nobody_processes(settle_s: float = 5.0) -> list[str]:
    """Command lines of the processes of uid 65534 (the sandbox's user when the tests run as root) still there after
    up to `settle_s` (a PID namespace's processes die asynchronously once its init is gone)."""
    deadline = time.monotonic() + settle_s
    while (left := _nobody()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _nobody() -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == 65534:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return out


def test_a_legit_program_reads_stdin_and_its_files_and_passes():
    out = sandbox.run("import sys\nprint(sum(map(int, sys.stdin.read().split())), open('/sandbox/n.txt').read())",
                      stdin="2 3 4", files={"n.txt": b"ok"})  # fmt: skip
    assert (out.status, out.stdout, out.reason) == ("ok", "9 ok\n", "")


def test_no_socket_reaches_a_listener_on_this_machine():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        out = sandbox.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('in')")
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing connected
    assert out.status == "error" and "in" not in out.stdout
    assert "ConnectionRefusedError" in out.stderr or "OSError" in out.stderr, out.stderr


def test_the_checkout_results_and_home_are_invisible_and_untouched(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    targets = [ROOT / "EVIL_FROM_SANDBOX", ROOT / "results" / "EVIL_FROM_SANDBOX", victim]
    program = f"""
import os, shutil
seen = []
for p in {[str(t) for t in targets]!r} + ["{ROOT}", "{ROOT / "results"}", "/root", "/home", "/etc/passwd"]:
    seen.append(os.path.exists(p))
for p in {[str(t) for t in targets]!r}:
    for attack in (lambda: open(p, "w").write("x"), lambda: os.remove(p), lambda: shutil.rmtree(os.path.dirname(p))):
        try:
            attack()
        except OSError:
            pass
os.system("rm -rf {tmp_path} 2>/dev/null; touch {ROOT}/EVIL_FROM_SANDBOX 2>/dev/null")
print(seen)
"""
    out = sandbox.run(program)
    assert out.ok, out.stderr
    assert out.stdout.strip() == str([False] * 8)
    assert victim.read_text() == "keep me"
    assert not (ROOT / "EVIL_FROM_SANDBOX").exists() and not (ROOT / "results" / "EVIL_FROM_SANDBOX").exists()


def test_secrets_in_the_environment_and_home_never_reach_the_program(tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine huggingface.co login me password hf_sandboxNetrcSecret42\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_TOKEN", "hf_sandboxEnvSecret42")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow_sandboxEnvSecret42")
    program = f"""
import os
print(dict(os.environ))
for p in ("{netrc}", os.path.expanduser("~/.netrc"), "/proc/1/environ", "/proc/self/environ"):
    try:
        print(open(p, "rb").read())
    except OSError as e:
        print(type(e).__name__)
"""
    out = sandbox.run(program)
    assert out.ok, out.stderr
    assert "Secret42" not in out.stdout + out.stderr
    assert "HF_TOKEN" not in out.stdout and "MLFLOW" not in out.stdout


def test_a_fork_bomb_is_contained_and_leaves_no_process():
    start = time.monotonic()
    out = sandbox.run("import os\nwhile True:\n    os.fork()", limits=QUICK)
    assert out.status != "ok" and time.monotonic() - start < 10
    assert nobody_processes() == []


def test_a_memory_bomb_fails_inside_its_limit():
    out = sandbox.run("x = bytearray(4 * 1024**3)\nprint('allocated')", limits=Limits(memory_mb=256))
    assert out.status == "error" and "MemoryError" in out.stderr and "allocated" not in out.stdout


def test_an_infinite_loop_and_a_sleeper_are_killed_at_the_wall_limit():
    for program in ("while True:\n    pass", "import time\ntime.sleep(1000)"):
        start = time.monotonic()
        out = sandbox.run(program, limits=Limits(wall_s=1.0, cpu_s=5))
        assert out.status == "timeout" and time.monotonic() - start < 5, out


def test_a_large_stdin_the_program_never_reads_does_not_hold_the_wall_limit():
    start = time.monotonic()
    out = sandbox.run("import time\ntime.sleep(100)", stdin="x" * (8 << 20), limits=Limits(wall_s=1.0))
    assert out.status == "timeout" and time.monotonic() - start < 5
    echoed = sandbox.run("import sys\nprint(len(sys.stdin.read()))", stdin="y" * (4 << 20))
    assert echoed.stdout == f"{4 << 20}\n"


def test_huge_output_is_cut_at_the_cap():
    out = sandbox.run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", limits=Limits(output_bytes=100_000))
    assert out.status == "output_limit" and len(out.stdout) == 100_000


def test_a_background_process_does_not_outlive_the_call():
    program = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/usr/bin/python3", ["/usr/bin/python3", "-c", "import time; time.sleep(60)", "sandbox-orphan-probe"])
    os._exit(0)
time.sleep(0.3)
print("parent leaves")
"""
    out = sandbox.run(program, limits=QUICK)
    assert out.stdout == "parent leaves\n"
    nobody_processes()
    assert not [c for c in nobody_processes() + _all_cmdlines() if "sandbox-orphan-probe" in c]


def _all_cmdlines() -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return out


def test_writes_fill_only_a_bounded_private_tmp():
    program = "open('/tmp/big', 'wb').write(b'x' * (64 << 20))\nprint('wrote')"
    out = sandbox.run(program, limits=Limits(tmp_mb=8))
    assert out.status != "ok" and "wrote" not in out.stdout
    assert sandbox.run("import os\nprint(os.listdir('/tmp'))").stdout == "[]\n"  # nothing carries over


def test_without_bubblewrap_code_rewards_refuse_unless_the_weak_mode_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    sandbox.bubblewrap_problem.cache_clear()
    try:
        with pytest.raises(IsolationUnavailable, match="bwrap is not installed.*weak-rlimits-only"):
            sandbox.run("print(1)")
        from harness.rewards import REWARDS

        with pytest.raises(IsolationUnavailable):
            REWARDS.get("unit_tests").build()
        monkeypatch.setenv("PATH", "/usr/bin:/bin")
        weak = sandbox.run("print(1)", isolation="weak-rlimits-only")
        assert weak.ok and weak.stdout == "1\n"
    finally:
        sandbox.bubblewrap_problem.cache_clear()


def test_an_unprivileged_caller_gets_the_same_sandbox():
    """harness/sandbox.py (stdlib only) run by a process that is nobody from the start: bwrap in an unprivileged user
    namespace, the limits still hold."""
    if os.geteuid() != 0:
        pytest.skip("this test drops from root to nobody; run unprivileged, the other tests already are")
    where = Path(tempfile.mkdtemp(prefix="sandbox-unprivileged-"))  # pytest's tmp_path is root's alone
    os.chmod(where, 0o755)
    shutil.copy(ROOT / "harness" / "sandbox.py", where / "sandbox.py")
    probe = (
        "import sandbox\n"
        "assert sandbox.bubblewrap_problem() is None, sandbox.bubblewrap_problem()\n"
        "print(sandbox.run('import os; print(os.getuid(), os.path.exists(\"/work\"))').stdout.strip())\n"
        "print(sandbox.run('import os\\nwhile True: os.fork()', limits=sandbox.Limits(wall_s=3)).status)\n"
    )
    try:
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I", "-c",
             f"import sys; sys.path.insert(0, {str(where)!r}); exec({probe!r})"],
            capture_output=True, text=True, timeout=60, cwd=where, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
    finally:
        shutil.rmtree(where)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "65534 False" and second in ("error", "killed", "timeout"), done.stdout
