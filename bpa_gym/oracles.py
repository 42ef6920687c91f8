"""Regret oracles: what :class:`~bpa_gym.wrappers.regret.RegretWrapper` asks for the optimum.

A regret oracle knows the best achievable expected reward and turns each step
into an *instant pseudo-regret*: the optimum's expected reward minus the
expected reward of what the agent chose (never the sampled reward).  The
protocol is deliberately small so an oracle for any env (an exact LP for the
tabular games here; a precomputed table for the LLM envs) fits it.

An env offers its oracle through a method ``regret_oracle()`` on the
unwrapped env; :class:`RegretWrapper` calls it unless given ``oracle=``.

Example:
    >>> from bpa_gym.persuasion import TabularGame
    >>> oracle = ExactLPOracle(TabularGame.prosecutor(), mode="scheme")
    >>> isinstance(oracle, RegretOracle), oracle.num_signals
    (True, 2)
    >>> round(oracle.instant_regret(None, {"expected_reward": 0.3}), 12)  # full information
    0.3
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Protocol, runtime_checkable

from pydantic import Field

from bpa_gym.common.validation import Arguments, PositiveInt, check
from bpa_gym.errors import ConfigError
from bpa_gym.persuasion import TabularGame


@runtime_checkable
class RegretOracle(Protocol):
    """What a regret oracle provides.

    Attributes:
        name: Short human-readable name, e.g. ``"exact LP optimum"``.
        num_signals: ``m``, the number of signals the agent chooses among; the
            regret bound is ``c * m**1.5 * sqrt(T log T)``.
    """

    name: str
    num_signals: int

    def instant_regret(self, action: Any, info: Mapping[str, Any]) -> float:
        """Pseudo-regret of one step, called after ``env.step(action)`` with its ``info``."""
        ...

    def describe(self) -> str:
        """One paragraph: what the optimum is and how the instant regret is computed."""
        ...


Mode = Literal["scheme", "signal"]


class _OracleArgs(Arguments):
    mode: Mode = Field("scheme", description="'scheme' or 'signal'")
    num_signals: PositiveInt | None = Field(None, description="an integer >= n_actions or None")


class ExactLPOracle:
    """The exact optimum of a :class:`~bpa_gym.persuasion.TabularGame`, solved by LP.

    Instant pseudo-regret, by action mode of the tabular env:

    * ``"scheme"``: ``V* − V(π_t)``, where ``V(π_t)`` is the sender value of
      the committed scheme (``info["expected_reward"]``, computed by the env as
      ``game.sender_value(action)``; recomputed from ``action`` if absent).
    * ``"signal"``: ``V*(ω_t) − u_s(ω_t, a_t(σ_t))``, where
      ``V*(ω) = Σ_σ π*(σ|ω) u_s(ω, a*(σ))`` is the optimal scheme's value
      conditional on the observed state (its prior mean is ``V*``) and
      ``a_t(σ_t)`` is the learning Receiver's current best response to the
      signal sent (``info["expected_reward"]`` is that ``u_s``; deterministic
      given the state, signal and history).  Single steps can be negative
      (e.g. a conviction of an innocent); the sum is the regret.

    Args:
        game: The game.
        mode: ``"scheme"`` or ``"signal"``.
        num_signals: ``m``; defaults to ``game.n_actions``.
    """

    name = "exact LP optimum"

    def __init__(self, game: TabularGame, mode: Mode = "scheme", num_signals: int | None = None) -> None:
        args = check(_OracleArgs, "ExactLPOracle", mode=mode, num_signals=num_signals)
        if not isinstance(game, TabularGame):
            raise ConfigError(f"ExactLPOracle needs a bpa_gym.persuasion.TabularGame, got {game!r}")
        self.game = game
        self.mode = args.mode
        self.num_signals = game.n_actions if args.num_signals is None else args.num_signals
        if self.num_signals < game.n_actions:
            raise ConfigError(f"ExactLPOracle: num_signals must be >= n_actions = {game.n_actions}, got {num_signals!r}")
        self.optimum = game.optimum
        self.value = self.optimum.value
        self._state_values = self.optimum.state_values

    def instant_regret(self, action: Any, info: Mapping[str, Any]) -> float:
        """See the class docstring."""
        if self.mode == "scheme":
            got = info.get("expected_reward")
            if got is None:
                got = self.game.sender_value(action)
            return self.value - float(got)
        try:
            state, got = int(info["state"]), float(info["expected_reward"])
        except KeyError as exc:
            raise ConfigError(
                f"signal-mode regret needs info[{exc.args[0]!r}]; wrap a bpa_gym tabular env (its step info has it)"
            ) from None
        return float(self._state_values[state]) - got

    def describe(self) -> str:
        """What the optimum is and how regret is computed."""
        what = (
            "V* - sender_value(scheme) per step"
            if self.mode == "scheme"
            else "V*(state) - u_s(state, receiver's response to the signal) per step, V*(state) = the optimal "
            "scheme's value given the state"
        )
        return (
            f"{self.name}: V* = {self.value:.6g} (LP over schemes with {self.game.n_actions} recommendation "
            f"signals, Sender-favoured ties); pseudo-regret = {what}; m = {self.num_signals} signals"
        )

    def __repr__(self) -> str:
        return f"ExactLPOracle(mode={self.mode!r}, value={self.value:.6g}, num_signals={self.num_signals})"

