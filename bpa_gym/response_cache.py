"""A persistent cache of Receiver responses (SQLite in WAL mode), for exact replay.

Every Receiver answer costs seconds of GPU or CPU time; a rerun of the same
experiment, an oracle table rebuilt after a crash, or an evaluation of another
Advisor on the same items asks many of the same questions again.
:class:`ResponseCache` stores each answer under a key that pins everything
that determines it:

* the Receiver's identity (:func:`bpa_gym.receivers.base.receiver_identity`:
  model id and revision or weights checksum, dtype, chat template, generation
  settings), and
* the prompt (the chat messages, exactly as sent).

The value is the response text, the finish reason and the token counts.  A
rerun through the cache gets the identical responses, hence identical rewards,
without calling the Receiver.

Concurrency and crashes: the database is in WAL mode with a busy timeout, so
several processes can read and write it at once; each batch of new answers is
written in one transaction after the Receiver returns, so a process killed
with SIGKILL mid-batch leaves a valid database and loses at most the batch in
flight.  Failed generations (``error`` set) are never stored.

Example:
    >>> import tempfile, pathlib
    >>> from bpa_gym.types import Generation
    >>> cache = ResponseCache(pathlib.Path(tempfile.mkdtemp()) / "responses.sqlite")
    >>> ident = {"class": "Demo", "model": "m", "generation": {"temperature": 0.0}}
    >>> prompt = [{"role": "user", "content": "2+2?"}]
    >>> cache.get_many(ident, [prompt])
    [None]
    >>> cache.put_many(ident, [prompt], [Generation("4", 3, 1, finish_reason="stop")])
    1
    >>> cache.get_many(ident, [prompt])[0].text
    '4'
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from bpa_gym.errors import ConfigError
from bpa_gym.types import ChatPrompt, Generation

#: Bumped when the key or the stored record changes meaning; older entries are then not reused.
CACHE_SCHEMA = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS receivers (
    receiver_key TEXT PRIMARY KEY,
    identity TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    receiver_key TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_receiver ON responses (receiver_key);
"""


#: Environment variable: the response cache's file, or ``off`` to turn the default cache off.
CACHE_ENV = "BPA_RESPONSE_CACHE"


def cache_disabled_by_env() -> bool:
    """Whether ``$BPA_RESPONSE_CACHE`` is ``off`` (also ``0``, ``false``, ``no``)."""
    return os.environ.get(CACHE_ENV, "").strip().lower() in ("off", "0", "false", "no")


