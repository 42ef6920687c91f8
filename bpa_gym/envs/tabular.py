"""Gymnasium adapter on :mod:`bpa_gym.persuasion`: tabular persuasion games with an exact LP oracle.

Registered as ``BayesPersuasion-Tabular-v0`` (a given or random game) and
``BayesPersuasion-Prosecutor-v0``.  See :class:`TabularPersuasionEnv`.
"""

from __future__ import annotations

import bisect
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bpa_gym.errors import ConfigError
from bpa_gym.oracles import ExactLPOracle
from bpa_gym.persuasion import TabularGame

_VALID_KWARGS = (
    "action", "game", "prior", "receiver_utility", "sender_utility", "game_seed", "n_states", "n_actions",
    "num_signals", "episode_length", "pseudo_count", "render_mode",
)


class TabularPersuasionEnv(gym.Env):
    """Repeated Bayesian persuasion on a finite game; the agent is the Sender.

    **The game.**  Either ``game`` (a :class:`~bpa_gym.persuasion.TabularGame`
    or ``"prosecutor"``), or all three of ``prior``, ``receiver_utility``,
    ``sender_utility``, or a random game ``TabularGame.random(game_seed,
    n_states, n_actions)`` (defaults 0, 3, 3).

    **Action modes** (``action=``):

    * ``"scheme"``: each step the agent commits to a scheme, a
      ``Box(0, 1, (n_states, num_signals), float32)``; rows are normalised, and
      a row with a negative or non-finite entry or zero sum raises
      :class:`~bpa_gym.errors.ConfigError` (never silently fixed).  The env
      draws ``ω ~ prior`` and ``σ ~ π(·|ω)``; the Bayesian Receiver, who knows
      the prior and the committed scheme, best-responds to ``μ(·|σ)``
      (Sender-favoured ties); reward ``= u_s(ω, a)``.  The observation is the
      constant ``0`` of ``Discrete(1)``: the scheme is committed before the
      state is seen; the realised state is reported in ``info["state"]``
      (learners of the prior read it there).
    * ``"signal"``: the agent observes the state (``Discrete(n_states)``) and
      sends a signal (``Discrete(num_signals)``).  The Receiver does not see
      the agent's policy; it learns it from the (state, signal) pairs of all
      previous steps: ``π̂(σ|ω) = (n(ω, σ) + α) / (n(ω) + α m)`` with
      pseudo-count ``α = pseudo_count`` (default 1, a uniform Laplace prior),
      forms ``μ̂(ω|σ) ∝ prior(ω) π̂(σ|ω)`` with the known prior, and
      best-responds (Sender-favoured ties).  The current pair is added to the
      counts after the Receiver acts.  So myopic lying ("always recommend
      convict") stops working: the signal becomes uninformative.

    **Episodes.**  An episode is ``episode_length`` rounds (default 1); the
    last one returns ``terminated=True``.  The Receiver's memory (the counts)
    persists across :meth:`reset` calls, so learning runs over many episodes;
    it is cleared by ``reset(seed=...)`` (which also re-seeds, so a seeded
    reset is reproducible) or ``reset(options={"clear_history": True})``.

    **Step info** (stable keys, both modes):

    * ``state`` (int): the realised state ``ω``.
    * ``signal`` (int): the signal sent ``σ``.
    * ``receiver_action`` (int): the Receiver's action ``a``.
    * ``posterior`` (float64 array, ``(n_states,)``): the Receiver's posterior
      after ``σ`` (the empirical one in signal mode).
    * ``expected_reward`` (float): the expected Sender utility of what the
      agent chose: in scheme mode the scheme's value
      ``game.sender_value(action)``; in signal mode ``u_s(ω, a_t(σ))`` (the
      Receiver's response is deterministic given state, signal and history).

    Attributes:
        game: The :class:`~bpa_gym.persuasion.TabularGame`.
        action_mode: ``"scheme"`` or ``"signal"``.
        num_signals: ``m``, the number of signals (default ``n_actions``; may
            be larger, never smaller).  The regret bound uses it.

    Example:
        >>> env = TabularPersuasionEnv(game="prosecutor", action="signal")
        >>> obs, _ = env.reset(seed=0)
        >>> obs, r, term, trunc, info = env.step(1)  # recommend "convict"
        >>> sorted(info), term, env.num_signals
        (['expected_reward', 'posterior', 'receiver_action', 'signal', 'state'], True, 2)
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        *,
        action: str = "scheme",
        game: TabularGame | str | None = None,
        prior=None,
        receiver_utility=None,
        sender_utility=None,
        game_seed: int | None = None,
        n_states: int | None = None,
        n_actions: int | None = None,
        num_signals: int | None = None,
        episode_length: int = 1,
        pseudo_count: float = 1.0,
        render_mode: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(
                f"unknown keyword(s) {sorted(unknown)} for the tabular persuasion env; valid keywords: "
                f"{', '.join(_VALID_KWARGS)}"
            )
        if action not in ("scheme", "signal"):
            raise ConfigError(f"action must be 'scheme' (commit to a scheme) or 'signal' (send a signal), got {action!r}")
        self.game = _build_game(game, prior, receiver_utility, sender_utility, game_seed, n_states, n_actions)
        self.action_mode = action
        m = self.game.n_actions if num_signals is None else num_signals
        if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < self.game.n_actions:
            raise ConfigError(
                f"num_signals must be an integer >= n_actions = {self.game.n_actions} (the revelation principle "
                f"needs one signal per action), got {num_signals!r}"
            )
        self.num_signals = int(m)
        if not isinstance(episode_length, (int, np.integer)) or isinstance(episode_length, bool) or episode_length < 1:
            raise ConfigError(f"episode_length must be an integer >= 1, got {episode_length!r}")
        self.episode_length = int(episode_length)
        if not (isinstance(pseudo_count, (int, float, np.floating)) and np.isfinite(pseudo_count) and pseudo_count > 0):
            raise ConfigError(f"pseudo_count must be a finite number > 0 (1 = Laplace), got {pseudo_count!r}")
        self.pseudo_count = float(pseudo_count)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode

        S, M = self.game.n_states, self.num_signals
        if action == "scheme":
            self.observation_space = spaces.Discrete(1)
            self.action_space = spaces.Box(0.0, 1.0, shape=(S, M), dtype=np.float32)
        else:
            self.observation_space = spaces.Discrete(S)
            self.action_space = spaces.Discrete(M)
        self._cum_prior = np.cumsum(self.game.prior).tolist()
        self._cum_prior[-1] = 1.0
        self._counts = np.zeros((S, M))
        self._n_state = np.zeros(S)
        self._state: int | None = None
        self._round = 0
        self._needs_reset = True
        self._last: dict[str, Any] | None = None

    # ---------------------------------------------------------------- gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``seed`` or ``options={"clear_history": True}`` clears the Receiver's memory."""
        super().reset(seed=seed)
        options = dict(options or {})
        bad = set(options) - {"clear_history"}
        if bad:
            raise ConfigError(f"unknown reset option(s) {sorted(bad)}; the only option is 'clear_history'")
        if seed is not None or options.get("clear_history", False):
            self._counts[:] = 0.0
            self._n_state[:] = 0.0
        self._round = 0
        self._needs_reset = False
        return self._observe(), {}

    def step(self, action):
        """Play one round (see the class docstring)."""
        if self._needs_reset:
            raise ConfigError("step() called before reset() or after the episode ended; call env.reset() first")
        g = self.game
        if self.action_mode == "scheme":
            if np.shape(action) != (g.n_states, self.num_signals):
                raise ConfigError(
                    f"a scheme action must have shape ({g.n_states}, {self.num_signals}) (row ω = π(·|ω)), "
                    f"got shape {np.shape(action)}"
                )
            ev = g.evaluate(action)
            state = self._draw_state()
            row = ev.scheme[state].tolist()
            u, signal, acc = self.np_random.random(), 0, row[0]
            while signal < self.num_signals - 1 and (u >= acc or row[signal] == 0.0):
                signal += 1
                acc += row[signal]
            if row[signal] == 0.0:  # u beyond the rounded total: take the last signal of positive probability
                signal = max(i for i, x in enumerate(row) if x > 0.0)
            receiver_action = int(ev.actions[signal])
            posterior = ev.posteriors[signal].copy()
            reward = float(g.sender_utility[state, receiver_action])
            expected = ev.value
        else:
            signal = _as_signal(action, self.num_signals)
            state = self._state
            a = self.pseudo_count
            lik = (self._counts[:, signal] + a) / (self._n_state + a * self.num_signals)
            joint = g.prior * lik
            posterior = joint / joint.sum()
            receiver_action = int(g.best_response(posterior))
            reward = float(g.sender_utility[state, receiver_action])
            expected = reward
            self._counts[state, signal] += 1.0
            self._n_state[state] += 1.0
        self._round += 1
        terminated = self._round >= self.episode_length
        if terminated:
            self._needs_reset = True
        obs = self._observe(draw=not terminated)
        info = {
            "state": int(state),
            "signal": int(signal),
            "receiver_action": receiver_action,
            "posterior": posterior,
            "expected_reward": float(expected),
        }
        self._last = info
        return obs, reward, terminated, False, info

    def render(self) -> str | None:
        """``"ansi"``: one line describing the last round."""
        if self.render_mode != "ansi":
            return None
        if self._last is None:
            return "no round played yet"
        i = self._last
        sn, an = self.game.state_names, self.game.action_names
        st = sn[i["state"]] if sn else i["state"]
        act = an[i["receiver_action"]] if an else i["receiver_action"]
        return (f"state={st} signal={i['signal']} receiver_action={act} "
                f"posterior={np.round(i['posterior'], 3).tolist()} expected_reward={i['expected_reward']:.4f}")

    # ---------------------------------------------------------------- regret

    def regret_oracle(self) -> ExactLPOracle:
        """The exact LP oracle used by :class:`~bpa_gym.wrappers.regret.RegretWrapper`."""
        return ExactLPOracle(self.game, mode=self.action_mode, num_signals=self.num_signals)

    @property
    def receiver_counts(self) -> np.ndarray:
        """Signal mode: the Receiver's counts ``n(ω, σ)`` since the last history clear (a copy)."""
        return self._counts.copy()

    # ---------------------------------------------------------------- helpers

    def _draw_state(self) -> int:
        return min(bisect.bisect_right(self._cum_prior, self.np_random.random()), self.game.n_states - 1)

    def _observe(self, draw: bool = True):
        if self.action_mode == "scheme":
            return 0
        if draw or self._state is None:
            self._state = self._draw_state()
        return self._state


