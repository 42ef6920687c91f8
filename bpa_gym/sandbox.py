"""Running untrusted Python (a Receiver's code) in a sandbox.

:class:`Sandbox` runs one Python program per fresh process and tells how it
ended (:class:`ExecutionResult`): ``passed`` (it ran to the end), ``failed``
(it raised :class:`AssertionError`: a test failed), ``timed_out`` (wall-clock
or CPU-time limit) or ``crashed`` (any other exception, ``sys.exit``,
``os._exit``, a syntax error, a signal, a resource limit).  The sandbox itself
failing to start is not a verdict: it raises :class:`~bpa_gym.errors.SandboxError`,
so a broken sandbox is never scored as a wrong answer.

What every execution gets (:class:`SandboxLimits` holds the numbers):

* Its own process, in its own session and process group, with a hard
  wall-clock timeout; at the timeout (and after every run) the whole process
  group is killed with ``SIGKILL``, and so is every process of the run's user
  (see below): a child that outlives its parent dies too.
* ``resource.setrlimit`` (soft = hard, so the program cannot raise them):
  address space (``RLIMIT_AS``), CPU seconds (``RLIMIT_CPU``), file size
  (``RLIMIT_FSIZE``), processes (``RLIMIT_NPROC``), open files
  (``RLIMIT_NOFILE``), no core dumps.
* ``RLIMIT_NPROC`` counts every process of a *user*, so when bpa_gym runs as
  root each concurrent execution runs as its own unprivileged uid
  (``SANDBOX_UID_BASE + ...``): the fork limit is per execution, root's
  exemption from it does not apply, the program cannot read root's files, and
  ``kill -9 -1`` as that uid ends anything it left behind.  As another user,
  the limit is that user's current process count plus ``max_processes``.
* A clean environment (``PATH``, ``LANG``, ``HOME`` only; ``python -I -S``):
  none of the parent's environment variables, no site-packages.
* A fresh temporary working directory, deleted afterwards.
* stdout and stderr captured, each cut at ``max_output_bytes`` (the rest is
  drained and counted, so a chatty program is not killed for it).
* With `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``,
  Debian package ``bubblewrap``; ``.ci/run`` installs it): new network, PID,
  IPC and UTS namespaces (no network at all, not even the host's loopback; the
  program sees only its own processes, and they all die with the sandbox), and a
  new mount namespace that shows only the system's ``/usr`` (read-only), the
  Python installation (read-only), a private ``/tmp`` and ``/dev``, and the
  working directory: the rest of the file system (home folders, the data, the
  caller's files) does not exist for the program.
* In-process guards (``os.system``, ``os.fork``, ``subprocess.Popen``,
  ``shutil.rmtree`` ... disabled before the program runs, as in OpenAI's
  ``human-eval``) are defence in depth only (``guards=False`` turns them
  off; the tests check containment with them off).

**Without bubblewrap** (not installed, or user namespaces disabled) a
:class:`Sandbox` refuses to start (:class:`~bpa_gym.errors.SandboxError` that
says how to install it) unless it is built with ``allow_unsandboxed=True``.
Then it warns once and runs in *rlimit-only* mode: everything above except the
namespaces.  The program can then open network connections, and read and write
whatever its user may (as root: the per-execution uid, so only world-readable
and world-writable files; if the Python installation is not readable by other
users, e.g. under ``/root``, the uid cannot be dropped and a fork bomb is only
stopped by the timeout).  Use it only for code you would run anyway.

The verdict travels on a private pipe, tagged with a per-run random nonce, so
output that merely *prints* "passed" (or exits with status 0 before the tests
ran) is never read as a pass.  A program that searches its own interpreter's
memory for the nonce could forge one: the sandbox contains code, it does not
make reward hacking impossible against an adversary that targets it.

Example:
    >>> sb = Sandbox(allow_unsandboxed=True)  # doctest: +SKIP
    >>> sb.run("assert 1 + 1 == 2").status  # doctest: +SKIP
    'passed'
    >>> programs = ["assert 1 == 2", "while True: pass", "import sys; sys.exit(0)"]
    >>> [r.status for r in sb.run_many(programs)]  # doctest: +SKIP
    ['failed', 'timed_out', 'crashed']
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from bpa_gym.common.validation import Arguments, Bool, PositiveFloat, PositiveInt, check
from bpa_gym.errors import ConfigError, SandboxError

#: How an execution ended (see the module docstring).
Verdict = Literal["passed", "failed", "timed_out", "crashed"]
VERDICTS: tuple[str, ...] = ("passed", "failed", "timed_out", "crashed")

#: First uid used for executions when running as root (one uid per concurrent execution and process).
SANDBOX_UID_BASE = 1_500_000_000

_KEEP_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp"}
_CHANNEL_CAP = 64 * 1024
_EXIT_GRACE_S = 0.5  # after the program exits, how long a leftover holder of its pipes may keep them open

# The trusted part that runs inside the sandbox: reads its settings and the program from stdin, applies the
# limits, drops the uid, then runs the program and reports the verdict (with the nonce) on a private pipe.
_HARNESS = r'''
import os, sys
def _harness():
    import json, resource
    raw = sys.stdin.buffer.read()
    header, _, program = raw.partition(b"\n")
    cfg = json.loads(header)
    fd = os.open(os.devnull, os.O_RDONLY); os.dup2(fd, 0); os.close(fd)
    write, dumps, channel, nonce = os.write, json.dumps, cfg["channel"], cfg["nonce"]
    def report(verdict, detail=""):
        try:
            sys.stdout.flush(); sys.stderr.flush()
        except BaseException:
            pass
        write(channel, (dumps([nonce, verdict, str(detail)[:2000]]) + "\n").encode())
    for name, value in cfg["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if cfg["uid"] is not None:
        os.setgroups([]); os.setgid(cfg["uid"]); os.setuid(cfg["uid"])
    write(channel, (json.dumps([nonce, "started", ""]) + "\n").encode())
    import traceback
    def describe(e):  # "Type: message", then where (the program's last frames)
        try:
            where = "".join(traceback.format_tb(e.__traceback__.tb_next, limit=-3))
            return "".join(traceback.format_exception_only(type(e), e)).strip() + "\n" + where
        except BaseException:
            return type(e).__name__
    try:
        code = compile(program.decode("utf-8", "replace"), "<program>", "exec", dont_inherit=True)
    except BaseException as e:
        report("crashed", f"the program does not compile: {type(e).__name__}: {e}")
        os._exit(0)
    if cfg["guards"]:
        _guard()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except AssertionError as e:
        report("failed", describe(e))
    except SystemExit as e:
        report("crashed", f"the program called sys.exit({e.code!r}) before it finished")
    except BaseException as e:
        report("crashed", describe(e))
    else:
        report("passed")
    os._exit(0)
def _guard():
    import builtins, os, shutil, subprocess
    os.environ.clear()
    for name in ("kill", "killpg", "system", "putenv", "unsetenv", "remove", "removedirs", "rmdir", "fchdir",
                 "setuid", "fork", "forkpty", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
                 "fchown", "chmod", "chown", "chroot", "lchown", "execv", "execve", "spawnv", "posix_spawn"):
        if hasattr(os, name):
            setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.exit = builtins.quit = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None
_harness()
'''


class _LimitsArgs(Arguments):
    timeout_s: PositiveFloat
    memory_bytes: PositiveInt
    file_size_bytes: PositiveInt
    max_processes: PositiveInt
    max_open_files: PositiveInt
    max_output_bytes: PositiveInt


@dataclass(frozen=True)
class SandboxLimits:
    """The limits of one execution (checked: a bad value is a :class:`~bpa_gym.errors.ConfigError`).

    Attributes:
        timeout_s: Wall-clock seconds before the process group is killed
            (``timed_out``).  CPU time is capped at the same number of seconds
            (rounded up).
        memory_bytes: Address-space limit (``RLIMIT_AS``); beyond it
            allocations fail (``MemoryError``: ``crashed``).
        file_size_bytes: Largest file the program may write (``RLIMIT_FSIZE``).
        max_processes: Processes and threads the program may have at once
            (``RLIMIT_NPROC``; see the module docstring for how it is counted).
        max_open_files: ``RLIMIT_NOFILE``.
        max_output_bytes: stdout and stderr are each kept up to this many bytes.

    Example:
        >>> SandboxLimits(timeout_s=3).timeout_s
        3
        >>> SandboxLimits(timeout_s=0)
        Traceback (most recent call last):
        ...
        bpa_gym.errors.ConfigError: SandboxLimits: invalid argument...
    """

    timeout_s: float = 10.0
    memory_bytes: int = 1 << 30
    file_size_bytes: int = 16 << 20
    max_processes: int = 16
    max_open_files: int = 256
    max_output_bytes: int = 64 << 10

    def __post_init__(self) -> None:
        check(_LimitsArgs, "SandboxLimits", **{f: getattr(self, f) for f in _LimitsArgs.model_fields})


class _SandboxArgs(Arguments):
    limits: Any = None
    max_workers: PositiveInt | None = None
    guards: Bool = True
    allow_unsandboxed: Bool = False
    bwrap: str | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """How one execution ended.

    Attributes:
        status: ``passed`` / ``failed`` / ``timed_out`` / ``crashed``.
        detail: Why (the last lines of the traceback, the limit hit, the
            exit status); ``""`` when ``passed``.
        stdout: The program's standard output, cut at ``max_output_bytes``
            (decoded as UTF-8, invalid bytes replaced).
        stderr: Its standard error, cut likewise.
        output_truncated: Whether stdout or stderr was cut.
        returncode: The sandbox process's exit status (negative: a signal).
        duration_s: Wall-clock seconds of the execution.
    """

    status: Verdict
    detail: str
    stdout: str
    stderr: str
    output_truncated: bool
    returncode: int | None
    duration_s: float


# --------------------------------------------------------------------------
# Isolation setup (probed once per process)
# --------------------------------------------------------------------------

_probe_lock = threading.Lock()
_probed: dict[str, str | None] = {}  # bwrap path -> None if it works, else why not
_warned_unsandboxed = False
_warned_root = False
_slot_lock = threading.Lock()
_free_slots: list[int] = []
_next_slot = 0


def _python() -> str:
    """The interpreter run inside the sandbox (the real file, not a venv link)."""
    return os.path.realpath(sys.executable)


def _python_roots() -> list[str]:
    """Folders the interpreter needs (mounted read-only in the sandbox)."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix),
             os.path.dirname(os.path.dirname(_python()))}
    return sorted(r for r in roots if not (r == "/usr" or r.startswith("/usr/")))