def default_cache_path() -> Path:
    """``$BPA_RESPONSE_CACHE``, else ``$BPA_CACHE_DIR/responses.sqlite``, else the user cache folder."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit and not cache_disabled_by_env():
        return Path(explicit).expanduser()
    root = os.environ.get("BPA_CACHE_DIR")
    if root:
        return Path(root) / "responses.sqlite"
    import platformdirs

    return Path(platformdirs.user_cache_dir("bpa-gym")) / "responses.sqlite"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def receiver_key(identity: Mapping[str, Any]) -> str:
    """The sha256 of a Receiver identity (canonical JSON)."""
    return hashlib.sha256(_canonical({"schema": CACHE_SCHEMA, "receiver": dict(identity)}).encode()).hexdigest()


def response_key(rkey: str, prompt: ChatPrompt) -> str:
    """The sha256 of (Receiver key, prompt messages)."""
    messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return hashlib.sha256(_canonical({"receiver": rkey, "prompt": messages}).encode()).hexdigest()


class ResponseCache:
    """Receiver responses in one SQLite file (see the module docstring).

    Args:
        path: The database file (created with its folder if missing);
            default :func:`default_cache_path`.
        timeout_s: How long a writer waits for another process's lock.

    Raises:
        ConfigError: ``path`` exists but is not a bpa-gym response cache
            (the message names the file and how to fix it).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout_s: float = 60.0) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"ResponseCache path must be a file path, got {type(path).__name__}: {path!r}")
        self.path = Path(path) if path is not None else default_cache_path()
        self.timeout_s = float(timeout_s)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._known_receivers: set[str] = set()
        self._connect()  # fail early, naming the file

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    # ---- connection (one per process and thread; re-opened after fork)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_DDL)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(CACHE_SCHEMA),))
            elif row[0] != str(CACHE_SCHEMA):
                raise ConfigError(
                    f"response cache {self.path} has schema {row[0]}, this bpa-gym writes schema {CACHE_SCHEMA}; "
                    "clear it with `bpa-gym cache clear` (or delete the file) or point BPA_CACHE_DIR elsewhere"
                )
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"response cache {self.path} is not a usable SQLite database ({exc}); delete the file "
                "(`bpa-gym cache clear --path ...`) or point BPA_CACHE_DIR elsewhere"
            ) from None
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when garbage-collected)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- reads and writes

    def _register(self, conn: sqlite3.Connection, rkey: str, identity: Mapping[str, Any]) -> None:
        if rkey not in self._known_receivers:
            conn.execute("INSERT OR IGNORE INTO receivers VALUES (?, ?)", (rkey, _canonical(dict(identity))))
            self._known_receivers.add(rkey)

    def get_many(self, identity: Mapping[str, Any], prompts: Sequence[ChatPrompt]) -> list[Generation | None]:
        """The cached Generation for each prompt, or ``None`` where there is none.

        A cached Generation keeps its original ``latency_s`` (the cost it
        saved) and finish reason.
        """
        rkey = receiver_key(identity)
        keys = [response_key(rkey, p) for p in prompts]
        conn = self._connect()
        found: dict[str, Generation] = {}
        for start in range(0, len(keys), 500):  # SQLite's parameter limit
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, text, fr, pt, ct, lat in conn.execute(
                f"SELECT key, text, finish_reason, prompt_tokens, completion_tokens, latency_s "
                f"FROM responses WHERE key IN ({marks})", chunk
            ):
                found[key] = Generation(text, pt, ct, lat, None, fr)
        return [found.get(k) for k in keys]

    def put_many(self, identity: Mapping[str, Any], prompts: Sequence[ChatPrompt],
                 generations: Sequence[Generation]) -> int:
        """Store every successful generation in one transaction; returns how many were new."""
        if len(prompts) != len(generations):
            raise ConfigError(f"put_many got {len(prompts)} prompts but {len(generations)} generations")
        rkey = receiver_key(identity)
        now = time.time()
        rows = [
            (response_key(rkey, p), rkey, g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens,
             float(g.latency_s), now)
            for p, g in zip(prompts, generations) if g.error is None
        ]
        if not rows:
            return 0
        conn = self._connect()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._register(conn, rkey, identity)
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                added = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                self._known_receivers.discard(rkey)
                raise
        return added

    # ---- maintenance

    def stats(self) -> dict[str, Any]:
        """Entries per Receiver, total entries, the saved Receiver seconds and the file size."""
        conn = self._connect()
        per = [
            {"receiver": json.loads(ident), "entries": n, "saved_receiver_s": round(lat or 0.0, 3)}
            for ident, n, lat in conn.execute(
                "SELECT r.identity, COUNT(x.key), SUM(x.latency_s) FROM receivers r "
                "LEFT JOIN responses x ON x.receiver_key = r.receiver_key GROUP BY r.receiver_key ORDER BY 2 DESC"
            )
        ]
        total = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return {"path": str(self.path), "entries": int(total), "receivers": per, "bytes": int(size)}

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        conn = self._connect()
        with self._lock:
            n = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM responses")
            conn.execute("DELETE FROM receivers")
            conn.execute("COMMIT")
            self._known_receivers.clear()
        conn.execute("VACUUM")
        return int(n)

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0])


__all__ = ["CACHE_ENV", "CACHE_SCHEMA", "cache_disabled_by_env", "ResponseCache", "default_cache_path", "receiver_key", "response_key"]
