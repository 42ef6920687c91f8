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
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from bpa_gym.errors import ConfigError

Comparator = Literal["per_item", "best_fixed"]


@dataclass(frozen=True)
class OracleTable:
    """Rewards of every (item, signal) pair under one deterministic Receiver.

    Attributes:
        item_ids: Row labels.
        signals: Column labels (signal texts).
        rewards: Array of shape ``(len(item_ids), len(signals))``.
        receiver: Name of the Receiver that produced it.
    """

    item_ids: tuple[str, ...]
    signals: tuple[str, ...]
    rewards: np.ndarray
    receiver: str

    def __post_init__(self) -> None:
        shape = (len(self.item_ids), len(self.signals))
        if self.rewards.shape != shape:
            raise ConfigError(f"rewards must have shape {shape} (items x signals), got {self.rewards.shape}")
        if not np.isfinite(self.rewards).all():
            raise ConfigError("an oracle table must not contain NaN/inf (a Receiver failure is not a reward)")

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

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table as ``.npz`` atomically (no half-written file on a crash)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        os.close(fd)
        try:
            meta = json.dumps({"item_ids": self.item_ids, "signals": self.signals, "receiver": self.receiver})
            np.savez(tmp, rewards=self.rewards, meta=np.array(meta))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> OracleTable:
        """Read a table written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"oracle table {path} does not exist; build one with `bpa-gym oracle-table`")
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return cls(tuple(meta["item_ids"]), tuple(meta["signals"]), data["rewards"].astype(float),
                       meta["receiver"])


def build_oracle_table(env: Any, items: Sequence[Any] | None = None, batch_size: int = 64,
                       progress: bool = False) -> OracleTable:
    """Play every signal of ``env``'s library once on each item, in Receiver batches.

    Args:
        env: A bpa_gym LLM env (wrapped or not) with ``signals="discrete"``.
        items: Items to tabulate; default: all of the env's items.
        batch_size: (item, signal) pairs per Receiver call.
        progress: Show a progress bar.

    The Receiver should decode greedily (the default) so each entry is the
    reward, not one sample of it.
    """
    base = env.unwrapped
    library = getattr(base, "signal_library", None)
    if library is None:
        raise ConfigError("an oracle table needs discrete signals; this env takes free text (signals='text')")
    gen_cfg = getattr(base.receiver, "generation", None)
    if gen_cfg is not None and not getattr(gen_cfg, "greedy", True):
        raise ConfigError("the Receiver samples (temperature > 0): an oracle table needs greedy decoding")
    items = list(base.items if items is None else items)
    signals = list(library)
    pairs = [(i, s) for i in range(len(items)) for s in range(len(signals))]
    rewards = np.zeros((len(items), len(signals)))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc="oracle table", unit="play")
    for lo in range(0, len(pairs), batch_size):
        chunk = pairs[lo : lo + batch_size]
        outcomes = base.game.play([items[i] for i, _ in chunk], [signals[s] for _, s in chunk])
        for (i, s), o in zip(chunk, outcomes):
            rewards[i, s] = o.reward
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return OracleTable(tuple(it.id for it in items), tuple(signals), rewards, base.receiver.name)


class OracleTableRegret:
    """A :class:`~bpa_gym.oracles.RegretOracle` over an :class:`OracleTable`.

    Instant pseudo-regret of choosing signal ``a`` on item ``i``:
    ``max_s R[i, s] − R[i, a]`` (``comparator="per_item"``) or
    ``R[i, s*] − R[i, a]`` (``"best_fixed"``; can be negative on single steps).

    Args:
        table: The table.
        comparator: ``"per_item"`` or ``"best_fixed"``.

    Example:
        >>> import numpy as np
        >>> t = OracleTable(("a", "b"), ("", "hint"), np.array([[0.0, 1.0], [1.0, 0.0]]), "demo")
        >>> OracleTableRegret(t, "per_item").instant_regret(0, {"item_id": "a"})
        1.0
        >>> OracleTableRegret(t, "best_fixed").instant_regret(1, {"item_id": "a"})  # s* = 0
        -1.0
    """

    def __init__(self, table: OracleTable, comparator: Comparator = "per_item") -> None:
        if comparator not in ("per_item", "best_fixed"):
            raise ConfigError(f"comparator must be 'per_item' or 'best_fixed', got {comparator!r}")
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
        row = self._rows[item_id]
        return float(self._best[row] - self.table.rewards[row, int(action)])

    def describe(self) -> str:
        return (f"{self.name}: table of {len(self.table.item_ids)} items x {self.num_signals} signals under "
                f"{self.table.receiver}; instant regret = comparator reward on the item - table reward of the "
                f"chosen signal; m = {self.num_signals} signals")
