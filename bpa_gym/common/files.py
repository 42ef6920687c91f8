"""Atomic writes and inter-process file locks.

A file written with :func:`atomic_write` is either the complete new content or
the old one: the data goes to a temporary file in the same folder, is flushed
and fsync'ed, and is renamed over the target with :func:`os.replace`.  A
process killed mid-write leaves no half-written file (at most a stray
``.tmp`` file, which the next write does not reuse).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *, suffix: str = ".tmp") -> Iterator[IO]:
    """Open a temporary file for writing; on success it atomically replaces ``path``.

    Args:
        path: The final file.  Its folder is created if needed.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).
        suffix: Suffix of the temporary file (some writers, such as
            ``numpy.savez``, care about the extension).

    Yields:
        The open temporary file.  If the ``with`` block raises, the temporary
        file is removed and ``path`` is untouched.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_write(p, "w") as fh:
        ...     _ = fh.write("done")
        >>> p.read_text()
        'done'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Like :func:`atomic_write` for writers that take a path (``torch.save``, ``np.savez``, a folder).

    Yields a fresh temporary path next to ``path`` (nothing exists there yet);
    whatever the block writes there (a file or a folder) is renamed onto
    ``path`` when the block succeeds.  A folder replaces an existing folder.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
        >>> with atomic_path(p) as tmp:
        ...     _ = tmp.write_bytes(b"ok")
        >>> p.read_bytes()
        b'ok'
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix))
    target = tmp / "payload"
    try:
        yield target
        if target.is_dir() and path.is_dir():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
            os.replace(path, old / "payload")
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], timeout: float = -1) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (the maintained ``filelock`` package).

    Args:
        path: The lock file (created if missing; never deleted, which is safe).
        timeout: Seconds to wait; ``-1`` waits forever.
    """
    from filelock import FileLock

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path), timeout=timeout):
        yield


__all__ = ["atomic_path", "atomic_write", "file_lock"]
