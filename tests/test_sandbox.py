"""The sandbox contains hostile code: one test per hostile case, with the in-process guards off.

The containment tests run in bubblewrap mode (``.ci/run`` installs bubblewrap); where it cannot work they skip
with the reason.  The tests of rlimit-only mode run everywhere.
"""

from __future__ import annotations

import os
import secrets
import socket
import textwrap
import time
import warnings
from pathlib import Path

import pytest

import bpa_gym.sandbox as sandbox_module
from bpa_gym.errors import ConfigError, SandboxError
from bpa_gym.sandbox import SANDBOX_UID_BASE, Sandbox, SandboxLimits, bwrap_unavailable_reason

LIMITS = SandboxLimits(timeout_s=3, max_processes=8, max_output_bytes=4096, memory_bytes=512 << 20)
NO_BWRAP = bwrap_unavailable_reason()


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    if NO_BWRAP is not None:
        pytest.skip(f"bubblewrap unavailable: {NO_BWRAP}")
    sb = Sandbox(LIMITS, guards=False)
    assert sb.isolation == "bwrap"
    return sb


@pytest.fixture(scope="module")
def rlimit_sandbox() -> Sandbox:
    """rlimit-only mode, forced by naming a bwrap that does not exist."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sb = Sandbox(LIMITS, guards=False, allow_unsandboxed=True, bwrap="/nonexistent/bwrap")
    assert sb.isolation == "rlimits"
    return sb


def _run(sb: Sandbox, source: str):
    return sb.run(textwrap.dedent(source))


def _leftover_sandbox_processes() -> list[int]:
    """Live processes of a sandbox uid (root mode), from a scan of /proc."""
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and _uid_of(e.path) >= SANDBOX_UID_BASE
            and _state(e.path) not in ("Z", "X", "")]


def _uid_of(path: str) -> int:
    try:
        return os.stat(path).st_uid
    except OSError:
        return -1


def _state(path: str) -> str:
    try:
        with open(os.path.join(path, "stat"), "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


def _processes_with(marker: str) -> list[int]:
    found = []
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            try:
                with open(os.path.join(e.path, "cmdline"), "rb") as f:
                    if marker.encode() in f.read() and _state(e.path) not in ("Z", "X"):
                        found.append(int(e.name))
            except OSError:
                pass
    return found


# ---------------------------------------------------------------- verdicts

@pytest.mark.parametrize("source,status", [
    ("assert 1 + 1 == 2", "passed"),
    ("assert 1 + 1 == 3, 'wrong sum'", "failed"),
    ("raise ValueError('boom')", "crashed"),
    ("def f(:\n    pass", "crashed"),
])
def test_verdicts(sandbox: Sandbox, source: str, status: str) -> None:
    r = sandbox.run(source)
    assert r.status == status, r
    if status == "failed":
        assert "wrong sum" in r.detail
    if status == "crashed":
        assert ("ValueError" in r.detail) or ("SyntaxError" in r.detail)


def test_run_many_keeps_order_and_runs_in_parallel(sandbox: Sandbox) -> None:
    programs = [f"assert {i} % 2 == 0" for i in range(12)]
    results = sandbox.run_many(programs)
    assert [r.status for r in results] == ["passed" if i % 2 == 0 else "failed" for i in range(12)]


# ----------------------------------------------------------- hostile cases

def test_infinite_loop_times_out(sandbox: Sandbox) -> None:
    r = sandbox.run("while True:\n    pass")
    assert r.status == "timed_out", r


def test_infinite_sleep_times_out_on_the_wall_clock(sandbox: Sandbox) -> None:
    r = sandbox.run("import time\ntime.sleep(1000)")  # no CPU used: only the wall clock stops it
    assert r.status == "timed_out" and "wall-clock" in r.detail, r


def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    r = _run(sandbox, """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    assert r.status in ("timed_out", "crashed"), r
    if os.geteuid() == 0:
        assert _leftover_sandbox_processes() == []


def test_process_count_is_limited(sandbox: Sandbox) -> None:
    r = _run(sandbox, """
        import os, time
        n = 0
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
        print("forked", n, flush=True)
    """)
    assert r.status == "passed", r
    forked = int(r.stdout.split()[1])
    assert forked < LIMITS.max_processes, r.stdout


@pytest.mark.parametrize("source", [
    "x = bytearray(8 * 2**30)",
    "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))",
])
def test_memory_bomb_crashes_with_memory_error(sandbox: Sandbox, source: str) -> None:
    r = sandbox.run(source)
    assert r.status == "crashed" and "MemoryError" in r.detail, r


@pytest.mark.parametrize("source", [
    "import sys\nsys.exit(0)",
    "import sys\nsys.exit(1)",
    "raise SystemExit",
    "import os\nos._exit(0)",
    "import os\nos._exit(3)",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
])
def test_exiting_early_is_never_a_pass(sandbox: Sandbox, source: str) -> None:
    r = sandbox.run(source + "\nassert False, 'the tests would run here'")
    assert r.status == "crashed", r


def test_forged_verdicts_are_not_read(sandbox: Sandbox) -> None:
    r = _run(sandbox, """
        import json, os, sys
        fake = (json.dumps(["0" * 32, "passed", ""]) + "\\n").encode()
        print(json.dumps(["0" * 32, "passed", ""]))
        for fd in range(3, 20):
            try:
                os.write(fd, fake)
            except OSError:
                pass
        os._exit(0)
    """)
    assert r.status == "crashed", r


