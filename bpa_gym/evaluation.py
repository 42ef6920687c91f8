"""The paper's Q1 protocol: no signal vs. the prior vs. a trained Advisor, for several Receivers.

:func:`evaluate` plays the first ``n`` items of a split under each
*condition* (an Advisor, see :mod:`bpa_gym.advisors`) against each Receiver:

* ``none``: no signal (the baseline; always run);
* ``prior``: signals from a state-independent prior (uniform over the signal
  library in discrete mode; an untrained LM Advisor's samples in text mode);
  always run;
* each further Advisor given: a trained one (a ``agents/ppo_text.py``
  checkpoint, an ``agents/trl_grpo.py`` model folder, a discrete-signal
  policy), or any Advisor object.

Every condition's signals are drawn once, before any Receiver plays them, so
every Receiver sees the *same* signals on the same items (the model-agnostic
claim: an Advisor trained against one Receiver, evaluated on others).  The
items are the same in every cell, so the lift of a condition over ``none`` on
one Receiver is a paired comparison: the exact McNemar test on the discordant
pairs, ``b`` = items the condition gets right and ``none`` wrong, ``c`` = the
reverse, p-value = ``scipy.stats.binomtest(b, b + c, 0.5)`` two-sided (1.0 when
``b + c == 0``).  Each cell's accuracy (pass@1 on code tasks) has a 95% Wilson
interval (:func:`bpa_gym.stats.wilson_interval`).

Cost and resumption: each Receiver is wrapped in the response cache
(:func:`bpa_gym.receivers.caching.with_response_cache`), so answered prompts
are never asked again; with ``out_dir`` each condition's signals
(``signals/<condition>.json``) and each (Receiver, condition) cell
(``cells/<receiver>__<condition>.json``, keyed by a fingerprint of the env,
items, Receiver identity and signals) are written atomically as they finish,
and a rerun reuses them.  A killed run's rerun therefore asks the Receiver
only what was never answered, and ends with the table an uninterrupted run
gives.  A Receiver failure raises :class:`~bpa_gym.errors.ReceiverError`
(through :class:`~bpa_gym.envs.llm_vector.BatchPlayer`): never a silent 0.

The items are played through the env's public vector path (one Receiver
batch per ``batch_size`` items), so any bpa_gym LLM env id works unchanged
(GSM8K, Identity, HumanEval).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bpa_gym.advisors import Advisor, AdvisorOptions, advisor_kind, load_advisor
from bpa_gym.common.validation import Arguments, Bool, NonNegativeInt, PositiveInt, check
from bpa_gym.errors import ConfigError
from bpa_gym.types import Item

__all__ = ["Cell", "Evaluation", "conditions_for", "evaluate", "mcnemar_exact"]

#: The baseline condition every lift is measured against.
BASELINE = "none"


def mcnemar_exact(baseline: Sequence[bool], treated: Sequence[bool]) -> tuple[int, int, float]:
    """Exact McNemar test of paired correctness: ``(b, c, p)``.

    ``b``: items ``treated`` gets right and ``baseline`` wrong; ``c``: the
    reverse; ``p``: two-sided exact binomial test of ``b`` in ``b + c`` trials
    at 1/2 (``scipy.stats.binomtest``), 1.0 when there is no discordant pair.

    Example:
        >>> mcnemar_exact([0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1])
        (5, 0, 0.0625)
        >>> mcnemar_exact([1, 0], [1, 0])
        (0, 0, 1.0)
    """
    if len(baseline) != len(treated):
        raise ConfigError(f"mcnemar_exact needs paired results, got {len(baseline)} and {len(treated)} items")
    b = sum(1 for x, y in zip(baseline, treated) if y and not x)
    c = sum(1 for x, y in zip(baseline, treated) if x and not y)
    if b + c == 0:
        return 0, 0, 1.0
    from scipy.stats import binomtest

    return b, c, float(binomtest(b, b + c, 0.5).pvalue)


@dataclass
class Cell:
    """One (Receiver, condition) result.

    Attributes:
        receiver: The Receiver's label (its spec, or its name).
        condition: The condition's name (``none``, ``prior``, an Advisor spec).
        n: Items played.
        correct: Items answered correctly.
        accuracy: ``correct / n`` (pass@1 on code tasks).
        ci95: The 95% Wilson interval of ``accuracy``.
        parse_rate: Share of answers the scorer could read (``status == "ok"``).
        lift: ``accuracy - accuracy(none)`` on the same Receiver and items
            (``None`` for ``none`` itself).
        discordant: ``(b, c)`` of the McNemar test against ``none``.
        p_value: Its exact p-value.
        per_item: Correctness of each item, in item order.
    """

    receiver: str
    condition: str
    n: int
    correct: int
    accuracy: float
    ci95: tuple[float, float]
    parse_rate: float
    per_item: list[bool] = field(repr=False)
    lift: float | None = None
    discordant: tuple[int, int] | None = None
    p_value: float | None = None


@dataclass
class Evaluation:
    """The result of :func:`evaluate`: one :class:`Cell` per (Receiver, condition) and the run's setup."""

    env_id: str
    split: str
    metric: str
    item_ids: list[str]
    conditions: list[dict[str, str]]
    receivers: list[dict[str, Any]]
    cells: list[Cell]

    def cell(self, receiver: str, condition: str) -> Cell:
        """The cell of one Receiver and condition."""
        for c in self.cells:
            if c.receiver == receiver and c.condition == condition:
                return c
        raise ConfigError(f"no cell for receiver {receiver!r} and condition {condition!r}")

    def to_markdown(self) -> str:
        """The table: one row per (Receiver, condition)."""
        head = (f"| Receiver | Condition | {self.metric} | 95% Wilson CI | n | lift vs none | "
                "discordant (+/-) | McNemar p |")
        lines = [head, "|---|---|---:|---|---:|---:|---:|---:|"]
        for c in self.cells:
            lift = "—" if c.lift is None else f"{c.lift:+.3f}"
            disc = "—" if c.discordant is None else f"{c.discordant[0]}/{c.discordant[1]}"
            p = "—" if c.p_value is None else f"{c.p_value:.3g}"
            lines.append(f"| {_md(c.receiver)} | {_md(c.condition)} | {c.accuracy:.3f} ({c.correct}/{c.n}) | "
                         f"[{c.ci95[0]:.3f}, {c.ci95[1]:.3f}] | {c.n} | {lift} | {disc} | {p} |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-serialisable data (``results.json``)."""
        return {"env": self.env_id, "split": self.split, "metric": self.metric, "n": len(self.item_ids),
                "item_ids": self.item_ids, "conditions": self.conditions, "receivers": self.receivers,
                "cells": [asdict(c) for c in self.cells]}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class _EvaluateArgs(Arguments):
    env_id: str
    n: PositiveInt = 100
    split: str | None = None
    data_dir: Any = None
    signals: str | None = None
    seed: NonNegativeInt = 0
    batch_size: PositiveInt = 16
    out_dir: Any = None
    progress: Bool = True


def conditions_for(advisors: Sequence[Any]) -> list[Any]:
    """The conditions a run plays: ``none``, ``prior``, then each further Advisor given (in order, once).

    Example:
        >>> conditions_for(["runs/ppo/checkpoint.pt", "none"])
        ['none', 'prior', 'runs/ppo/checkpoint.pt']
        >>> conditions_for([])
        ['none', 'prior']
    """
    out: list[Any] = [BASELINE, "prior"]
    for a in advisors:
        key = a.strip() if isinstance(a, str) else a
        if isinstance(key, str) and key.lower() in (BASELINE, "prior"):
            continue
        if key not in out:
            out.append(key)
    return out


def _slug(text: str) -> str:
    short = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[-40:] or "x"
    return f"{short}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or unreadable: recomputed (writes are atomic, so only a foreign file lands here)


def _write_json(path: Path, data: Any) -> None:
    from bpa_gym.common.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(data, indent=2, default=str))