def _is_root() -> bool:
    return os.geteuid() == 0


def _world_readable_python() -> bool:
    """Whether an unprivileged uid can run this interpreter and read its standard library."""
    for root in [os.path.dirname(_python()), *(os.path.realpath(p) for p in (sys.base_prefix,))]:
        path = Path(root)
        for p in [path, *path.parents]:
            try:
                if not p.stat().st_mode & 0o005:
                    return False
            except OSError:
                return False
    return True


def _claim_slot() -> int:
    global _next_slot
    with _slot_lock:
        if _free_slots:
            return _free_slots.pop()
        _next_slot += 1
        return _next_slot - 1


def _release_slot(slot: int) -> None:
    with _slot_lock:
        _free_slots.append(slot)


def _slot_uid(slot: int) -> int:
    """A uid no other live process of this machine's bpa_gym uses (the pid keeps processes apart)."""
    return SANDBOX_UID_BASE + (os.getpid() % 4_000_000) * 256 + slot % 256


def _user_process_count() -> int:
    """Processes of the current real uid (for RLIMIT_NPROC when not root)."""
    uid, n = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _live_processes(uid: int) -> list[int]:
    """Pids of the processes of ``uid`` that are not zombies (a scan of ``/proc``)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                pids.append(int(entry.name))
    return pids


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (``kill -9 -1`` as that uid) until none is left (root only)."""
    kill = shutil.which("kill", path="/usr/bin:/bin")
    for _ in range(100):
        if not _live_processes(uid):
            return
        if kill is not None:
            subprocess.run([kill, "-9", "--", "-1"], user=uid, group=uid, extra_groups=[], env=_KEEP_ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        time.sleep(0.01)
    raise SandboxError(f"processes of the sandbox uid {uid} survive SIGKILL: {_live_processes(uid)[:10]}")


def _bwrap_args(bwrap: str, workdir: str) -> list[str]:
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try"]
    if not _is_root():
        args.append("--unshare-user")
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for root in _python_roots():
        for parent in reversed(Path(root).parents[:-1]):  # bwrap would create them root-only (0700)
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", root, root]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
             "--bind", workdir, "/sandbox", "--chdir", "/sandbox", "--"]
    return args