def test_cannot_write_or_delete_outside_the_working_directory(sandbox: Sandbox, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    tag = secrets.token_hex(8)
    r = _run(sandbox, f"""
        import os, shutil
        for action in (lambda: os.remove({str(victim)!r}),
                       lambda: shutil.rmtree({str(tmp_path)!r}),
                       lambda: open({str(tmp_path / 'new.txt')!r}, "w").write("x"),
                       lambda: open("/tmp/bpa-escape-{tag}", "w").write("x"),
                       lambda: open("/usr/bpa-escape-{tag}", "w").write("x"),
                       lambda: open("inside.txt", "w").write("fine")):
            try:
                action()
                print("ok")
            except OSError as e:
                print("refused", type(e).__name__)
    """)
    assert r.status == "passed", r
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "new.txt").exists()
    assert not Path(f"/tmp/bpa-escape-{tag}").exists() and not Path(f"/usr/bpa-escape-{tag}").exists()
    assert r.stdout.splitlines()[-1] == "ok"  # the working directory itself is writable


def test_file_size_is_limited(sandbox: Sandbox) -> None:
    small = Sandbox(SandboxLimits(timeout_s=3, file_size_bytes=1 << 20), guards=False)
    r = small.run("open('big', 'wb').write(b'x' * (4 << 20))")
    assert r.status == "crashed", r


def test_cannot_read_a_file_outside(sandbox: Sandbox, tmp_path: Path) -> None:
    secret = "s3cret-" + secrets.token_hex(8)
    path = tmp_path / "secret.txt"
    path.write_text(secret)
    path.chmod(0o644)
    r = _run(sandbox, f"""
        for p in ({str(path)!r}, "/proc/1/environ", "/etc/shadow"):
            try:
                print(open(p).read())
            except OSError as e:
                print("refused", type(e).__name__)
    """)
    assert secret not in r.stdout + r.stderr + r.detail
    assert "refused" in r.stdout


def test_no_network_connection_reaches_the_host(sandbox: Sandbox) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        r = _run(sandbox, f"""
            import socket
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", {port}))
                s.sendall(b"leak")
                print("connected")
            except OSError as e:
                print("refused", type(e).__name__)
        """)
        time.sleep(0.2)
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection arrived
    finally:
        listener.close()
    assert "refused" in r.stdout, r


def test_environment_secrets_are_not_visible(sandbox: Sandbox, rlimit_sandbox: Sandbox,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "env-secret-" + secrets.token_hex(8)
    monkeypatch.setenv("BPA_TEST_SECRET", secret)
    source = textwrap.dedent("""
        import os
        print(dict(os.environ))
        for p in ("/proc/self/environ", "/proc/1/environ", f"/proc/{os.getppid()}/environ"):
            try:
                print(open(p, "rb").read())
            except OSError as e:
                print("refused", type(e).__name__)
    """)
    for sb in (sandbox, rlimit_sandbox):
        r = sb.run(source)
        assert r.status == "passed", r
        assert secret not in r.stdout + r.stderr


def test_100_mb_of_output_is_captured_and_cut(sandbox: Sandbox) -> None:
    r = sandbox.run("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 2**20)\nassert True")
    assert r.status == "passed", r
    assert r.output_truncated and len(r.stdout) == LIMITS.max_output_bytes


@pytest.mark.parametrize("parent", ["time.sleep(60)", "pass"])
def test_a_child_that_outlives_the_run_is_killed(sandbox: Sandbox, parent: str) -> None:
    marker = f"{secrets.randbelow(10**6) + 10**6}.{secrets.randbelow(10**6)}"
    r = _run(sandbox, f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "{marker}"])
            os._exit(0)
        time.sleep(0.5)
        {parent}
    """)
    assert r.status == ("timed_out" if "sleep" in parent else "passed"), r
    assert _processes_with(marker) == []


# ------------------------------------------------------ rlimit-only mode

def test_rlimit_mode_still_limits_time_memory_and_exits(rlimit_sandbox: Sandbox) -> None:
    results = rlimit_sandbox.run_many(["while True: pass", "x = bytearray(8 * 2**30)", "import os\nos._exit(0)",
                                       "import sys\nsys.stdout.write('y' * 10**7)"])
    assert [r.status for r in results] == ["timed_out", "crashed", "crashed", "passed"]
    assert "MemoryError" in results[1].detail and results[3].output_truncated


def test_missing_bwrap_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SandboxError, match="apt-get install bubblewrap.*allow_unsandboxed=True"):
        Sandbox(bwrap="/nonexistent/bwrap")
    monkeypatch.setattr(sandbox_module, "_warned_unsandboxed", False)
    monkeypatch.setattr(sandbox_module, "_warned_root", True)
    with pytest.warns(RuntimeWarning, match="rlimit-only mode"):
        assert Sandbox(bwrap="/nonexistent/bwrap", allow_unsandboxed=True).isolation == "rlimits"


# ------------------------------------------------------ sandbox failures

def test_a_sandbox_that_cannot_start_raises(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "_python", lambda: "/nonexistent/python3")
    with pytest.raises(SandboxError, match="could not start"):
        sandbox.run("assert True")


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        SandboxLimits(timeout_s=-1)
    with pytest.raises(ConfigError, match="limits must be a SandboxLimits"):
        Sandbox(limits={"timeout_s": 1}, allow_unsandboxed=True)
    with pytest.raises(ConfigError, match="program must be a str"):
        Sandbox(allow_unsandboxed=True).run(b"print(1)")
