"""Oracle tables for LLM envs with discrete signals: every signal played once on every item.

With a deterministic (greedy) Receiver, the reward of signal ``s`` on item
``i`` is a fixed number ``R[i, s]``.  Playing the whole table once gives two
regret baselines:

* **per-item best signal** ``max_s R[i, s]``: the best any Advisor that sees
  the item could do (the benchmark the paper's Advisor is measured against);
* **best fixed signal in hindsight** ``R[i, s*]`` with
  ``s* = argmax_s mean_i R[i, s]``: the classic bandit comparator.

Both are exact for the table's items and Receiver; the pseudo-regret of a step
is the comparator's reward on the item minus ``R[i, a]`` of the chosen signal
(the table, not the sampled reward, so Receiver sampling noise never enters).

**Binding.**  A table is only valid for the setup that built it, so it records
that setup (:func:`table_identity`) and an env refuses a table built for
another one (:meth:`OracleTable.check_matches`), naming each field that
differs with the table's and the env's value:

* ``receiver.*``: the Receiver's identity
  (:func:`bpa_gym.receivers.base.receiver_identity`);
* ``generation.*``: its decoding settings (``top_p`` and ``seed`` are left out
  under greedy decoding, where they change nothing);
* ``template.*``: the prompt template the Receiver sees;
* ``task.name``, ``task.split`` and ``task.task_seed`` (where the env has one);
* ``signals``: the signal library (the texts, in order);
* ``items``: a digest of each item's question and gold answer, so a table
  from another data file or task seed with the same item ids is refused.  The
  env's items must all be in the table (it may hold more: a table over a split
  serves every ``subset_size`` of it).  The item *order* (``reset(seed=...)``,
  ``shuffle``) is not part of the binding: rows are looked up by item id.

``task.data_source`` (the data folder) is recorded for the reader but not
compared: the item digests already say whether the data are the same.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from bpa_gym.common.files import atomic_write
from bpa_gym.common.validation import Arguments, Bool, PositiveInt, check
from bpa_gym.errors import ConfigError
from bpa_gym.receivers.base import receiver_identity
from bpa_gym.types import Item

Comparator = Literal["per_item", "best_fixed"]

#: Version of the ``.npz`` layout written by :meth:`OracleTable.save` (1: before the binding was recorded).
FORMAT_VERSION = 2

#: Identity fields recorded for the reader but not compared (see the module docstring).
_INFORMATIONAL = frozenset({"task.data_source"})
_ABSENT = object()


# ---------------------------------------------------------------- identity
def _llm_env(env: Any) -> Any:
    """The unwrapped bpa_gym LLM env behind ``env`` (a clear error for anything else)."""
    base = getattr(env, "unwrapped", env)
    if not all(hasattr(base, a) for a in ("game", "items", "split", "signal_library")):
        raise ConfigError(
            f"expected a bpa_gym LLM env (e.g. gym.make('BayesPersuasion-GSM8K-v0', ...)), got {type(env).__name__}")
    return base


def _json_normalised(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, paths strings), for exact comparison."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _generation_settings(gen: Any) -> dict[str, Any] | None:
    if gen is None:
        return None
    settings = asdict(gen) if is_dataclass(gen) else dict(vars(gen))
    if getattr(gen, "greedy", False):  # top_p and the sampling seed change nothing under greedy decoding
        settings.pop("top_p", None)
        settings.pop("seed", None)
    return settings


def _task_seed(base: Any) -> int | None:
    for owner, name in ((base, "task_seed"), (base.task, "seed")):
        value = getattr(owner, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
    return None


def item_digest(item: Item) -> str:
    """A short digest of what an item asks and expects (question and gold answer).

    Example:
        >>> item_digest(Item("q/0", "What is 6*7?", "42")) == item_digest(Item("other id", "What is 6*7?", "42"))
        True
        >>> item_digest(Item("q/0", "What is 6*7?", "42")) == item_digest(Item("q/0", "What is 6*8?", "48"))
        False
    """
    payload = json.dumps([item.question, item.gold], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def table_identity(env: Any) -> dict[str, Any]:
    """What determines an oracle table of ``env`` besides its signals and items (see the module docstring).

    Returns:
        A JSON-serialisable dict with keys ``receiver``, ``generation``,
        ``template`` and ``task``.

    Example:
        >>> import gymnasium as gym, bpa_gym
        >>> ident = table_identity(gym.make("BayesPersuasion-Identity-v0"))
        >>> sorted(ident), ident["task"]["name"], ident["task"]["split"]
        (['generation', 'receiver', 'task', 'template'], 'identity', 'train')
    """
    base = _llm_env(env)
    receiver = base.game.receiver
    template = base.game.template
    data_dir = getattr(base.task, "data_dir", None)
    return _json_normalised({
        "receiver": receiver_identity(receiver),
        "generation": _generation_settings(getattr(receiver, "generation", None)),
        "template": asdict(template) if is_dataclass(template) else repr(template),
        "task": {
            "name": getattr(base.task, "name", type(base.task).__name__),
            "split": base.split,
            "task_seed": _task_seed(base),
            "data_source": None if data_dir is None else str(data_dir),
        },
    })


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _shown(value: Any) -> str:
    text = "(not recorded)" if value is _ABSENT else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# ------------------------------------------------------------------- table
@dataclass(frozen=True)
class OracleTable:
    """Rewards of every (item, signal) pair under one deterministic Receiver.

    Attributes:
        item_ids: Row labels (unique).
        signals: Column labels (signal texts).
        rewards: Array of shape ``(len(item_ids), len(signals))``, in [0, 1].
        receiver: Name of the Receiver that produced it.
        identity: What built it (:func:`table_identity`); ``None`` for a
            hand-made table, which no env accepts.
        item_digests: :func:`item_digest` of each row's item (``None`` with
            ``identity=None``).
        source: The file it was loaded from, if any (for messages).
    """

    item_ids: tuple[str, ...]
    signals: tuple[str, ...]
    rewards: np.ndarray
    receiver: str
    identity: Mapping[str, Any] | None = None
    item_digests: tuple[str, ...] | None = None
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        item_ids, signals = self._strings(self.item_ids, "item_ids"), self._strings(self.signals, "signals")
        object.__setattr__(self, "item_ids", item_ids)
        object.__setattr__(self, "signals", signals)
        rewards = np.asarray(self.rewards)
        if rewards.dtype.kind not in "biuf":
            raise ConfigError(f"rewards must be real numbers, got an array of dtype {rewards.dtype}")
        rewards = rewards.astype(np.float64)
        shape = (len(item_ids), len(signals))
        if rewards.shape != shape:
            raise ConfigError(f"rewards must have shape {shape} (items x signals), got {rewards.shape}")
        if not np.isfinite(rewards).all():
            raise ConfigError("an oracle table must not contain NaN/inf (a Receiver failure is not a reward)")
        if rewards.size and (rewards.min() < 0 or rewards.max() > 1):
            raise ConfigError(f"rewards must lie in [0, 1], got values in [{rewards.min():g}, {rewards.max():g}]")
        object.__setattr__(self, "rewards", rewards)
        if len(set(item_ids)) != len(item_ids):
            dup = sorted({i for i in item_ids if item_ids.count(i) > 1})[:5]
            raise ConfigError(f"item ids must be unique (rows are looked up by id); duplicated: {dup}")
        if not isinstance(self.receiver, str):
            raise ConfigError(f"receiver must be the Receiver's name (a string), got {type(self.receiver).__name__}")
        if (self.identity is None) != (self.item_digests is None):
            raise ConfigError("identity and item_digests go together: give both (see table_identity) or neither")
        if self.identity is not None:
            if not isinstance(self.identity, Mapping):
                raise ConfigError(f"identity must be a dict (see table_identity), got {type(self.identity).__name__}")
            object.__setattr__(self, "identity", _json_normalised(dict(self.identity)))
            digests = self._strings(self.item_digests, "item_digests")
            if len(digests) != len(item_ids):
                raise ConfigError(f"item_digests must have one entry per item ({len(item_ids)}), got {len(digests)}")
            object.__setattr__(self, "item_digests", digests)

    @staticmethod
    def _strings(values: Any, name: str) -> tuple[str, ...]:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ConfigError(f"{name} must be a sequence of strings, got {type(values).__name__}")
        bad = [v for v in values if not isinstance(v, str)][:3]
        if bad:
            raise ConfigError(f"{name} must be strings; got {bad!r}")
        return tuple(values)

    @property
    def row_of(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.item_ids)}

    @property
    def best_fixed_signal(self) -> int:
        """Index of the signal with the highest mean reward (first on ties)."""
        return int(np.argmax(self.rewards.mean(axis=0)))

    def summary(self) -> dict[str, Any]:
        """Mean reward per signal, the best fixed signal and the per-item oracle's mean."""
        return {
            "receiver": self.receiver,
            "n_items": len(self.item_ids),
            "mean_reward_per_signal": self.rewards.mean(axis=0).tolist(),
            "best_fixed_signal": self.best_fixed_signal,
            "best_fixed_mean": float(self.rewards.mean(axis=0).max()),
            "per_item_best_mean": float(self.rewards.max(axis=1).mean()),
        }

    # ------------------------------------------------------------ binding
    def mismatches(self, env: Any) -> list[str]:
        """Each way this table does not fit ``env``, as ``"field: table's X vs env's Y"`` lines (empty: it fits)."""
        base = _llm_env(env)
        if self.identity is None or self.item_digests is None:
            return ["identity: the table records nothing about what built it (a hand-made table); "
                    "build it with build_oracle_table(env)"]
        lines = []
        table_fields, env_fields = _flatten(self.identity), _flatten(table_identity(base))
        for key in sorted(set(table_fields) | set(env_fields)):
            t, e = table_fields.get(key, _ABSENT), env_fields.get(key, _ABSENT)
            if key in _INFORMATIONAL or t == e:
                continue
            if key == "task.task_seed" and (t is None or e is None):
                continue  # only one side knows its seed; the item digests below still compare the items
            lines.append(f"{key}: table's {_shown(t)} vs env's {_shown(e)}")
        library = tuple(base.signal_library) if base.signal_library is not None else None
        if library is None:
            lines.append("signals: the env takes free-text signals; an oracle table needs signals='discrete'")
        elif library != self.signals:
            first = next((i for i, (a, b) in enumerate(zip(self.signals, library)) if a != b),
                         min(len(self.signals), len(library)))
            t = self.signals[first] if first < len(self.signals) else _ABSENT
            e = library[first] if first < len(library) else _ABSENT
            lines.append(f"signals: table's {len(self.signals)} signals vs env's {len(library)}; first difference "
                         f"at index {first}: table's {_shown(t)} vs env's {_shown(e)}")
        digests = dict(zip(self.item_ids, self.item_digests))
        missing = [it.id for it in base.items if it.id not in digests]
        if missing:
            lines.append(f"items: {len(missing)} of the env's {len(base.items)} items are not in the table "
                         f"(e.g. {missing[0]!r}); the table has {len(self.item_ids)} items from split "
                         f"{_shown(self.identity.get('task', {}).get('split', _ABSENT))}")
        changed = [(it.id, digests[it.id], item_digest(it)) for it in base.items
                   if it.id in digests and digests[it.id] != item_digest(it)]
        if changed:
            iid, t, e = changed[0]
            lines.append(f"items: {len(changed)} items have another question/gold answer than when the table was "
                         f"built (another data file or task seed), e.g. {iid!r}: table's digest {t} vs env's {e}")
        return lines

    def check_matches(self, env: Any) -> None:
        """Raise :class:`ConfigError` unless this table was built for ``env``'s setup (see the module docstring)."""
        lines = self.mismatches(env)
        if lines:
            where = f"oracle table {self.source}" if self.source else "the oracle table"
            raise ConfigError(f"{where} was built for another setup than this env:\n"
                              + "".join(f"  - {line}\n" for line in lines)
                              + f"Rebuild it for this env: {_rebuild_hint(env, self.source)}")

    # --------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the table as ``.npz`` atomically (no half-written file on a crash)."""
        path = _as_path(path)
        meta = {"format": FORMAT_VERSION, "item_ids": list(self.item_ids), "signals": list(self.signals),
                "receiver": self.receiver, "identity": self.identity,
                "item_digests": None if self.item_digests is None else list(self.item_digests)}
        with atomic_write(path, "wb", suffix=".npz.tmp") as fh:
            np.savez(fh, rewards=self.rewards, meta=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> OracleTable:
        """Read a table written by :meth:`save`.

        Raises:
            ConfigError: the file is missing, damaged (not an ``.npz``,
                truncated, keys or metadata missing, wrong shapes, rewards
                outside [0, 1] or not finite) or written by an older bpa_gym
                (rebuild it); the message names the file.
        """
        path = _as_path(path)
        if not path.is_file():
            raise ConfigError(f"oracle table {path} does not exist; build one with "
                              f"`bpa-gym oracle-table --env ENV_ID --out {path}`")
        rebuild = f"rebuild it with `bpa-gym oracle-table --env ENV_ID --out {path}`"

        def damaged(why: str) -> ConfigError:
            return ConfigError(f"oracle table {path} is damaged or not an oracle table: {why}; {rebuild}")

        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:  # the file is untrusted input: whatever numpy fails with, name the file
            raise damaged(f"cannot read it as .npz ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise damaged("it holds a single array (.npy), not an .npz archive")
        with data:
            missing = sorted({"rewards", "meta"} - set(data.files))
            if missing:
                raise damaged(f"missing key(s) {missing} (has {sorted(data.files)})")
            try:
                rewards, meta_array = data["rewards"], data["meta"]
            except Exception as exc:
                raise damaged(f"cannot read its arrays ({type(exc).__name__}: {exc})") from exc
        if meta_array.shape != () or meta_array.dtype.kind != "U":
            raise damaged(f"'meta' must be one JSON string, got an array of shape {meta_array.shape}, "
                          f"dtype {meta_array.dtype}")
        try:
            raw = json.loads(str(meta_array[()]))
        except (ValueError, RecursionError) as exc:
            raise damaged(f"'meta' is not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise damaged(f"'meta' must be a JSON object, got {type(raw).__name__}")
        if "format" not in raw:
            raise ConfigError(
                f"oracle table {path} was written by an older bpa_gym (format 1) that did not record what built "
                f"it (Receiver, generation settings, task, items), so it cannot be checked against an env; "
                f"rebuild it with `bpa-gym oracle-table --env ENV_ID --receiver {raw.get('receiver', 'SPEC')} "
                f"--out {path}`")
        if raw["format"] != FORMAT_VERSION:
            raise ConfigError(f"oracle table {path} has format {raw['format']!r}; this bpa_gym reads format "
                              f"{FORMAT_VERSION}: {rebuild}")
        try:
            meta = _Meta.model_validate(raw)
        except ValidationError as exc:
            why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'meta'}: {e['msg']}" for e in exc.errors()[:5])
            raise damaged(f"bad metadata ({why})") from None
        if rewards.ndim != 2:
            raise damaged(f"'rewards' must be a 2-d array (items x signals), got shape {rewards.shape}")
        try:
            return cls(tuple(meta.item_ids), tuple(meta.signals), rewards, meta.receiver, meta.identity,
                       None if meta.item_digests is None else tuple(meta.item_digests), source=str(path))
        except ConfigError as exc:
            raise damaged(str(exc)) from None


class _Meta(BaseModel):
    """The JSON metadata stored next to the rewards (format 2)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    format: int
    item_ids: list[str]
    signals: list[str]
    receiver: str
    identity: dict[str, Any] | None
    item_digests: list[str] | None


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"an oracle table path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _rebuild_hint(env: Any, source: str | None) -> str:
    base = _llm_env(env)
    spec = getattr(base, "spec", None) or getattr(env, "spec", None)
    parts = ["bpa-gym oracle-table", f"--env {spec.id if spec is not None else 'ENV_ID'}",
             f"--receiver {getattr(base.game.receiver, 'name', 'SPEC')}", f"--split {base.split}"]
    gen = getattr(base.game.receiver, "generation", None)
    if getattr(gen, "max_new_tokens", None) is not None:
        parts.append(f"--max-new-tokens {gen.max_new_tokens}")
    parts.append(f"--out {source or 'table.npz'}")
    return f"`{' '.join(parts)}` (add --subset-size/--data-dir as for the env), or build_oracle_table(env) in Python"


def bind_oracle_table(table: OracleTable | str | os.PathLike, env: Any) -> OracleTable:
    """``table`` (or the table saved at that path), checked against ``env``'s setup.

    The LLM envs call it for ``make(..., oracle_table=...)`` and in
    ``regret_oracle()``; use it for a table you pass around yourself.

    Raises:
        ConfigError: the file is missing or damaged, or the table was built
            for another Receiver, generation settings, prompt template, task,
            signal library or items (each difference named, table's value vs
            env's value).
    """
    if not isinstance(table, OracleTable):
        if not isinstance(table, (str, os.PathLike)):
            raise ConfigError(f"oracle_table must be an OracleTable or the path of a saved one, "
                              f"got {type(table).__name__}")
        table = OracleTable.load(table)
    table.check_matches(env)
    return table


# ------------------------------------------------------------------- build
class _BuildArgs(Arguments):
    batch_size: PositiveInt = 64
    progress: Bool = False


def build_oracle_table(env: Any, items: Sequence[Item] | None = None, batch_size: int = 64,
                       progress: bool = False) -> OracleTable:
    """Play every signal of ``env``'s library once on each item, in Receiver batches.

    Args:
        env: A bpa_gym LLM env (wrapped or not) with ``signals="discrete"``.
        items: Items to tabulate; default: all of the env's items.
        batch_size: (item, signal) pairs per Receiver call (an integer >= 1).
        progress: Show a progress bar.

    Returns:
        The table, bound to the env's setup (:func:`table_identity`).

    Raises:
        ConfigError: bad arguments, free-text signals, or a sampling Receiver.
        ReceiverError: the Receiver failed (never tabulated as a reward of 0).

    The Receiver should decode greedily (the default) so each entry is the
    reward, not one sample of it.
    """
    args = check(_BuildArgs, "build_oracle_table", batch_size=batch_size, progress=progress)
    base = _llm_env(env)
    library = base.signal_library
    if library is None:
        raise ConfigError("an oracle table needs discrete signals; this env takes free text (signals='text')")
    gen_cfg = getattr(base.receiver, "generation", None)
    if gen_cfg is not None and not getattr(gen_cfg, "greedy", True):
        raise ConfigError("the Receiver samples (temperature > 0): an oracle table needs greedy decoding")
    if items is None:
        items = list(base.items)
    elif isinstance(items, (str, bytes)) or not isinstance(items, Sequence) \
            or not all(isinstance(it, Item) for it in items):
        raise ConfigError("build_oracle_table: items must be a sequence of bpa_gym.types.Item (default: the env's)")
    items = list(items)
    if not items:
        raise ConfigError("build_oracle_table: got no items to tabulate")
    identity = table_identity(base)
    signals = list(library)
    pairs = [(i, s) for i in range(len(items)) for s in range(len(signals))]
    from bpa_gym.envs.llm_vector import BatchPlayer

    play = BatchPlayer(base)  # the env's public vector path: reset on the items, step the signal indices
    rewards = np.zeros((len(items), len(signals)))
    bar = None
    if args.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc="oracle table", unit="play")
    try:
        for lo in range(0, len(pairs), args.batch_size):
            chunk = pairs[lo : lo + args.batch_size]
            outcomes = play([items[i] for i, _ in chunk], [s for _, s in chunk])  # one Receiver batch
            for (i, s), o in zip(chunk, outcomes):
                rewards[i, s] = o.reward
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return OracleTable(tuple(it.id for it in items), tuple(signals), rewards, base.receiver.name, identity,
                       tuple(item_digest(it) for it in items))


class OracleTableRegret:
    """A :class:`~bpa_gym.oracles.RegretOracle` over an :class:`OracleTable`.

    Instant pseudo-regret of choosing signal ``a`` on item ``i``:
    ``max_s R[i, s] − R[i, a]`` (``comparator="per_item"``) or
    ``R[i, s*] − R[i, a]`` (``"best_fixed"``; can be negative on single steps).

    Args:
        table: The table.
        comparator: ``"per_item"`` or ``"best_fixed"``.
        env: If given, the table is checked against this env's setup first
            (:meth:`OracleTable.check_matches`); pass it when you build the
            oracle yourself for ``RegretWrapper(env, oracle=...)``.

    Example:
        >>> import numpy as np
        >>> t = OracleTable(("a", "b"), ("", "hint"), np.array([[0.0, 1.0], [1.0, 0.0]]), "demo")
        >>> OracleTableRegret(t, "per_item").instant_regret(0, {"item_id": "a"})
        1.0
        >>> OracleTableRegret(t, "best_fixed").instant_regret(1, {"item_id": "a"})  # s* = 0
        -1.0
    """

    def __init__(self, table: OracleTable, comparator: Comparator = "per_item", env: Any = None) -> None:
        if not isinstance(table, OracleTable):
            raise ConfigError(f"table must be an OracleTable (OracleTable.load(path) reads a saved one), "
                              f"got {type(table).__name__}")
        if comparator not in ("per_item", "best_fixed"):
            raise ConfigError(f"comparator must be 'per_item' or 'best_fixed', got {comparator!r}")
        if env is not None:
            table.check_matches(env)
        self.table = table
        self.comparator = comparator
        self.num_signals = len(table.signals)
        self.name = ("oracle table: per-item best signal" if comparator == "per_item"
                     else "oracle table: best fixed signal in hindsight")
        self._rows = table.row_of
        self._best = table.rewards.max(axis=1) if comparator == "per_item" else \
            table.rewards[:, table.best_fixed_signal]

    def instant_regret(self, action: Any, info: Mapping[str, Any]) -> float:
        item_id = info.get("item_id")
        if item_id not in self._rows:
            raise ConfigError(f"item {item_id!r} is not in the oracle table ({len(self._rows)} items); "
                              "build the table on the env's items (same split and subset)")
        try:
            if isinstance(action, (bool, np.bool_)):
                raise TypeError
            signal = operator.index(action)
        except TypeError:
            raise ConfigError(f"action {action!r} is not a signal index (an integer in 0..{self.num_signals - 1})") \
                from None
        if not 0 <= signal < self.num_signals:
            raise ConfigError(f"action {signal} is outside the table's signals 0..{self.num_signals - 1}")
        row = self._rows[item_id]
        return float(self._best[row] - self.table.rewards[row, signal])

    def describe(self) -> str:
        return (f"{self.name}: table of {len(self.table.item_ids)} items x {self.num_signals} signals under "
                f"{self.table.receiver}; instant regret = comparator reward on the item - table reward of the "
                f"chosen signal; m = {self.num_signals} signals")


__all__ = [
    "FORMAT_VERSION", "OracleTable", "OracleTableRegret", "bind_oracle_table", "build_oracle_table", "item_digest",
    "table_identity",
]