def _as_signal(action, m: int) -> int:
    try:
        sig = int(action)
        ok = np.ndim(action) == 0 and sig == action
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= sig < m:
        raise ConfigError(f"a signal action must be an integer in 0..{m - 1}, got {action!r}")
    return sig


def _build_game(game, prior, receiver_utility, sender_utility, game_seed, n_states, n_actions) -> TabularGame:
    explicit = [x is not None for x in (prior, receiver_utility, sender_utility)]
    random_kw = [k for k, v in (("game_seed", game_seed), ("n_states", n_states), ("n_actions", n_actions))
                 if v is not None]
    if game is not None:
        if any(explicit) or random_kw:
            extra = [k for k, e in zip(("prior", "receiver_utility", "sender_utility"), explicit) if e] + random_kw
            raise ConfigError(f"pass either game= or the game's arrays/random-game keywords, not both (got game and {extra})")
        if isinstance(game, TabularGame):
            return game
        if game == "prosecutor":
            return TabularGame.prosecutor()
        raise ConfigError(f"game must be a bpa_gym.persuasion.TabularGame or 'prosecutor', got {game!r}")
    if any(explicit):
        if not all(explicit):
            missing = [k for k, e in zip(("prior", "receiver_utility", "sender_utility"), explicit) if not e]
            raise ConfigError(f"an explicit game needs prior, receiver_utility and sender_utility; missing {missing}")
        if random_kw:
            raise ConfigError(f"{random_kw} only apply to random games; drop them or drop the explicit arrays")
        return TabularGame(prior, receiver_utility, sender_utility)
    return TabularGame.random(0 if game_seed is None else game_seed, n_states or 3, n_actions or 3)
