"""Where task data lives on disk, and a strict JSONL reader.

Tasks read their items from a local *data directory* laid out like the
project's shared data (``<data_dir>/gsm8k/test.jsonl``,
``<data_dir>/humaneval/HumanEval.jsonl.gz``, ...).  When no data directory is
given anywhere, tasks fall back to the Hugging Face hub.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from bpa_gym.errors import ConfigError, DataNotFoundError

#: Environment variable naming the data directory when no argument is given.
DATA_DIR_ENV = "BPA_DATA_DIR"

_LAYOUT_HINT = (
    "point it at a folder that holds gsm8k/ (train.jsonl, test.jsonl, test_socratic.jsonl) "
    "as in the project's shared data, e.g. ../shared/data from the repository root"
)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The local data directory to read from, or ``None`` for the Hugging Face hub.

    The explicit argument wins; otherwise ``$BPA_DATA_DIR`` is used (an empty
    value counts as unset); otherwise ``None``.

    Args:
        data_dir: A folder holding ``gsm8k/`` etc., or ``None``.

    Returns:
        The folder as a :class:`~pathlib.Path` (``~`` expanded), or ``None``
        when neither the argument nor the environment names one.

    Raises:
        ConfigError: ``data_dir`` is not a path.
        DataNotFoundError: A folder was named but does not exist (the message
            says whether it came from the argument or ``$BPA_DATA_DIR``).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     resolve_data_dir(d) == Path(d)
        True
        >>> resolve_data_dir("/no/such/folder")
        Traceback (most recent call last):
        ...
        bpa_gym.errors.DataNotFoundError: data directory '/no/such/folder' (from the data_dir argument) does not exist; ...
    """
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ConfigError(
            f"data_dir must be a folder path (str or os.PathLike) or None, got {type(data_dir).__name__} "
            f"{data_dir!r:.80}; {_LAYOUT_HINT}"
        )
    if data_dir is not None:
        source = "the data_dir argument"
        raw = os.fspath(data_dir)
    else:
        raw = os.environ.get(DATA_DIR_ENV, "")
        if not raw.strip():
            return None
        source = f"${DATA_DIR_ENV}"
    path = Path(raw).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"data directory {raw!r} (from {source}) does not exist; {_LAYOUT_HINT}")
    if not path.is_dir():
        raise DataNotFoundError(f"data directory {raw!r} (from {source}) is a file, not a folder; {_LAYOUT_HINT}")
    return path


def read_jsonl(path: str | os.PathLike, required_keys: Iterable[str] = ()) -> list[dict[str, Any]]:
    """All records of a JSON Lines file (``.jsonl`` or gzip-compressed ``.jsonl.gz``).

    Blank lines are skipped.  Every other line must be one JSON object.

    Args:
        path: The file to read; a name ending in ``.gz`` is decompressed.
        required_keys: Keys every record must have.

    Returns:
        The records, in file order (:func:`iter_jsonl` also gives their line numbers).

    Raises:
        DataNotFoundError: The file is missing or unreadable, or a line is not
            a JSON object or lacks a required key (the message gives the file
            and the 1-based line number).

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "x.jsonl")
        ...     _ = open(p, "w").write('{"q": 1}\\n\\n{"q": 2}\\n')
        ...     read_jsonl(p, required_keys=["q"])
        [{'q': 1}, {'q': 2}]
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "bad.jsonl")
        ...     _ = open(p, "w").write('{"q": 1}\\n{"q": \\n')
        ...     read_jsonl(p)
        Traceback (most recent call last):
        ...
        bpa_gym.errors.DataNotFoundError: .../bad.jsonl:2: malformed JSON line (...); ...
    """
    return [record for _, record in iter_jsonl(path, required_keys)]


def iter_jsonl(path: str | os.PathLike, required_keys: Iterable[str] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, record) of every record of a JSON Lines file; see :func:`read_jsonl`.

    A line nested too deeply for the JSON parser is an error naming the file
    and the line, like any other malformed line.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "x.jsonl")
        ...     _ = open(p, "w").write('\\n{"q": 1}\\n')
        ...     list(iter_jsonl(p))
        [(2, {'q': 1})]
    """
    path = Path(path)
    required = tuple(required_keys)
    if not path.is_file():
        raise DataNotFoundError(f"data file {str(path)!r} does not exist (or is not a file)")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataNotFoundError(
                        f"{where}: malformed JSON line ({e.msg} at column {e.colno}); "
                        "each line must be one JSON object: fix or re-download the file"
                    ) from None
                except RecursionError:
                    raise DataNotFoundError(
                        f"{where}: JSON nested too deeply to read; each line must be one flat JSON object: "
                        "fix or re-download the file"
                    ) from None
                if not isinstance(record, dict):
                    raise DataNotFoundError(
                        f"{where}: expected a JSON object per line, got {type(record).__name__}; "
                        "fix or re-download the file"
                    )
                missing = [k for k in required if k not in record]
                if missing:
                    raise DataNotFoundError(
                        f"{where}: record lacks required keys {missing} (has {sorted(record)[:20]}); "
                        "is this the right file?"
                    )
                yield lineno, record
    except (OSError, UnicodeDecodeError, EOFError) as e:
        if isinstance(e, DataNotFoundError):
            raise
        raise DataNotFoundError(f"could not read data file {str(path)!r}: {e}") from e


__all__ = ["DATA_DIR_ENV", "iter_jsonl", "read_jsonl", "resolve_data_dir"]
