"""Gymnasium adapter for LLM persuasion games (``BayesPersuasion-GSM8K-v0``).

The environment is a thin shell around :class:`bpa_gym.game.PersuasionGame`:
reset draws an information item, step turns the action into a signal text,
plays one round against the Receiver and returns its correctness.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import sys
from typing import Any, Literal, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from pydantic import field_validator

from bpa_gym.common.validation import Arguments, Bool, PositiveInt, Seed, check, check_value
from bpa_gym.errors import ConfigError
from bpa_gym.game import PersuasionGame
from bpa_gym.prompts import PromptTemplate
from bpa_gym.receivers.base import Receiver
from bpa_gym.signals import CODE_SIGNALS, MATH_SIGNALS, SignalLibrary
from bpa_gym.spaces import printable_unicode_charset, text_space_for
from bpa_gym.tasks import make_task
from bpa_gym.tasks.base import Task
from bpa_gym.types import Item, Outcome

#: Keys of the ``info`` dict returned by :meth:`BayesPersuasionLLMEnv.step` (always all present).
STEP_INFO_KEYS: tuple[str, ...] = (
    "item_id",
    "item_index",
    "signal",
    "signal_index",
    "response",
    "extracted_answer",
    "gold",
    "correct",
    "parse_status",
    "latency_s",
    "prompt_tokens",
    "completion_tokens",
    "receiver_error",
    "parse_reason",
    "finish_reason",
)

#: Keys of the ``info`` dict returned by :meth:`BayesPersuasionLLMEnv.reset`.
RESET_INFO_KEYS: tuple[str, ...] = ("item_id", "item_index", "split")

_DEFAULT_LIBRARIES = {"gsm8k": MATH_SIGNALS, "humaneval": CODE_SIGNALS}


class LLMEnvArgs(Arguments):
    """The arguments of :class:`BayesPersuasionLLMEnv`, checked in one place (see its docstring)."""

    task: Any = "gsm8k"
    receiver: Any = "smollm2"
    data_dir: Any = None
    split: str = "test"
    subset_size: PositiveInt | None = None
    signals: Literal["discrete", "text"] = "discrete"
    signal_library: Any = None
    max_signal_length: PositiveInt = 512
    template: Any = None
    shuffle: Bool = True
    receiver_kwargs: dict[str, Any] | None = None
    oracle_table: Any = None
    cache: Any = "auto"
    render_mode: Literal["ansi"] | None = None

    @field_validator("task")
    @classmethod
    def _task(cls, v: Any) -> Any:
        if isinstance(v, str) or isinstance(v, Task):
            return v
        raise ValueError(f"must be a task name such as 'gsm8k' or a Task object, got {type(v).__name__}")

    @field_validator("receiver")
    @classmethod
    def _receiver(cls, v: Any) -> Any:
        if isinstance(v, str) or callable(getattr(v, "generate", None)):
            return v
        raise ValueError(f"must be a Receiver spec string such as 'smollm2' or a Receiver object, got "
                         f"{type(v).__name__}")

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, v: Any) -> Any:
        if v is None or isinstance(v, (str, os.PathLike)):
            return v
        raise ValueError(f"must be a folder path (str or os.PathLike) or None, got {type(v).__name__}")

    @field_validator("split", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError(f"must be a split name such as 'test', got {type(v).__name__}")
        return v

    @field_validator("signal_library")
    @classmethod
    def _library(cls, v: Any) -> Any:
        if v is None or (isinstance(v, Sequence) and not isinstance(v, (str, bytes))):
            return v
        raise ValueError(f"must be a list of signal texts or None, got {type(v).__name__}")

    @field_validator("template")
    @classmethod
    def _template(cls, v: Any) -> Any:
        if v is None or isinstance(v, PromptTemplate):
            return v
        raise ValueError(f"must be a bpa_gym.prompts.PromptTemplate or None, got {type(v).__name__} {v!r:.40}")

    @field_validator("receiver_kwargs", mode="before")
    @classmethod
    def _receiver_kwargs(cls, v: Any) -> Any:
        if v is None or isinstance(v, dict):
            return v
        raise ValueError(f"must be a dict of keyword arguments or None, got {type(v).__name__}")


class ResetOptions(Arguments):
    """The ``options`` :meth:`BayesPersuasionLLMEnv.reset` accepts."""

    item_index: Any = None


def default_signal_library(task: str) -> tuple[str, ...]:
    """The signal library a discrete-mode env uses for ``task`` when none is given.

    Example:
        >>> default_signal_library("gsm8k")[0] == ""  # index 0 is always "no signal"
        True
    """
    return tuple(_DEFAULT_LIBRARIES.get(task, MATH_SIGNALS))


def refuse_fork_after_torch(owner: str) -> None:
    """Raise a :class:`ConfigError` when an ``AsyncVectorEnv`` is about to fork a process that loaded torch.

    ``gym.make_vec(ID, N, vectorization_mode="async")`` builds one env in the
    parent, then starts its workers with the default start method, ``fork``
    on Linux.  Once torch has run a parallel op in the parent, its OpenMP
    thread pool does not survive ``fork``: a worker's first torch op (an HF
    Receiver's ``generate``) hangs forever.  Gymnasium gives an env spec no
    way to choose the start method, so the LLM envs refuse this combination
    at construction (in the parent, before any fork) with the two fixes.
    """
    if "torch" not in sys.modules:
        return
    from gymnasium.vector import AsyncVectorEnv

    frame = sys._getframe(1)
    for _ in range(16):  # make_vec -> AsyncVectorEnv.__init__ -> env_fns[0]() -> make -> ... -> here
        frame = frame.f_back
        if frame is None:
            return
        if frame.f_code.co_name == "__init__" and isinstance(frame.f_locals.get("self"), AsyncVectorEnv):
            context = frame.f_locals.get("context")
            if multiprocessing.get_context(context).get_start_method() == "fork":
                raise ConfigError(
                    f"{owner}: gym.make_vec(..., vectorization_mode='async') would fork this process after torch "
                    "was loaded; torch's OpenMP threads do not survive fork and the workers hang on their first "
                    "torch op. Use vectorization_mode='vector_entry_point' (the native vector env: one Receiver "
                    "batch per step, no subprocesses) or pass vector_kwargs={'context': 'spawn'}")
            return


class ItemOrder:
    """Which item each reset of an LLM env plays (shared by the single and the vector env).

    A seeded reset draws a permutation of the items (``shuffle=False``: dataset
    order); each further reset takes the next item, reshuffling after a full
    pass.  The random generator is the env's own (``env.np_random``), passed in,
    so an env reset with seed ``s`` and a vector sub-env reset with seed ``s``
    draw the same item sequence.

    Example:
        >>> import numpy as np
        >>> order = ItemOrder(3, shuffle=False)
        >>> rng = np.random.default_rng(0)
        >>> order.restart(rng); [order.next(rng) for _ in range(4)]
        [0, 1, 2, 0]
    """

    def __init__(self, num_items: int, shuffle: bool = True) -> None:
        self.num_items = int(num_items)
        self.shuffle = bool(shuffle)
        self._order = np.arange(self.num_items)
        self._cursor = 0

    def restart(self, rng: np.random.Generator) -> None:
        """Start a new pass (a fresh permutation when shuffling), as after a seeded reset."""
        self._order = rng.permutation(self.num_items) if self.shuffle else np.arange(self.num_items)
        self._cursor = 0

    def next(self, rng: np.random.Generator) -> int:
        """The index of the next item (a new pass from ``rng`` after the last one)."""
        if self._cursor >= len(self._order):
            self.restart(rng)
        index = int(self._order[self._cursor])
        self._cursor += 1
        return index

    def get_state(self) -> dict[str, Any]:
        """Where the order stands, as plain data (ints, a list, a bool): safe for ``torch.load(weights_only=True)``.

        Example:
            >>> import numpy as np
            >>> rng = np.random.default_rng(0)
            >>> order = ItemOrder(4)
            >>> order.restart(rng); _ = order.next(rng)
            >>> state = order.get_state()
            >>> state["cursor"], sorted(state["order"])
            (1, [0, 1, 2, 3])
            >>> other = ItemOrder(4); other.set_state(state)
            >>> [other.next(rng) for _ in range(3)] == state["order"][1:]
            True
        """
        return {"num_items": self.num_items, "shuffle": self.shuffle,
                "order": [int(i) for i in self._order], "cursor": int(self._cursor)}

    def set_state(self, state: Any) -> None:
        """Continue from a :meth:`get_state` of an order over as many items.

        Raises:
            ConfigError: ``state`` is not such a state (another item count,
                not a permutation of the items, a cursor out of range).
        """
        try:
            num_items, order, cursor = int(state["num_items"]), list(state["order"]), state["cursor"]
            ok = (num_items == self.num_items and isinstance(cursor, int) and not isinstance(cursor, bool)
                  and 0 <= cursor <= num_items and sorted(int(i) for i in order) == list(range(num_items)))
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"ItemOrder.set_state: not the state of an item order over {self.num_items} items "
                              f"(a dict with num_items, order: a permutation of 0..{self.num_items - 1}, cursor) "
                              f"but {state!r:.120}; was it saved from an env over other items?")
        self._order = np.asarray(order, dtype=np.int64)
        self._cursor = int(cursor)


class BayesPersuasionLLMEnv(gym.Env):
    """One-step persuasion game: observe an item, send a signal, get the Receiver's correctness.

    The state is an information item (e.g. a GSM8K question).  The Advisor's
    action is a signal: an index into a signal library (``signals="discrete"``)
    or free text (``signals="text"``).  The Receiver LLM answers the item with
    the signal in its context; the reward is 1.0 if its answer is correct and
    0.0 otherwise.  Each episode is one step (``terminated=True``).

    Spaces:
        observation: :class:`~gymnasium.spaces.Text` holding the question; its
            charset is built from the data (printable ASCII + every character
            of the split), so every item is a member.  The gold answer never
            appears in the observation.
        action: ``Discrete(m)`` over the signal library (index 0 of the default
            libraries is silence, i.e. no signal), or a ``Text`` space of
            printable Unicode up to ``max_signal_length`` characters.

    Step ``info`` keys (stable, see :data:`STEP_INFO_KEYS`): ``item_id``,
    ``item_index`` (position in the split), ``signal`` (text the Receiver saw),
    ``signal_index`` (``None`` in text mode), ``response`` (Receiver's raw
    text), ``extracted_answer`` (or ``None``), ``gold``, ``correct``,
    ``parse_status`` (``"ok"``, ``"unparseable"`` or ``"truncated"``: neither
    is the same as wrong, though all give reward 0; see
    :data:`~bpa_gym.types.ParseStatus`), ``latency_s``, ``prompt_tokens``,
    ``completion_tokens``, ``receiver_error`` (always ``None``: a Receiver
    failure raises :class:`~bpa_gym.errors.ReceiverError` instead of returning
    a reward), ``parse_reason`` (why the response was unparseable or
    truncated, else ``None``) and ``finish_reason`` (``"stop"``, ``"length"``
    when the Receiver hit its token limit, or ``None`` when it cannot tell).
    ``parse_status="truncated"`` means ``finish_reason == "length"`` and no
    explicit final-answer marker: the cut-off text is not scored from a stray
    number.

    Arguments are checked in one place (:class:`LLMEnvArgs`); any bad one is
    a :class:`~bpa_gym.errors.ConfigError` naming it.  ``step`` after the
    episode ended raises :class:`~bpa_gym.errors.ConfigError` (call ``reset``).

    Determinism: ``latency_s`` is a wall-clock measurement, so the spec is
    registered ``nondeterministic=True`` (Gymnasium's checker compares step
    ``info`` exactly); with a greedy local Receiver the observation, reward
    and response are reproducible from the seed.

    Item order: ``reset(seed=s)`` draws a permutation of the items from ``s``;
    each further reset takes the next item, reshuffling after a full pass.
    ``reset(options={"item_index": i})`` plays item ``i`` of the split.

    Args:
        task: Task name (``"gsm8k"``) or a :class:`~bpa_gym.tasks.base.Task`.
        receiver: A Receiver object or spec string: ``"smollm2"``,
            ``"hf:<id-or-path>"``, ``"openai:<model>@<base_url>"``.
        data_dir: Folder holding ``gsm8k/`` etc.; default ``$BPA_DATA_DIR``,
            then the Hugging Face hub.
        split: Dataset split to draw items from.
        subset_size: Use only the first ``subset_size`` items of the split.
        signals: ``"discrete"`` or ``"text"``.
        signal_library: Signal texts for discrete mode; default: the task's
            library (see :mod:`bpa_gym.signals`).
        max_signal_length: Longest free-text signal (characters) in text mode.
        template: Prompt template; default: the task's.
        shuffle: Shuffle the item order on seeded reset (``False``: dataset order).
        receiver_kwargs: Extra keyword arguments for building the Receiver from
            a spec string (e.g. ``{"max_new_tokens": 128, "device": "cuda"}``).
        oracle_table: An :class:`~bpa_gym.oracle_table.OracleTable` (or the
            path of a saved one) for regret; see :meth:`regret_oracle`.
        cache: The response cache (see
            :func:`bpa_gym.receivers.caching.with_response_cache`): ``"auto"``
            (default) replays the answers of a greedy built-in Receiver from
            ``$BPA_RESPONSE_CACHE`` (else ``$BPA_CACHE_DIR/responses.sqlite``,
            else the user cache folder) and pays only for new prompts;
            ``False`` turns it off; ``True`` or a path caches sampling
            Receivers too.  ``BPA_RESPONSE_CACHE=off`` turns the default off.
        render_mode: ``None`` or ``"ansi"``.

    Example:
        >>> import gymnasium as gym, bpa_gym
        >>> env = gym.make("BayesPersuasion-GSM8K-v0", receiver="smollm2",
        ...                data_dir="../shared/data")  # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
        >>> obs, reward, terminated, truncated, info = env.step(9)  # doctest: +SKIP
        >>> reward, info["parse_status"]  # doctest: +SKIP
        (0.0, 'ok')
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        task: str | Task = "gsm8k",
        receiver: str | Receiver = "smollm2",
        *,
        data_dir: str | os.PathLike | None = None,
        split: str = "test",
        subset_size: int | None = None,
        signals: Literal["discrete", "text"] = "discrete",
        signal_library: Sequence[str] | None = None,
        max_signal_length: int = 512,
        template: PromptTemplate | None = None,
        shuffle: bool = True,
        receiver_kwargs: dict[str, Any] | None = None,
        oracle_table: Any = None,
        cache: Any = "auto",
        render_mode: str | None = None,
        **unknown: Any,
    ) -> None:
        given = dict(task=task, receiver=receiver, data_dir=data_dir, split=split, subset_size=subset_size,
                     signals=signals, signal_library=signal_library, max_signal_length=max_signal_length,
                     template=template, shuffle=shuffle, receiver_kwargs=receiver_kwargs, oracle_table=oracle_table,
                     cache=cache, render_mode=render_mode, **unknown)
        check(LLMEnvArgs, type(self).__name__, **given)
        refuse_fork_after_torch(type(self).__name__)

        self.task = make_task(task, data_dir=data_dir)
        if split not in self.task.splits:
            raise ConfigError(f"unknown split {split!r} for task {self.task.name}; choose from {list(self.task.splits)}")
        items = self.task.load(split)
        if subset_size is not None:
            if subset_size > len(items):
                raise ConfigError(f"subset_size must be in 1..{len(items)} for {self.task.name}/{split}, got {subset_size}")
            items = items[: int(subset_size)]
        self.items: list[Item] = list(items)
        self.split = split
        self.signal_mode = signals
        self.shuffle = shuffle
        self.render_mode = render_mode

        if receiver_kwargs is not None and not isinstance(receiver, str):
            raise ConfigError("receiver_kwargs only applies when receiver is a spec string")
        from bpa_gym.receivers import make_receiver
        from bpa_gym.receivers.caching import with_response_cache

        built = make_receiver(receiver, **(receiver_kwargs or {}))
        self.game = PersuasionGame(self.task, with_response_cache(built, cache), template)

        self.observation_space = text_space_for((it.question for it in self.items), min_length=0)
        if signals == "discrete":
            self.signal_library: SignalLibrary | None = SignalLibrary(
                signal_library or default_signal_library(self.task.name))
            self.action_space = spaces.Discrete(len(self.signal_library))
        else:
            if signal_library is not None:
                raise ConfigError("signal_library only applies to signals='discrete'; in text mode the action is the text")
            self.signal_library = None
            self.action_space = spaces.Text(max_signal_length, min_length=0, charset=printable_unicode_charset())

        if oracle_table is not None:  # loaded if a path; refused if built for another setup
            from bpa_gym.oracle_table import bind_oracle_table

            oracle_table = bind_oracle_table(oracle_table, self)
        self.oracle_table = oracle_table

        self._item_order = ItemOrder(len(self.items), shuffle)
        self._item_index: int | None = None
        self._last: Outcome | None = None
        self._done = False

    # ------------------------------------------------------------------ API
    @property
    def num_signals(self) -> int | None:
        """m, the number of discrete signals (``None`` in text mode)."""
        return None if self.signal_library is None else len(self.signal_library)

    @property
    def receiver(self) -> Receiver:
        return self.game.receiver

    @property
    def item(self) -> Item:
        """The current item (after :meth:`reset`)."""
        if self._item_index is None:
            raise gym.error.ResetNeeded("call reset() before reading the current item")
        return self.items[self._item_index]

    def signal_text(self, action: Any) -> str:
        """The signal text an action stands for (validates the action)."""
        if not self.action_space.contains(action) or isinstance(action, (bool, np.bool_)):
            if self.signal_mode == "discrete":
                raise ConfigError(
                    f"action {action!r} is outside the action space Discrete({self.action_space.n}); "
                    f"pass an integer signal index in 0..{self.action_space.n - 1}"
                )
            text = action if isinstance(action, str) else None
            why = (
                f"it is not a string but {type(action).__name__}" if text is None
                else f"it has {len(text)} characters (max {self.action_space.max_length})"
                if len(text) > self.action_space.max_length
                else f"it contains characters outside the printable charset: {sorted({c for c in text if c not in self.action_space.character_set})[:5]!r}"
            )
            raise ConfigError(f"text action is outside the action space: {why}; pass a printable string "
                              f"of at most {self.action_space.max_length} characters (env kwarg max_signal_length)")
        if self.signal_library is not None:
            return self.signal_library[int(action)]
        return str(action)

    def regret_oracle(self, comparator: str = "per_item"):
        """The regret oracle of this env: an oracle table over its discrete signals.

        Args:
            comparator: ``"per_item"`` (best signal for each item) or
                ``"best_fixed"`` (best single signal in hindsight).

        Raises:
            OracleUnavailableError: in text mode (no finite signal set), or
                when no oracle table was given (build one with
                :func:`bpa_gym.oracle_table.build_oracle_table` or
                ``bpa-gym oracle-table`` and pass ``oracle_table=``).
        """
        from bpa_gym.errors import OracleUnavailableError
        from bpa_gym.oracle_table import OracleTableRegret

        if self.signal_library is None:
            raise OracleUnavailableError(
                "free-text signals have no regret oracle (the signal set is not finite); use signals='discrete'")
        if self.oracle_table is None:
            raise OracleUnavailableError(
                "this LLM env has no oracle table: build one with bpa_gym.oracle_table.build_oracle_table(env) "
                "(or `bpa-gym oracle-table --out table.npz`) and pass oracle_table=<table or path> to make()")
        return OracleTableRegret(self.oracle_table, comparator, env=self)  # refuses a table of another setup

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            seed = check_value(Seed, seed, "seed", f"{type(self).__name__}.reset()")
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"{type(self).__name__}.reset(): invalid argument\n  - options = {options!r:.80}: "
                              "must be a dict such as {'item_index': 3} or None")
        item_index = None
        if options:  # the common reset(), with no options, skips the model
            item_index = check(ResetOptions, f"{type(self).__name__}.reset() options", **options).item_index
        if item_index is not None:
            try:
                item_index = check_value(Seed, item_index, "item_index", f"{type(self).__name__}.reset() options")
            except ConfigError as e:
                raise ConfigError(f"{e} (item_index must be in 0..{len(self.items) - 1})") from None
        super().reset(seed=seed)
        if seed is not None:
            self._item_order.restart(self.np_random)
        if item_index is not None:
            if not 0 <= int(item_index) < len(self.items):
                raise ConfigError(f"item_index {item_index} outside 0..{len(self.items) - 1}")
            self._item_index = int(item_index)
        else:
            self._item_index = self._item_order.next(self.np_random)
        self._last = None
        self._done = False
        item = self.items[self._item_index]
        return item.question, {"item_id": item.id, "item_index": self._item_index, "split": self.split}

    def step(self, action: Any):
        if self._item_index is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        library = self.signal_library
        if library is not None and type(action) in (int, np.int64) and 0 <= action < len(library.signals):
            signal = library.signals[action]  # fast path: an in-range index needs no space check
        else:
            signal = self.signal_text(action)
        if self._done:
            raise ConfigError("step() called after the episode ended (each episode is one step, terminated=True); "
                              "call env.reset() first")
        item = self.items[self._item_index]
        (outcome,) = self.game.play([item], [signal])
        self._last = outcome
        self._done = True
        info = outcome.as_info()
        info["item_index"] = self._item_index
        info["signal_index"] = int(action) if self.signal_library is not None else None
        return item.question, float(outcome.reward), True, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self._item_index is None:
            return "(not reset)"
        lines = [f"item {self.item.id}: {self.item.question}"]
        if self._last is not None:
            o = self._last
            lines += [f"signal: {o.signal or '(none)'}", f"receiver: {o.response}",
                      f"extracted={o.extracted!r} gold={o.gold!r} reward={o.reward}"]
        return "\n".join(lines)
