"""Pseudo-regret tracking (and TensorBoard logging) for any env with a regret oracle.

:class:`RegretWrapper` adds ``info["regret"]`` to every step:

* ``t``: steps since the wrapper was created (or :meth:`RegretWrapper.reset_regret`),
  counted across episodes;
* ``instant``: the oracle's pseudo-regret of this step (optimum's expected
  reward minus the expected reward of what the agent chose; never the sampled
  reward — see :mod:`bpa_gym.oracles`);
* ``cumulative``: the sum of ``instant`` so far, ``R_t``;
* ``bound``: ``c · m^{3/2} · sqrt(t · log(max(t, 2)))`` with ``c =
  bound_constant`` and ``m = oracle.num_signals`` (the number of signals of the
  env: ``n_actions`` of a tabular game by default).  ``log(max(t, 2))`` keeps
  the bound positive at ``t = 1``;
* ``ratio``: ``cumulative / bound``.

Example:
    >>> import numpy as np
    >>> from bpa_gym.envs.tabular import TabularPersuasionEnv
    >>> env = RegretWrapper(TabularPersuasionEnv(game="prosecutor", action="scheme"))
    >>> _ = env.reset(seed=0)
    >>> no_info = np.array([[1.0, 0.0], [1.0, 0.0]])  # always "acquit": V = 0
    >>> _, _, _, _, info = env.step(no_info)
    >>> info["regret"]["instant"], info["regret"]["cumulative"], env.oracle_name
    (0.6, 0.6, 'exact LP optimum')
"""

from __future__ import annotations

import math
import os

import gymnasium as gym

from bpa_gym.common.validation import Arguments, PositiveFloat, PositiveInt, check
from bpa_gym.errors import ConfigError, OracleUnavailableError
from bpa_gym.oracles import RegretOracle

#: The four TensorBoard scalar tags written with ``log_dir``.
TB_TAGS: tuple[str, ...] = ("regret/cumulative", "regret/bound", "regret/ratio", "reward/mean")


class RegretLog:
    """The TensorBoard scalars of a regret count (:data:`TB_TAGS`), written by ``SummaryWriter``.

    Shared by :class:`RegretWrapper` and
    :class:`~bpa_gym.wrappers.vector_regret.VectorRegretWrapper`.

    Args:
        log_dir: The TensorBoard folder.

    Attributes:
        last_step: The step (play count) of the last write (0 before any).
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = os.fspath(log_dir)
        self._writer = SummaryWriter(self.log_dir)
        self.last_step = 0

    def write(self, t: int, regret: dict, reward_sum: float) -> None:
        """Write ``regret``'s cumulative, bound and ratio and the mean reward at step ``t``."""
        values = (regret["cumulative"], regret["bound"], regret["ratio"], reward_sum / max(t, 1))
        for tag, value in zip(TB_TAGS, values):
            self._writer.add_scalar(tag, value, global_step=t)
        self.last_step = t

    def close(self) -> None:
        """Flush and close the writer."""
        self._writer.flush()
        self._writer.close()

_ORACLE_ENVS = "BayesPersuasion-Tabular-v0 and BayesPersuasion-Prosecutor-v0 (exact LP)"


class _RegretWrapperArgs(Arguments):
    bound_constant: PositiveFloat = 1.0
    log_every: PositiveInt = 100


def regret_bound(t: int, num_signals: int, bound_constant: float = 1.0) -> float:
    """``c · m^{3/2} · sqrt(t · log(max(t, 2)))``.

    Example:
        >>> round(regret_bound(100, 2), 4)  # 2**1.5 * sqrt(100 * log 100)
        60.6971
    """
    return bound_constant * num_signals ** 1.5 * math.sqrt(t * math.log(max(t, 2)))


