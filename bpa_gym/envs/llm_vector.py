"""Native vector env for the LLM persuasion games: N sub-envs, ONE Receiver batch per step.

``gym.make_vec("BayesPersuasion-GSM8K-v0", num_envs=N, vectorization_mode="vector_entry_point")``
(also ``BayesPersuasion-Identity-v0``) builds a :class:`BayesPersuasionLLMVectorEnv`.
Its :meth:`~BayesPersuasionLLMVectorEnv.step` turns the N actions into N
signals and plays all N (item, signal) pairs with one
:meth:`bpa_gym.game.PersuasionGame.play` call: one batched ``generate`` for an
in-process Hugging Face Receiver, N concurrent requests for a server
Receiver.  ``vectorization_mode="sync"`` steps N single envs instead, with N
Receiver calls of batch 1.

Autoreset: :attr:`gymnasium.vector.AutoresetMode.SAME_STEP`.  Every episode
is one step, so every step ends all N episodes; the step returns at once the
observations of the N *next* items (no wasted step, as ``NEXT_STEP`` would
need, whose extra step plays no Receiver and returns reward 0).  What the
finished step produced is in the standard keys of that mode:

* ``info["final_obs"]``: object array of the N observations the step ended on
  (the played items' questions);
* ``info["final_info"]``: the step info of the played items as a dict of
  arrays with the single env's keys (:data:`~bpa_gym.envs.llm.STEP_INFO_KEYS`),
  each with its ``_key`` mask, as Gymnasium's vector envs batch infos;
* the top-level ``info`` keys (``item_id``, ``item_index``, ``split``) are
  the reset info of the next items, as after :meth:`reset`.

``terminated`` is all True and ``truncated`` all False on every step.  The
layout is exactly that of ``gym.make_vec(..., vectorization_mode="sync",
vector_kwargs={"autoreset_mode": "SameStep"})``, and so are the values:
sub-env ``i`` reset with seed ``s + i`` draws the same item sequence as a
single env reset with ``s + i`` (:class:`~bpa_gym.envs.llm.ItemOrder`).

Reset options (beyond ``reset_mask``, a bool array of shape ``(N,)`` that
resets only those sub-envs):

* ``{"item_index": i}`` plays item ``i`` in every sub-env; a sequence of N
  indices pins one item per sub-env;
* ``{"items": [Item, ...]}`` (N :class:`~bpa_gym.types.Item` objects) plays
  those items, which need not belong to the env's split (their
  ``item_index`` is ``None``).  This is the public way to evaluate given
  items in batches (``bpa-gym eval``, oracle tables, the TRL reward).

A Receiver failure raises :class:`~bpa_gym.errors.ReceiverError`, as in the
single env (never a reward 0).  A wrong number of actions or an action
outside the single action space is a :class:`~bpa_gym.errors.ConfigError`
naming the sub-env.

Example:
    >>> import gymnasium as gym, bpa_gym
    >>> venv = gym.make_vec("BayesPersuasion-Identity-v0", num_envs=3,
    ...                     vectorization_mode="vector_entry_point")
    >>> obs, info = venv.reset(seed=0)
    >>> len(obs), info["item_id"][0]
    (3, 'identity/train/16')
    >>> obs, rewards, terminated, truncated, info = venv.step([0, 1, 2])
    >>> rewards.shape, bool(terminated.all()), sorted(info["final_info"])[:3]
    ((3,), True, ['_completion_tokens', '_correct', '_extracted_answer'])
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from bpa_gym.common.validation import Seed, check_value
from bpa_gym.envs.identity import IdentityEnv
from bpa_gym.envs.llm import BayesPersuasionLLMEnv, ItemOrder
from bpa_gym.errors import ConfigError
from bpa_gym.types import Item

__all__ = ["BatchPlayer", "BayesPersuasionLLMVectorEnv", "IdentityVectorEnv"]


class BayesPersuasionLLMVectorEnv(VectorEnv):
    """N one-step LLM persuasion games stepped with one batched Receiver call.

    Built by ``gym.make_vec(ID, num_envs=N, vectorization_mode="vector_entry_point", **env_kwargs)``
    or :meth:`from_env`.  See the module docstring for the autoreset
    semantics, info layout and reset options.

    Args:
        num_envs: N, the number of sub-envs (items played per step).
        **env_kwargs: The single env's arguments (see
            :class:`~bpa_gym.envs.llm.BayesPersuasionLLMEnv`); the Receiver is
            built once and shared by all sub-envs.

    Attributes:
        items: The env's items (the split, cut to ``subset_size``).
        signal_library: The discrete signal texts (``None`` in text mode).
        num_signals: m (``None`` in text mode).
        current_items: The N items the next :meth:`step` plays.
    """

    #: The single env class built by the constructor.
    single_env_class: type[BayesPersuasionLLMEnv] = BayesPersuasionLLMEnv

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, num_envs: int = 1, **env_kwargs: Any) -> None:
        self._init(self.single_env_class(**env_kwargs), num_envs, None)
        self._owns_env = True

    @classmethod
    def from_env(cls, env: gym.Env, num_envs: int, signals: Literal["discrete", "text"] | None = None, *,
                 max_signal_length: int | None = None) -> "BayesPersuasionLLMVectorEnv":
        """A vector env over the same game (Receiver, task, items) as a single LLM env; nothing is reloaded.

        This is the public way to play given items with given signals in one
        Receiver batch (``bpa-gym eval``, oracle tables and the TRL reward use
        it): ``reset(options={"items": items})`` then ``step(actions)``.

        Args:
            env: A bpa_gym LLM env (wrapped or not).
            num_envs: N.
            signals: ``"text"`` to send free-text signals, also through an env
                made with discrete ones (e.g. to evaluate a custom signal);
                default: the env's own mode.  A ``"text"`` view takes any
                string of at most ``max_signal_length`` characters as an action
                (what a text generator writes, unfiltered).
            max_signal_length: Longest text action of a ``"text"`` view
                (``None``: no limit).

        Example:
            >>> import gymnasium as gym, bpa_gym
            >>> env = gym.make("BayesPersuasion-Identity-v0")
            >>> venv = BayesPersuasionLLMVectorEnv.from_env(env, 2, signals="text")
            >>> _ = venv.reset(options={"item_index": [0, 1]})
            >>> venv.step(["Strategy A", ""])[1].tolist()
            [0.0, 0.0]
        """
        base = getattr(env, "unwrapped", env)
        if not isinstance(base, BayesPersuasionLLMEnv):
            raise ConfigError(f"from_env needs a bpa_gym LLM env (e.g. gym.make('BayesPersuasion-GSM8K-v0')), got "
                              f"{type(env).__name__}")
        if signals not in (None, "discrete", "text"):
            raise ConfigError(f"signals must be 'discrete', 'text' or None (the env's mode), got {signals!r}")
        if signals == "discrete" and base.signal_library is None:
            raise ConfigError("this env takes free-text signals and has no signal library; use signals='text'")
        if max_signal_length is not None and (isinstance(max_signal_length, bool)
                                              or not isinstance(max_signal_length, int) or max_signal_length < 1):
            raise ConfigError(f"max_signal_length must be an integer >= 1 or None, got {max_signal_length!r:.40}")
        self = cls.__new__(cls)
        self._init(base, num_envs, signals, text_view=(signals or base.signal_mode) == "text",
                   max_signal_length=max_signal_length)
        self._owns_env = False  # closing the view leaves the caller's env open
        return self

    def _init(self, env: BayesPersuasionLLMEnv, num_envs: Any, signals: str | None, text_view: bool = False,
              max_signal_length: int | None = None) -> None:
        if isinstance(num_envs, (bool, np.bool_)) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"{type(self).__name__}: invalid argument\n  - num_envs = {num_envs!r:.40}: must be "
                              "an integer >= 1")
        self.env = env
        self.num_envs = int(num_envs)
        self.items: list[Item] = env.items
        self.signal_mode = signals or env.signal_mode
        self.signal_library = env.signal_library if self.signal_mode == "discrete" else None
        self.render_mode = env.render_mode
        self.metadata = dict(self.metadata)
        self.single_observation_space = env.observation_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._text_view = text_view
        self._max_signal_length = max_signal_length
        if not text_view:
            self.single_action_space = env.action_space
        else:  # declared for sampling; _signal_text accepts any string up to max_signal_length
            length = max_signal_length or (env.action_space.max_length if env.signal_mode == "text" else 512)
            self.single_action_space = spaces.Text(length, min_length=0, charset=_printable())
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._orders = [ItemOrder(len(env.items), env.shuffle) for _ in range(self.num_envs)]
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._current: list[Item | None] = [None] * self.num_envs
        self._current_index: list[int | None] = [None] * self.num_envs
        self.closed = False
        self.last_outcomes: list = []

    # ------------------------------------------------------------ properties
    @property
    def num_signals(self) -> int | None:
        """m, the number of discrete signals (``None`` in text mode)."""
        return None if self.signal_library is None else len(self.signal_library)

    @property
    def receiver(self):
        """The Receiver all sub-envs share."""
        return self.env.receiver

    @property
    def task(self):
        """The task (item source and scorer)."""
        return self.env.task

    @property
    def split(self) -> str:
        return self.env.split

    @property
    def current_items(self) -> list[Item]:
        """The N items the next step plays (after :meth:`reset`)."""
        if any(it is None for it in self._current):
            raise gym.error.ResetNeeded("call reset() before reading the current items")
        return list(self._current)  # type: ignore[arg-type]

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """The N sub-envs' random generators (seeded as :class:`~gymnasium.vector.SyncVectorEnv` seeds them)."""
        return tuple(self._rng(i) for i in range(self.num_envs))

    def regret_oracle(self, comparator: str = "per_item"):
        """The single env's regret oracle (see :meth:`bpa_gym.envs.llm.BayesPersuasionLLMEnv.regret_oracle`)."""
        return self.env.regret_oracle(comparator)

    def get_item_state(self) -> dict[str, Any]:
        """The item stream of every sub-env as plain data, to continue it exactly after a restart.

        Each sub-env's random generator (its ``bit_generator.state``: strings
        and ints), :class:`~bpa_gym.envs.llm.ItemOrder` (permutation and
        cursor) and current item index; nothing but dicts, lists, ints,
        strings and bools, so it can go into a checkpoint read back with
        ``torch.load(weights_only=True)`` or into JSON.

        Raises:
            ConfigError: a sub-env was never reset, or plays an item given by
                ``reset(options={"items": ...})`` (not one of the env's items).

        Example:
            >>> import gymnasium as gym, bpa_gym
            >>> venv = gym.make_vec("BayesPersuasion-Identity-v0", num_envs=2,
            ...                     vectorization_mode="vector_entry_point")
            >>> _ = venv.reset(seed=0)
            >>> state = venv.get_item_state()
            >>> first = [venv.step([0, 0])[-1]["item_id"].tolist() for _ in range(3)]
            >>> other = gym.make_vec("BayesPersuasion-Identity-v0", num_envs=2,
            ...                      vectorization_mode="vector_entry_point")
            >>> other.set_item_state(state)
            >>> [other.step([0, 0])[-1]["item_id"].tolist() for _ in range(3)] == first
            True
        """
        if any(ix is None for ix in self._current_index):
            raise ConfigError(f"{type(self).__name__}.get_item_state(): every sub-env must be reset on one of the "
                              "env's items first (items given by reset(options={'items': ...}) have no place in "
                              "the item stream)")
        return {"num_envs": self.num_envs, "num_items": len(self.items), "sub_envs": [
            {"rng": None if self._rngs[i] is None else self._rngs[i].bit_generator.state,
             "order": self._orders[i].get_state(), "item_index": int(self._current_index[i])}
            for i in range(self.num_envs)]}

    def set_item_state(self, state: Any) -> None:
        """Continue the item streams saved by :meth:`get_item_state` (of a vector env over the same items).

        No :meth:`reset` is needed after it: the current items are the saved
        ones (read them with :attr:`current_items`).

        Raises:
            ConfigError: ``state`` is not such a state, or was saved with
                another ``num_envs`` or another number of items.
        """
        name = f"{type(self).__name__}.set_item_state()"
        try:
            subs = list(state["sub_envs"])
            ok = (int(state["num_envs"]) == self.num_envs == len(subs)
                  and int(state["num_items"]) == len(self.items))
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{name}: not an item state of this vector env (num_envs={self.num_envs}, "
                              f"{len(self.items)} items): {state!r:.120}; save it with get_item_state() of a vector "
                              "env over the same items and num_envs")
        rngs, orders, current = [], [], []
        for i, sub in enumerate(subs):
            try:
                rngs.append(None if sub["rng"] is None else _generator(sub["rng"]))
                order = ItemOrder(len(self.items), self.env.shuffle)
                order.set_state(sub["order"])
                orders.append(order)
                index = sub["item_index"]
                if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.items):
                    raise ConfigError(f"item_index {index!r:.40} is outside 0..{len(self.items) - 1}")
                current.append(index)
            except (TypeError, KeyError, ValueError, ConfigError) as e:
                raise ConfigError(f"{name}: sub-env {i}: invalid state ({e})") from None
        self._rngs, self._orders = rngs, orders
        self._current_index = current
        self._current = [self.items[ix] for ix in current]

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the sub-envs (all, or those in ``options["reset_mask"]``); see the module docstring."""
        name = f"{type(self).__name__}.reset()"
        seeds = self._seeds(seed, name)
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"{name}: invalid argument\n  - options = {options!r:.80}: must be a dict such as "
                              "{'item_index': [3, 5]} or None")
        options = dict(options or {})
        mask = self._mask(options.pop("reset_mask", None), name)
        never = [i for i in range(self.num_envs) if not mask[i] and self._current[i] is None]
        if never:
            raise ConfigError(f"{name}: sub-envs {never} were never reset; reset all sub-envs (no reset_mask) first")
        pinned = self._pinned(options, name)
        infos: dict[str, Any] = {}
        for i in range(self.num_envs):
            if not mask[i]:
                continue
            if seeds[i] is not None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
                self._orders[i].restart(self._rngs[i])
            if pinned is not None:
                item, index = pinned[i]
            else:
                index = self._orders[i].next(self._rng(i))
                item = self.items[index]
            self._current[i], self._current_index[i] = item, index
            infos = self._add_info(infos, self._reset_info(i), i)
        return self._observations(), infos

    def step(self, actions: Any):
        """Play all N actions with one Receiver call; autoreset every sub-env (``SAME_STEP``)."""
        if any(it is None for it in self._current):
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = self._action_list(actions)
        signals = [self._signal_text(a, i) for i, a in enumerate(actions)]
        items: list[Item] = list(self._current)  # type: ignore[arg-type]
        # one batch; a Receiver failure raises ReceiverError, as in the single env (never a reward 0)
        outcomes = self.env.game.play(items, signals, on_error="raise")
        rewards = np.array([o.reward for o in outcomes], dtype=np.float64)
        step_infos = []
        for i, outcome in enumerate(outcomes):
            info = outcome.as_info()
            info["item_index"] = self._current_index[i]
            info["signal_index"] = int(actions[i]) if self.signal_library is not None else None
            step_infos.append(info)
            index = self._orders[i].next(self._rng(i))
            self._current[i], self._current_index[i] = self.items[index], index
        final_obs = np.empty(self.num_envs, dtype=object)
        final_obs[:] = [item.question for item in items]
        everyone = np.ones(self.num_envs, dtype=np.bool_)
        infos = {"final_obs": final_obs, "_final_obs": everyone, "final_info": _batch(step_infos),
                 "_final_info": everyone.copy()}
        infos.update(_batch([self._reset_info(i) for i in range(self.num_envs)]))
        self.last_outcomes = outcomes
        terminated = np.ones(self.num_envs, dtype=np.bool_)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        return self._observations(), rewards, terminated, truncated, infos

    def render(self) -> tuple[str, ...] | None:
        """``"ansi"``: one line block per sub-env (its current item and last play)."""
        if self.render_mode != "ansi":
            return None
        last = self.last_outcomes or [None] * self.num_envs
        out = []
        for i in range(self.num_envs):
            item = self._current[i]
            text = "(not reset)" if item is None else f"item {item.id}: {item.question}"
            if last[i] is not None:
                o = last[i]
                text = (f"played {o.item_id}: signal {o.signal or '(none)'!s}; receiver: {o.response}; "
                        f"reward={o.reward}\n") + text
            out.append(text)
        return tuple(out)

    def close_extras(self, **kwargs: Any) -> None:
        if self._owns_env:
            self.env.close()

    # -------------------------------------------------------------- helpers
    def _rng(self, i: int) -> np.random.Generator:
        if self._rngs[i] is None:  # like gym.Env.np_random: an unseeded generator on first use
            self._rngs[i] = seeding.np_random()[0]
        return self._rngs[i]

    def _reset_info(self, i: int) -> dict[str, Any]:
        return {"item_id": self._current[i].id, "item_index": self._current_index[i], "split": self.split}

    def _observations(self) -> tuple[str, ...]:
        return tuple(item.question for item in self._current)

    def _seeds(self, seed: Any, name: str) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (list, tuple, np.ndarray)):
            if len(seed) != self.num_envs:
                raise ConfigError(f"{name}: invalid argument\n  - seed: a list of seeds must have num_envs="
                                  f"{self.num_envs} entries, got {len(seed)}")
            return [check_value(Seed, s, f"seed[{i}]", name) for i, s in enumerate(seed)]
        seed = check_value(Seed, seed, "seed", name)
        return [seed + i for i in range(self.num_envs)]  # as SyncVectorEnv seeds its sub-envs

    def _mask(self, mask: Any, name: str) -> np.ndarray:
        if mask is None:
            return np.ones(self.num_envs, dtype=np.bool_)
        arr = np.asarray(mask)
        if arr.dtype != np.bool_ or arr.shape != (self.num_envs,) or not arr.any():
            raise ConfigError(f"{name}: invalid option\n  - reset_mask = {mask!r:.80}: must be a bool array of shape "
                              f"({self.num_envs},) with at least one True")
        return arr

    def _pinned(self, options: dict[str, Any], name: str) -> list[tuple[Item, int | None]] | None:
        unknown = sorted(set(options) - {"item_index", "items"})
        if unknown or ("item_index" in options and "items" in options):
            raise ConfigError(f"{name}: invalid options {sorted(options)}: accepted are 'reset_mask' and one of "
                              "'item_index' (an index, or one per sub-env) or 'items' (one Item per sub-env)")
        if options.get("items") is not None:
            items = options["items"]
            if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or len(items) != self.num_envs \
                    or not all(isinstance(it, Item) for it in items):
                raise ConfigError(f"{name}: invalid option\n  - items: must be a sequence of num_envs={self.num_envs}"
                                  " bpa_gym.types.Item objects")
            return [(it, None) for it in items]
        index = options.get("item_index")
        if index is None:
            return None
        per_env = list(index) if isinstance(index, (list, tuple, np.ndarray)) else [index] * self.num_envs
        if len(per_env) != self.num_envs:
            raise ConfigError(f"{name}: invalid option\n  - item_index: a list must have num_envs={self.num_envs} "
                              f"entries, got {len(per_env)}")
        out = []
        for i, ix in enumerate(per_env):
            ix = check_value(Seed, ix.item() if isinstance(ix, np.generic) else ix, f"item_index[{i}]", name)
            if ix is None or not 0 <= ix < len(self.items):
                raise ConfigError(f"{name}: item_index[{i}] = {ix} is outside 0..{len(self.items) - 1}")
            out.append((self.items[ix], ix))
        return out

    def _action_list(self, actions: Any) -> list[Any]:
        if isinstance(actions, (str, bytes)) or not hasattr(actions, "__len__"):
            raise ConfigError(f"{type(self).__name__}.step(): actions must be a sequence of num_envs={self.num_envs} "
                              f"actions (one per sub-env), got {type(actions).__name__} {actions!r:.60}")
        if isinstance(actions, np.ndarray) and actions.ndim != 1:
            raise ConfigError(f"{type(self).__name__}.step(): actions must have shape ({self.num_envs},), got "
                              f"{actions.shape}")
        if len(actions) != self.num_envs:
            raise ConfigError(f"{type(self).__name__}.step(): got {len(actions)} actions for num_envs="
                              f"{self.num_envs} sub-envs; pass one action per sub-env")
        return [a.item() if isinstance(a, np.generic) and not isinstance(a, np.str_) else a for a in actions]

    def _signal_text(self, action: Any, i: int) -> str:
        try:
            if not self._text_view:
                return self.env.signal_text(action)  # the single env's checks and messages
            if not isinstance(action, str):
                raise ConfigError(f"text action {action!r:.60} is not a string but {type(action).__name__}")
            if self._max_signal_length is not None and len(action) > self._max_signal_length:
                raise ConfigError(f"text action has {len(action)} characters (max_signal_length="
                                  f"{self._max_signal_length})")
            return action
        except ConfigError as e:
            raise ConfigError(f"sub-env {i}: {e}") from None


def _batch(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """N info dicts with the same keys as one dict of arrays plus all-True ``_key`` masks.

    The same arrays as :meth:`gymnasium.vector.VectorEnv._add_info` builds
    one sub-env at a time (an array's dtype follows the first sub-env's value:
    ``int``/``float``/``bool``/numpy scalar types, else ``object``), in one pass.
    """
    n = len(infos)
    out: dict[str, Any] = {}
    for key, first in infos[0].items():
        values = [info[key] for info in infos]
        if type(first) in (int, float, bool) or issubclass(type(first), np.number):
            array = np.array(values, dtype=type(first))
        else:
            array = np.empty(n, dtype=object)
            array[:] = values
        out[key] = array
        out[f"_{key}"] = np.ones(n, dtype=np.bool_)
    return out


class BatchPlayer:
    """Play given items with given actions through vector views of one env: one Receiver batch per call.

    For batch consumers whose batch size varies (the TRL reward, ``bpa-gym
    eval``, oracle tables): a call with B pairs resets a B-env view
    (:meth:`BayesPersuasionLLMVectorEnv.from_env`, cached per B) on the items
    (``options={"items": items}``) and steps it once.

    Args:
        env: A bpa_gym LLM env (wrapped or not).
        signals: The views' signal mode (see :meth:`BayesPersuasionLLMVectorEnv.from_env`).
        max_signal_length: Longest text action of a text view (``None``: no limit).

    Example:
        >>> import gymnasium as gym, bpa_gym
        >>> env = gym.make("BayesPersuasion-Identity-v0")
        >>> play = BatchPlayer(env)
        >>> items = env.unwrapped.items[:3]
        >>> [o.reward for o in play(items, [env.unwrapped.task.answer_key[it.meta["topic"]] for it in items])]
        [1.0, 1.0, 1.0]
    """

    def __init__(self, env: gym.Env, signals: Literal["discrete", "text"] | None = None, *,
                 max_signal_length: int | None = None) -> None:
        self.env = env
        self.signals = signals
        self.max_signal_length = max_signal_length
        self._views: dict[int, BayesPersuasionLLMVectorEnv] = {}
        self.view(1)  # checks the arguments now

    def view(self, n: int) -> BayesPersuasionLLMVectorEnv:
        """The cached ``n``-env view."""
        if n not in self._views:
            self._views[n] = BayesPersuasionLLMVectorEnv.from_env(self.env, n, self.signals,
                                                                  max_signal_length=self.max_signal_length)
        return self._views[n]

    def __call__(self, items: Sequence[Item], actions: Sequence[Any]) -> list:
        """The :class:`~bpa_gym.types.Outcome` of each (item, action) pair, from one Receiver call."""
        if len(items) != len(actions):
            raise ConfigError(f"BatchPlayer got {len(items)} items but {len(actions)} actions; pass one per item")
        if not len(items):
            return []
        venv = self.view(len(items))
        venv.reset(options={"items": list(items)})
        venv.step(list(actions))
        return list(venv.last_outcomes)


class IdentityVectorEnv(BayesPersuasionLLMVectorEnv):
    """Vector env of ``BayesPersuasion-Identity-v0`` (see :class:`~bpa_gym.envs.identity.IdentityEnv`)."""

    single_env_class = IdentityEnv


def _generator(state: dict[str, Any]) -> np.random.Generator:
    """A numpy Generator continuing a saved ``bit_generator.state`` (PCG64, MT19937, ...)."""
    kind = state["bit_generator"] if isinstance(state, dict) else None
    if kind not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
        raise ValueError(f"unknown bit generator {kind!r:.40}")
    bit_generator = getattr(np.random, kind)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _printable():
    from bpa_gym.spaces import printable_unicode_charset

    return printable_unicode_charset()