def bwrap_unavailable_reason(bwrap: str | None = None) -> str | None:
    """Why bubblewrap cannot sandbox here (``None`` when it works); probed once per process.

    Example:
        >>> reason = bwrap_unavailable_reason()
        >>> reason is None or isinstance(reason, str)
        True
    """
    path = bwrap or shutil.which("bwrap")
    if path is None:
        return "bubblewrap (bwrap) is not installed"
    with _probe_lock:
        if path not in _probed:
            workdir = tempfile.mkdtemp(prefix="bpa-sandbox-probe-")
            try:
                r = subprocess.run(_bwrap_args(path, workdir) + [_python(), "-I", "-S", "-c", "pass"],
                                   env=_KEEP_ENV, capture_output=True, timeout=30, close_fds=True)
                _probed[path] = None if r.returncode == 0 else (
                    f"{path} does not work here (exit {r.returncode}: "
                    f"{r.stderr.decode(errors='replace').strip()[:300]}); user namespaces may be disabled")
            except (OSError, subprocess.SubprocessError) as e:
                _probed[path] = f"{path} could not be run: {type(e).__name__}: {e}"
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        return _probed[path]


# --------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------

class Sandbox:
    """Runs untrusted Python programs, each in a fresh, limited, isolated process.

    Args:
        limits: :class:`SandboxLimits` (defaults: 10 s, 1 GiB, 16 MiB files,
            16 processes, 64 KiB of output per stream).
        max_workers: Executions :meth:`run_many` runs at once (default:
            ``min(8, 2 * CPU count)``).
        guards: Disable dangerous ``os`` / ``shutil`` / ``subprocess``
            functions inside the program (defence in depth only).
        allow_unsandboxed: Without a working bubblewrap, run in rlimit-only
            mode (with a warning) instead of raising
            :class:`~bpa_gym.errors.SandboxError`.
        bwrap: Path of the ``bwrap`` binary (default: found on ``PATH``).

    Attributes:
        isolation: ``"bwrap"`` or ``"rlimits"`` (rlimit-only mode).

    Raises:
        ConfigError: A bad argument.
        SandboxError: bubblewrap is missing or broken and
            ``allow_unsandboxed`` is False.
    """

    def __init__(self, limits: SandboxLimits | None = None, *, max_workers: int | None = None,
                 guards: bool = True, allow_unsandboxed: bool = False, bwrap: str | None = None) -> None:
        global _warned_unsandboxed, _warned_root
        check(_SandboxArgs, "Sandbox", limits=limits, max_workers=max_workers, guards=guards,
              allow_unsandboxed=allow_unsandboxed, bwrap=bwrap)
        if limits is not None and not isinstance(limits, SandboxLimits):
            raise ConfigError(f"Sandbox: limits must be a SandboxLimits (e.g. SandboxLimits(timeout_s=5)) or None, "
                              f"got {type(limits).__name__}")
        if sys.platform != "linux":
            raise SandboxError(f"the sandbox needs Linux (namespaces, rlimits, /proc); this is {sys.platform}")
        self.limits = limits or SandboxLimits()
        self.max_workers = int(max_workers or min(8, 2 * (os.cpu_count() or 1)))
        self.guards = guards
        self._bwrap = bwrap or shutil.which("bwrap")
        why = bwrap_unavailable_reason(self._bwrap)
        if why is None:
            self.isolation: Literal["bwrap", "rlimits"] = "bwrap"
        elif allow_unsandboxed:
            self.isolation = "rlimits"
            if not _warned_unsandboxed:
                _warned_unsandboxed = True
                warnings.warn(f"{why}: running Receiver code in rlimit-only mode (no network or file-system "
                              "isolation; see bpa_gym.sandbox). Install bubblewrap (apt-get install bubblewrap) "
                              "to isolate it.", RuntimeWarning, stacklevel=2)
        else:
            raise SandboxError(
                f"{why}: cannot isolate Receiver code. Install bubblewrap (Debian/Ubuntu: apt-get install "
                "bubblewrap) and allow user namespaces, or pass allow_unsandboxed=True to run it with resource "
                "limits only (no network or file-system isolation)")
        # As root, drop to a per-execution uid (rlimit-only mode: only if that uid can read the interpreter).
        self._drop_uid = _is_root() and (self.isolation == "bwrap" or _world_readable_python())
        if _is_root() and not self._drop_uid and not _warned_root:
            _warned_root = True
            warnings.warn("running as root without bubblewrap, and the Python installation is not readable by "
                          "other users: the sandbox cannot drop to an unprivileged uid, so RLIMIT_NPROC does not "
                          "apply (a fork bomb is stopped only by the timeout)", RuntimeWarning, stacklevel=2)

    def __repr__(self) -> str:
        return f"Sandbox(isolation={self.isolation!r}, limits={self.limits!r}, max_workers={self.max_workers})"

    # ------------------------------------------------------------------ API
    def run(self, program: str) -> ExecutionResult:
        """Run one program; see the module docstring for what it can and cannot do.

        Raises:
            ConfigError: ``program`` is not a string.
            SandboxError: The sandbox could not start the program.
        """
        if not isinstance(program, str):
            raise ConfigError(f"Sandbox.run: program must be a str of Python source, got {type(program).__name__}")
        slot = _claim_slot()
        try:
            return self._run(program, slot)
        finally:
            _release_slot(slot)

    def run_many(self, programs: Sequence[str]) -> list[ExecutionResult]:
        """Run every program, up to :attr:`max_workers` at once; results in order.

        Raises:
            SandboxError: The sandbox could not start one of them.
        """
        programs = list(programs)
        if len(programs) <= 1 or self.max_workers == 1:
            return [self.run(p) for p in programs]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(programs)),
                                thread_name_prefix="bpa-sandbox") as pool:
            return list(pool.map(self.run, programs))

    # ------------------------------------------------------------- internals
    def _rlimits(self) -> dict[str, int]:
        lim = self.limits
        nproc = lim.max_processes if self._drop_uid else _user_process_count() + lim.max_processes
        cpu = max(1, int(lim.timeout_s + 0.999))
        return {"RLIMIT_AS": lim.memory_bytes, "RLIMIT_CPU": cpu, "RLIMIT_FSIZE": lim.file_size_bytes,
                "RLIMIT_NPROC": nproc, "RLIMIT_NOFILE": lim.max_open_files, "RLIMIT_CORE": 0}

    def _run(self, program: str, slot: int) -> ExecutionResult:
        lim = self.limits
        uid = _slot_uid(slot) if self._drop_uid else None
        nonce = secrets.token_hex(16)
        workdir = tempfile.mkdtemp(prefix="bpa-sandbox-")
        read_end = write_end = -1
        proc: subprocess.Popen | None = None
        try:
            if uid is not None:
                os.chown(workdir, uid, uid)
            os.chmod(workdir, 0o700)
            read_end, write_end = os.pipe()
            header = json.dumps({"nonce": nonce, "channel": write_end, "limits": self._rlimits(), "uid": uid,
                                 "guards": self.guards})
            payload = header.encode() + b"\n" + program.encode("utf-8", "surrogatepass")
            cmd = [_python(), "-I", "-S", "-c", _HARNESS]
            if self.isolation == "bwrap":
                cmd = _bwrap_args(self._bwrap, workdir) + cmd
            start = time.monotonic()
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        pass_fds=(write_end,), env=dict(_KEEP_ENV), cwd=workdir,
                                        start_new_session=True, close_fds=True)
            except OSError as e:
                raise SandboxError(f"the sandbox could not start a process ({type(e).__name__}: {e})") from e
            os.close(write_end)
            write_end = -1
            out, err, chan, cut, timed_out = self._communicate(proc, payload, read_end, start + lim.timeout_s)
            self._kill(proc, uid)
            returncode = proc.wait()
            duration = time.monotonic() - start
        finally:
            for fd in (read_end, write_end):
                if fd >= 0:
                    os.close(fd)
            if proc is not None and proc.returncode is None:
                self._kill(proc, uid)
                proc.wait()
            shutil.rmtree(workdir, ignore_errors=True)
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        status, detail = self._verdict(chan, nonce, returncode, timed_out, stderr)
        return ExecutionResult(status, detail, stdout, stderr, cut, returncode, duration)

    def _communicate(self, proc: subprocess.Popen, payload: bytes, channel_fd: int, deadline: float):
        """Feed stdin, read stdout/stderr/channel (bounded) until EOF, exit or the deadline."""
        cap = self.limits.max_output_bytes
        buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray(), channel_fd: bytearray()}
        caps = {proc.stdout.fileno(): cap, proc.stderr.fileno(): cap, channel_fd: _CHANNEL_CAP}
        cut = timed_out = False
        view, stdin_fd = memoryview(payload), proc.stdin.fileno()
        os.set_blocking(stdin_fd, False)
        sel = selectors.DefaultSelector()
        for fd in buffers:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
        exited_at: float | None = None
        try:
            while sel.get_map():
                now = time.monotonic()
                if now >= deadline:
                    timed_out = True
                    break
                if exited_at is None and _exited(proc.pid):
                    exited_at = now
                if exited_at is not None and now - exited_at > _EXIT_GRACE_S:
                    break  # a leftover process holds the pipes open; it is killed below
                for key, _ in sel.select(timeout=min(deadline - now, 0.05)):
                    fd = key.fd
                    if fd == stdin_fd:
                        try:
                            n = os.write(fd, view[:65536])
                        except (BrokenPipeError, OSError):
                            n = len(view)
                        view = view[n:]
                        if not view:
                            sel.unregister(fd)
                            proc.stdin.close()
                        continue
                    try:
                        data = os.read(fd, 1 << 16)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(fd)
                        continue
                    buf = buffers[fd]
                    room = caps[fd] - len(buf)
                    if room > 0:
                        buf += data[:room]
                    if len(data) > room and fd != channel_fd:
                        cut = True
        finally:
            sel.close()
            if not proc.stdin.closed:
                proc.stdin.close()
        return (bytes(buffers[proc.stdout.fileno()]), bytes(buffers[proc.stderr.fileno()]),
                bytes(buffers[channel_fd]), cut, timed_out)

    def _kill(self, proc: subprocess.Popen, uid: int | None) -> None:
        """SIGKILL the process group (the process is not reaped yet, so its id is still ours) and the uid."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if uid is not None:
            _kill_uid(uid)

    def _verdict(self, channel: bytes, nonce: str, returncode: int, timed_out: bool, stderr: str) -> tuple[str, str]:
        started, verdict = False, None
        for line in channel.decode("utf-8", "replace").splitlines():
            try:
                tag, status, detail = json.loads(line)
            except (ValueError, TypeError):
                continue
            if tag != nonce:
                continue
            if status == "started":
                started = True
            elif status in VERDICTS and verdict is None:
                verdict = (status, detail)
        if not started:
            if timed_out:
                raise SandboxError(f"the sandbox did not start within {self.limits.timeout_s} s")
            raise SandboxError(f"the sandbox could not start the program (exit {returncode}): {stderr.strip()[-500:]}")
        if verdict is not None:
            return verdict
        if timed_out:
            return "timed_out", f"killed after the wall-clock limit of {self.limits.timeout_s} s"
        sig = -returncode if returncode < 0 else (returncode - 128 if returncode > 128 else 0)
        if sig == signal.SIGXCPU:
            return "timed_out", f"killed at the CPU-time limit ({self._rlimits()['RLIMIT_CPU']} s)"
        if sig == signal.SIGXFSZ:
            return "crashed", f"killed for writing a file over the limit of {self.limits.file_size_bytes} bytes"
        if sig:
            return "crashed", f"killed by signal {signal.Signals(sig).name if sig in signal.valid_signals() else sig}"
        return "crashed", f"the program exited (status {returncode}) before it finished"


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (so its process-group id is not reused yet)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
    except OSError:
        return False


__all__ = ["SANDBOX_UID_BASE", "VERDICTS", "ExecutionResult", "Sandbox", "SandboxLimits", "Verdict",
           "bwrap_unavailable_reason"]