class RegretWrapper(gym.Wrapper):
    """Adds pseudo-regret to ``info["regret"]``; optionally logs it to TensorBoard.

    Args:
        env: The env.  Its oracle comes from ``env.unwrapped.regret_oracle()``
            unless ``oracle`` is given.
        bound_constant: ``c`` of the bound ``c · m^{3/2} · sqrt(T log T)`` (> 0).
        log_dir: If set, TensorBoard scalars ``regret/cumulative``,
            ``regret/bound``, ``regret/ratio`` and ``reward/mean`` (running mean
            of the sampled reward) are written there by
            ``torch.utils.tensorboard.SummaryWriter``, with the step count as
            the step.  Flushed on :meth:`close`.
        oracle: A :class:`~bpa_gym.oracles.RegretOracle` to use instead.
        log_every: Log every this many steps, and also at every power of two
            (early points for log-log plots) and on close.  Default 100 keeps
            logging well under the cost of the steps.

    Raises:
        OracleUnavailableError: the env has no ``regret_oracle()`` (or it
            failed) and no ``oracle`` was given.
    """

    def __init__(
        self,
        env: gym.Env,
        bound_constant: float = 1.0,
        log_dir: str | os.PathLike | None = None,
        oracle: RegretOracle | None = None,
        log_every: int = 100,
    ) -> None:
        super().__init__(env)
        args = check(_RegretWrapperArgs, "RegretWrapper", bound_constant=bound_constant, log_every=log_every)
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise ConfigError(f"RegretWrapper: log_dir must be a path (str or os.PathLike) or None, got {log_dir!r}")
        if oracle is None:
            oracle = _oracle_of(env)
        if not isinstance(oracle, RegretOracle):
            raise ConfigError(
                f"oracle {oracle!r} does not implement bpa_gym.oracles.RegretOracle (needs name, num_signals, "
                "instant_regret(action, info), describe())"
            )
        self.oracle = oracle
        self.bound_constant = args.bound_constant
        self.log_every = args.log_every
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self._tb = None if log_dir is None else RegretLog(log_dir)
        self.reset_regret()

    @property
    def oracle_name(self) -> str:
        """The oracle's ``name`` (e.g. ``"exact LP optimum"``)."""
        return self.oracle.name

    @property
    def num_signals(self) -> int:
        """``m`` used in the bound."""
        return int(self.oracle.num_signals)

    def reset_regret(self) -> None:
        """Restart the regret count (``t = 0``); the env itself is untouched."""
        self.t = 0
        self._instant = 0.0
        self.cumulative_regret = 0.0
        self.reward_sum = 0.0

    def regret_info(self) -> dict[str, float]:
        """The current ``info["regret"]`` values (``instant`` is of the last step)."""
        bound = regret_bound(max(self.t, 1), self.num_signals, self.bound_constant)
        return {
            "t": self.t,
            "instant": self._instant,
            "cumulative": self.cumulative_regret,
            "bound": bound,
            "ratio": self.cumulative_regret / bound,
        }

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._instant = float(self.oracle.instant_regret(action, info))
        self.t += 1
        self.cumulative_regret += self._instant
        self.reward_sum += float(reward)
        info = dict(info)
        info["regret"] = self.regret_info()
        if self._tb is not None and (self.t % self.log_every == 0 or self.t & (self.t - 1) == 0):
            self._tb.write(self.t, info["regret"], self.reward_sum)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Log the last step (if not yet logged), flush and close the writer, close the env."""
        if self._tb is not None:
            if self.t > self._tb.last_step:
                self._tb.write(self.t, self.regret_info(), self.reward_sum)
            self._tb.close()
            self._tb = None
        super().close()


def _oracle_of(env: gym.Env) -> RegretOracle:
    unwrapped = env.unwrapped
    fn = getattr(unwrapped, "regret_oracle", None)
    name = type(unwrapped).__name__
    if not callable(fn):
        raise OracleUnavailableError(
            f"{name} has no regret oracle (no regret_oracle() method). Environments with one: {_ORACLE_ENVS}; "
            "or pass RegretWrapper(env, oracle=...) with an object implementing bpa_gym.oracles.RegretOracle"
        )
    try:
        return fn()
    except Exception as exc:
        raise OracleUnavailableError(
            f"{name}.regret_oracle() failed: {exc}. Environments with an oracle: {_ORACLE_ENVS}; "
            "or pass oracle=... implementing bpa_gym.oracles.RegretOracle"
        ) from exc
