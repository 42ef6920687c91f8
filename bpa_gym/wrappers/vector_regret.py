"""Pseudo-regret of a vector env: every sub-env play counts, as if played one after another.

:class:`VectorRegretWrapper` is :class:`~bpa_gym.wrappers.regret.RegretWrapper`
for :class:`gymnasium.vector.VectorEnv`: it uses the same oracle objects
(``regret_oracle()`` of the env, e.g.
:class:`~bpa_gym.oracle_table.OracleTableRegret`, or an ``oracle=``) and the
same bound (:func:`~bpa_gym.wrappers.regret.regret_bound`).  Each vector step
adds ``info["regret"]``:

* ``instant``: float array of shape ``(N,)``, the oracle's pseudo-regret of
  each sub-env's play of this step (``0.0`` where a sub-env did not play:
  a ``NEXT_STEP`` autoreset step);
* ``played``: bool array ``(N,)``, which sub-envs played;
* ``t``: total plays so far over all sub-envs (N per step in ``SAME_STEP``);
* ``cumulative``: the sum of every ``instant`` so far, ``R_t``;
* ``bound``: ``c · m^{3/2} · sqrt(t · log(max(t, 2)))``; ``ratio``: ``cumulative / bound``.

The step info of each play is read where the autoreset mode puts it:
``info["final_info"]`` in ``SAME_STEP`` (the native LLM vector env's mode),
the top-level info otherwise; in ``NEXT_STEP`` the reset steps that follow an
episode's end are not plays.

Example:
    >>> import gymnasium as gym, bpa_gym
    >>> venv = VectorRegretWrapper(gym.make_vec("BayesPersuasion-Identity-v0", num_envs=4,
    ...                                         vectorization_mode="vector_entry_point"))
    >>> _ = venv.reset(seed=0)
    >>> key = venv.unwrapped.task.answer_key
    >>> best = [key[it.meta["topic"]] for it in venv.unwrapped.current_items]
    >>> info = venv.step(best)[-1]
    >>> info["regret"]["t"], info["regret"]["cumulative"], info["regret"]["instant"].tolist()
    (4, 0.0, [0.0, 0.0, 0.0, 0.0])
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import iterate

from bpa_gym.common.validation import Arguments, PositiveFloat, PositiveInt, check
from bpa_gym.errors import ConfigError, OracleUnavailableError
from bpa_gym.oracles import RegretOracle
from bpa_gym.wrappers.regret import TB_TAGS, RegretLog, regret_bound

__all__ = ["VECTOR_TB_TAGS", "VectorRegretWrapper"]

#: TensorBoard scalar tags written with ``log_dir`` (the step is ``t``, the number of plays).
#: The same tags as :data:`~bpa_gym.wrappers.regret.TB_TAGS` (one :class:`~bpa_gym.wrappers.regret.RegretLog` writes both).
VECTOR_TB_TAGS: tuple[str, ...] = TB_TAGS


class _Args(Arguments):
    bound_constant: PositiveFloat = 1.0
    log_every: PositiveInt = 100


class VectorRegretWrapper(VectorWrapper):
    """Adds pseudo-regret over all sub-env plays to ``info["regret"]``; optionally logs it to TensorBoard.

    Args:
        env: A vector env.  Its oracle comes from ``env.unwrapped.regret_oracle()``
            (the native LLM vector env) or from the first sub-env of a
            :class:`~gymnasium.vector.SyncVectorEnv`, unless ``oracle`` is given.
        bound_constant: ``c`` of the bound (> 0).
        log_dir: If set, the scalars of :data:`VECTOR_TB_TAGS` are written
            there with ``torch.utils.tensorboard.SummaryWriter`` (needs
            ``torch`` and ``tensorboard``), with ``t`` as the step: on the first
            step, then whenever ``t`` passes a multiple of ``log_every``, and
            on :meth:`close`.
        oracle: A :class:`~bpa_gym.oracles.RegretOracle` to use instead.
        log_every: Log about every this many plays.

    Raises:
        OracleUnavailableError: no oracle could be found and none was given.
    """

    def __init__(self, env: VectorEnv, bound_constant: float = 1.0, log_dir: str | os.PathLike | None = None,
                 oracle: RegretOracle | None = None, log_every: int = 100) -> None:
        super().__init__(env)
        args = check(_Args, "VectorRegretWrapper", bound_constant=bound_constant, log_every=log_every)
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise ConfigError(f"VectorRegretWrapper: invalid argument\n  - log_dir = {log_dir!r:.60}: must be a "
                              "folder path or None")
        if oracle is None:
            oracle = _oracle_of(env)
        if not isinstance(oracle, RegretOracle):
            raise ConfigError(f"oracle {oracle!r:.80} does not implement bpa_gym.oracles.RegretOracle (needs name, "
                              "num_signals, instant_regret(action, info), describe())")
        self.oracle = oracle
        self.bound_constant = float(args.bound_constant)
        self.log_every = int(args.log_every)
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self._tb = None if log_dir is None else RegretLog(log_dir)
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.reset_regret()

    @property
    def oracle_name(self) -> str:
        return self.oracle.name

    @property
    def num_signals(self) -> int:
        """``m`` used in the bound."""
        return int(self.oracle.num_signals)

    def reset_regret(self) -> None:
        """Restart the regret count (``t = 0``); the env itself is untouched."""
        self.t = 0
        self.cumulative_regret = 0.0
        self.reward_sum = 0.0
        self._instant = np.zeros(self.num_envs)
        self._played = np.zeros(self.num_envs, dtype=np.bool_)
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)

    def regret_info(self) -> dict[str, Any]:
        """The current ``info["regret"]`` (``instant`` and ``played`` are of the last step)."""
        bound = regret_bound(max(self.t, 1), self.num_signals, self.bound_constant)
        return {"t": self.t, "instant": self._instant.copy(), "played": self._played.copy(),
                "cumulative": self.cumulative_regret, "bound": bound, "ratio": self.cumulative_regret / bound}

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        mask = None if not options or "reset_mask" not in options else np.asarray(options["reset_mask"])
        if mask is None:
            self._autoreset[:] = False
        else:
            self._autoreset[mask] = False
        return obs, info

    def step(self, actions: Any):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        # NEXT_STEP: a sub-env whose episode ended last step only resets now (no play); otherwise all play.
        played = ~self._autoreset if self.autoreset_mode == AutoresetMode.NEXT_STEP \
            else np.ones(self.num_envs, dtype=np.bool_)
        # SAME_STEP: an ended episode's step info is in final_info (the top level holds the next reset's info).
        ended = np.asarray(info.get("_final_info", np.zeros(self.num_envs, dtype=np.bool_))) \
            if self.autoreset_mode == AutoresetMode.SAME_STEP else np.zeros(self.num_envs, dtype=np.bool_)
        instant = np.zeros(self.num_envs)
        for i, action in enumerate(iterate(self.env.action_space, actions)):
            if played[i]:
                source = info["final_info"] if ended[i] else info
                instant[i] = float(self.oracle.instant_regret(action, _sub_info(source, i)))
        self._autoreset = np.asarray(terminated) | np.asarray(truncated)
        self._instant, self._played = instant, played
        before = self.t
        self.t += int(played.sum())
        self.cumulative_regret += float(instant.sum())
        self.reward_sum += float(np.asarray(rewards, dtype=np.float64)[played].sum())
        info = dict(info)
        info["regret"] = self.regret_info()
        if self._tb is not None and self.t > 0 and (before == 0 or self.t // self.log_every > before // self.log_every):
            self._tb.write(self.t, info["regret"], self.reward_sum)
        return obs, rewards, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        """Log the last plays (if not yet logged), flush and close the writer, close the env."""
        if self._tb is not None:
            if self.t > self._tb.last_step:
                self._tb.write(self.t, self.regret_info(), self.reward_sum)
            self._tb.close()
            self._tb = None
        super().close(**kwargs)


def _sub_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s entries of a vector info dict (the keys its ``_key`` mask marks present)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        out[key] = _sub_info(value, i) if isinstance(value, dict) else value[i]
    return out


def _oracle_of(env: VectorEnv) -> RegretOracle:
    base = env.unwrapped
    holder = base if callable(getattr(base, "regret_oracle", None)) else None
    if holder is None and getattr(base, "envs", None):  # SyncVectorEnv: all sub-envs play the same game
        first = base.envs[0].unwrapped
        holder = first if callable(getattr(first, "regret_oracle", None)) else None
    if holder is None:
        raise OracleUnavailableError(
            f"{type(base).__name__} has no regret oracle: use the native vector env of an env with one "
            "(gym.make_vec(ID, N, vectorization_mode='vector_entry_point')), a SyncVectorEnv of such envs, or pass "
            "oracle=... implementing bpa_gym.oracles.RegretOracle")
    try:
        return holder.regret_oracle()
    except Exception as exc:
        raise OracleUnavailableError(f"{type(holder).__name__}.regret_oracle() failed: {exc}") from exc