def _make_env(env_id: str, receiver: Any, receiver_kwargs: dict[str, Any] | None, env_kwargs: dict[str, Any]):
    import gymnasium as gym

    import bpa_gym  # noqa: F401  (registers the envs)

    kwargs = dict(env_kwargs)
    if receiver is not None:
        kwargs["receiver"] = receiver
        if receiver_kwargs and isinstance(receiver, str):
            kwargs["receiver_kwargs"] = dict(receiver_kwargs)
    return gym.make(env_id, **kwargs).unwrapped


def _label(receiver: Any) -> str:
    if receiver is None:
        return "default"
    return receiver.strip() if isinstance(receiver, str) else str(getattr(receiver, "name", type(receiver).__name__))


def _metric(task: Any) -> str:
    named = getattr(task, "metric", None)
    if isinstance(named, str) and named:
        return named
    return "pass@1" if getattr(task, "name", "") == "humaneval" else "accuracy"


def evaluate(env_id: str, receivers: Sequence[Any] | None = None, advisors: Sequence[Any] = (), *, n: int = 100,
             split: str | None = None, data_dir: Any = None, signals: str | None = None, seed: int = 0,
             cache: Any = "auto", receiver_kwargs: dict[str, Any] | None = None,
             receiver_kwargs_for: Any = None, env_kwargs: dict[str, Any] | None = None,
             advisor_options: AdvisorOptions | dict[str, Any] | None = None, batch_size: int = 16,
             out_dir: Any = None, progress: bool = True) -> Evaluation:
    """Run the Q1 protocol (see the module docstring) and return the table's cells.

    Args:
        env_id: A bpa_gym LLM env id (``BayesPersuasion-GSM8K-v0``, ...).
        receivers: Receiver specs (``"smollm2"``, ``"hf:..."``, ``"openai:...@..."``)
            or Receiver objects; ``None`` (or ``"default"``): the env's own.
        advisors: Further conditions (spec strings or Advisor objects); ``none``
            and ``prior`` always run (:func:`conditions_for`).
        n: Items: the first ``n`` of the split (all of them when fewer).
        split: The split (default: the env's).
        data_dir: Dataset folder (default: ``$BPA_DATA_DIR``, then the hub).
        signals: The env's signal mode (``"discrete"``/``"text"``; default the
            env's); it decides what ``prior`` means.
        seed: Seed of every sampled signal (the prior's draws, LM Advisors).
        cache: The response cache for each Receiver: ``"auto"``, ``False``,
            ``True`` or a database path (see :func:`~bpa_gym.receivers.caching.with_response_cache`);
            a Receiver without an ``identity`` is never cached.
        receiver_kwargs: Keyword arguments for Receivers built from spec strings.
        receiver_kwargs_for: ``f(spec) -> dict`` instead of ``receiver_kwargs``
            (e.g. a device only for local models).
        env_kwargs: Further env keyword arguments.
        advisor_options: :class:`~bpa_gym.advisors.AdvisorOptions` (``seed`` defaults to ``seed``).
        batch_size: Items per Receiver call.
        out_dir: Where signals and finished cells are kept for resumption
            (``None``: nothing is written; the cache still saves the answers).
        progress: tqdm progress bars on stderr.

    Returns:
        An :class:`Evaluation`; ``to_markdown()`` is the table.

    Raises:
        ConfigError: Bad arguments, an unknown Advisor spec, Receivers that see different items.
        ReceiverError: A Receiver failed (never scored 0).

    Example:
        >>> ev = evaluate("BayesPersuasion-Identity-v0", advisors=["index:1"], n=8, progress=False)
        >>> [c.condition for c in ev.cells]
        ['none', 'prior', 'index:1']
        >>> ev.cell("default", "none").accuracy
        0.0
    """
    a = check(_EvaluateArgs, "evaluate", env_id=env_id, n=n, split=split, data_dir=data_dir, signals=signals,
              seed=seed, batch_size=batch_size, out_dir=out_dir, progress=progress)
    if signals not in (None, "discrete", "text"):
        raise ConfigError(f"evaluate: signals must be 'discrete', 'text' or None (the env's), got {signals!r}")
    if isinstance(receivers, (str, bytes)) or (receivers is not None and not isinstance(receivers, Sequence)):
        receivers = [receivers]
    receivers = list(receivers or [None])
    receivers = [None if isinstance(r, str) and r.strip().lower() == "default" else r for r in receivers]
    labels = [_label(r) for r in receivers]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"evaluate: each Receiver must appear once, got {labels}")
    if isinstance(advisors, (str, bytes)) or not isinstance(advisors, Sequence):
        advisors = [advisors]
    base_env_kwargs = dict(env_kwargs or {})
    for key, value in (("split", a.split), ("data_dir", a.data_dir), ("signals", a.signals)):
        if value is not None:
            base_env_kwargs[key] = value
    options = dict(advisor_options) if isinstance(advisor_options, dict) else (
        advisor_options.model_dump(exclude_unset=True) if advisor_options is not None else {})
    options.setdefault("seed", a.seed)
    check(AdvisorOptions, "evaluate: advisor_options", **options)  # before any model loads
    out = Path(a.out_dir) if a.out_dir is not None else None
    from tqdm.auto import tqdm

    specs = conditions_for(advisors)
    for spec in specs:
        advisor_kind(spec)  # a bad spec fails now, not after the first Receiver has played
    condition_names = [s if isinstance(s, str) else str(getattr(s, "name", type(s).__name__)) for s in specs]
    if len(set(condition_names)) != len(condition_names):
        raise ConfigError(f"evaluate: condition names must be unique, got {condition_names}")
    cond_signals: dict[str, list[str]] = {}
    cond_info: dict[str, dict[str, str]] = {}
    items: list[Item] | None = None
    cells: list[Cell] = []
    receiver_rows: list[dict[str, Any]] = []
    metric = "accuracy"
    env_split = a.split

    for receiver, label in zip(receivers, labels):
        rk = receiver_kwargs_for(receiver) if (receiver_kwargs_for is not None and isinstance(receiver, str)) \
            else receiver_kwargs
        env = _make_env(a.env_id, receiver, rk, base_env_kwargs)
        try:
            from bpa_gym.receivers.base import receiver_identity
            from bpa_gym.receivers.caching import with_response_cache

            inner = env.game.receiver
            cached = getattr(inner, "identity", None) is not None and cache not in (False, None)
            env.game.receiver = with_response_cache(inner, cache) if cached else inner
            cached = env.game.receiver is not inner
            identity = receiver_identity(inner)
            receiver_rows.append({"label": label, "identity": identity, "cached": cached})
            if not cached and cache not in (False, None, "auto") and a.progress:
                print(f"note: receiver {label} is not cached (no identity, or a sampling Receiver under "
                      "cache='auto')", file=sys.stderr)
            env_items = list(env.items[: a.n])
            if items is None:
                items = env_items
                metric = _metric(env.task)
                env_split = env.split
                if a.n > len(env.items) and a.progress:
                    print(f"note: the split has only {len(env.items)} items; evaluating all of them", file=sys.stderr)
                library = env.signal_library
                max_chars = env.action_space.max_length if env.signal_library is None else None
                if max_chars is not None:
                    options.setdefault("max_signal_chars", max_chars)
                for spec, name in zip(specs, condition_names):
                    cond_signals[name], cond_info[name] = _condition_signals(spec, name, items, library, options,
                                                                             out, a.env_id, env_split)
            elif [it.id for it in env_items] != [it.id for it in items]:
                raise ConfigError(f"evaluate: receiver {label}'s env has other items than the first Receiver's; "
                                  "every Receiver must see the same items (same env, split and data)")
            from bpa_gym.envs.llm_vector import BatchPlayer

            play = BatchPlayer(env, "text")
            row_cells: list[Cell] = []
            for name in condition_names:
                sigs = cond_signals[name]
                key = _digest({"env": a.env_id, "split": env_split, "items": [it.id for it in items],
                               "receiver": identity, "signals": sigs})
                path = out / "cells" / f"{_slug(label)}__{_slug(name)}.json" if out is not None else None
                done = _read_json(path) if path is not None else None
                if isinstance(done, dict) and done.get("key") == key:
                    per_item, parsed = [bool(x) for x in done["per_item"]], int(done["parsed"])
                else:
                    per_item, parsed = [], 0
                    with tqdm(total=len(items), desc=f"{label} | {name}", unit="item", file=sys.stderr,
                              disable=not a.progress) as bar:
                        for lo in range(0, len(items), a.batch_size):
                            outcomes = play(items[lo:lo + a.batch_size], sigs[lo:lo + a.batch_size])
                            per_item += [bool(o.correct) for o in outcomes]
                            parsed += sum(o.status == "ok" for o in outcomes)
                            bar.update(len(outcomes))
                            bar.set_postfix(acc=f"{sum(per_item) / len(per_item):.3f}")
                    if path is not None:
                        _write_json(path, {"key": key, "receiver": label, "condition": name,
                                           "per_item": per_item, "parsed": parsed})
                row_cells.append(_cell(label, name, per_item, parsed))
            _add_lifts(row_cells)
            cells += row_cells
        finally:
            close = getattr(env, "close", None)
            if callable(close):
                close()
    assert items is not None
    return Evaluation(a.env_id, env_split or "", metric, [it.id for it in items],
                      [{"name": nm, **cond_info[nm]} for nm in condition_names], receiver_rows, cells)


def _cell(label: str, name: str, per_item: list[bool], parsed: int) -> Cell:
    from bpa_gym.stats import wilson_interval

    k, m = sum(per_item), len(per_item)
    return Cell(label, name, m, k, k / m, wilson_interval(k, m), parsed / m, per_item)


def _add_lifts(row: list[Cell]) -> None:
    base = next(c for c in row if c.condition == BASELINE)
    for c in row:
        if c is base:
            continue
        c.lift = c.accuracy - base.accuracy
        b, cc, p = mcnemar_exact(base.per_item, c.per_item)
        c.discordant, c.p_value = (b, cc), p


def _condition_signals(spec: Any, name: str, items: list[Item], library: Any, options: dict[str, Any],
                       out: Path | None, env_id: str, split: str) -> tuple[list[str], dict[str, str]]:
    """The condition's signal for each item: read back from ``out`` when a run already drew them, else drawn."""
    ids = [it.id for it in items]
    setup = {"env": env_id, "split": split, "spec": name, "options": {k: v for k, v in options.items()}}
    path = out / "signals" / f"{_slug(name)}.json" if out is not None else None
    saved = _read_json(path) if path is not None else None
    # An Advisor object's draws are reused only from this run (its name does not pin what it does): recomputed.
    if isinstance(spec, str) and isinstance(saved, dict) and saved.get("setup_key") == _digest(setup) and saved.get("item_ids") == ids \
            and isinstance(saved.get("signals"), list) and len(saved["signals"]) == len(ids):
        return [str(s) for s in saved["signals"]], {"description": str(saved.get("description", ""))}
    advisor: Advisor = load_advisor(spec, signal_library=library, options=options)
    signals = advisor.signals(items)
    if len(signals) != len(items) or not all(isinstance(s, str) for s in signals):
        raise ConfigError(f"advisor {name!r} returned {len(signals)} signals for {len(items)} items (need one "
                          "string per item)")
    description = str(getattr(advisor, "description", "") or type(advisor).__name__)
    if path is not None:
        _write_json(path, {"setup_key": _digest(setup), "condition": name, "description": description,
                           "item_ids": ids, "signals": signals})
    return signals, {"description": description}
