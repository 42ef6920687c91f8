"""Gymnasium adapter on :mod:`bpa_gym.persuasion`: tabular persuasion games with an exact LP oracle.

Registered as ``BayesPersuasion-Tabular-v0`` (a given or random game) and
``BayesPersuasion-Prosecutor-v0``.  See :class:`TabularPersuasionEnv`.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pydantic import Field

from bpa_gym.common.sampling import sample_categorical
from bpa_gym.common.validation import Arguments, Bool, Int, PositiveFloat, PositiveInt, Seed, check, check_value
from bpa_gym.errors import ConfigError
from bpa_gym.oracles import ExactLPOracle
from bpa_gym.persuasion import TabularGame, _numpy_sum, as_float_array, normalize_scheme, value_of_persuasion

#: A random game is "trivial" when the value of persuasion (V* minus the no-information value) is below this
#: fraction of the Sender's utility range: there is almost nothing to learn, and the env warns.
TRIVIAL_PERSUASION_GAIN: float = 0.01

_AtLeastTwo = Annotated[Int, Field(ge=2)]
_INF = float("inf")


class TabularEnvArgs(Arguments):
    """The keyword arguments of :class:`TabularPersuasionEnv` (checked in one place)."""

    action: Literal["scheme", "signal"] = Field("scheme", description="'scheme' or 'signal'")
    game: Any = None
    prior: Any = None
    receiver_utility: Any = None
    sender_utility: Any = None
    game_seed: Seed = None
    n_states: _AtLeastTwo | None = Field(None, description="an integer >= 2 (or None for 3)")
    n_actions: _AtLeastTwo | None = Field(None, description="an integer >= 2 (or None for 3)")
    num_signals: PositiveInt | None = Field(None, description="an integer >= n_actions (or None for n_actions)")
    episode_length: PositiveInt = 1
    pseudo_count: PositiveFloat = 1.0
    render_mode: Literal["ansi"] | None = Field(None, description="None or 'ansi'")


class TabularPersuasionEnv(gym.Env):
    """Repeated Bayesian persuasion on a finite game; the agent is the Sender.

    **The game.**  Either ``game`` (a :class:`~bpa_gym.persuasion.TabularGame`
    or ``"prosecutor"``), or all three of ``prior``, ``receiver_utility``,
    ``sender_utility``, or a random game ``TabularGame.random(game_seed,
    n_states, n_actions)`` (defaults 0, 3, 3).

    **Action modes** (``action=``):

    * ``"scheme"``: each step the agent commits to a scheme, a
      ``Box(0, 1, (n_states, num_signals), float32)``.  **Every action in the
      space is a valid scheme** (see :meth:`scheme_of`): rows are normalised
      and an all-zero row is the uniform row (that state reveals nothing), so
      standard agents (SB3 PPO/SAC) can act anywhere in the box.  Rows of any
      positive scale are accepted too; a negative or non-finite entry (outside
      the space) raises :class:`~bpa_gym.errors.ConfigError`.  The env
      draws ``ω ~ prior`` and ``σ ~ π(·|ω)``; the Bayesian Receiver, who knows
      the prior and the committed scheme, best-responds to ``μ(·|σ)``
      (Sender-favoured ties); reward ``= u_s(ω, a)``.  The observation is the
      constant ``0`` of ``Discrete(1)``: the scheme is committed before the
      state is seen; the realised state is reported in ``info["state"]``
      (learners of the prior read it there).
    * ``"signal"``: the agent observes the state (``Discrete(n_states)``) and
      sends a signal (``Discrete(num_signals)``).  The Receiver does not see
      the agent's policy; it *learns* it from the (state, signal) pairs of all
      previous steps: ``π̂(σ|ω) = (n(ω, σ) + α) / (n(ω) + α m)`` with
      pseudo-count ``α = pseudo_count`` (default 1, a uniform Laplace prior),
      forms ``μ̂(ω|σ) ∝ prior(ω) π̂(σ|ω)`` with the known prior, and
      best-responds (Sender-favoured ties).  The current pair is added to the
      counts after the Receiver acts.  So myopic lying ("always recommend
      convict") stops working: the signal becomes uninformative, and every
      myopic bandit earns the no-information value.  **Honest caveat:** the
      exact LP-optimal scheme leaves the Bayesian Receiver exactly
      indifferent, so this *estimating* Receiver sits on a knife edge and
      obeys or not depending on which side of the threshold its estimate
      wanders: sampling signals from the exact optimum earns anywhere from
      about 0 to ``V*`` depending on the seed (about half of ``V* = 0.6`` on
      average on the prosecutor).  ``V*`` is reachable only in the limit, with a margin that
      shrinks as the Receiver's estimate sharpens; the reference learner
      ``agents/persuasion_learner.py:MarginSignalLearner`` does exactly that
      and has sublinear regret (``benchmarks/regret_tabular.py``).

    **Value of persuasion.**  ``value_of_persuasion`` is ``V*`` minus the
    no-information value.  A random game where it is below
    :data:`TRIVIAL_PERSUASION_GAIN` of the Sender's utility range (e.g.
    ``game_seed=3``: 0) is trivial to "learn" and the env warns.

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
        value_of_persuasion: ``V*`` minus the no-information value.
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
        args = check(TabularEnvArgs, "tabular persuasion env", action=action, game=game, prior=prior,
                     receiver_utility=receiver_utility, sender_utility=sender_utility, game_seed=game_seed,
                     n_states=n_states, n_actions=n_actions, num_signals=num_signals,
                     episode_length=episode_length, pseudo_count=pseudo_count, render_mode=render_mode, **unknown)
        self.game = _build_game(args)
        self.action_mode = args.action
        m = self.game.n_actions if args.num_signals is None else args.num_signals
        if m < self.game.n_actions:
            raise ConfigError(
                f"num_signals must be an integer >= n_actions = {self.game.n_actions} (the revelation principle "
                f"needs one signal per action), got {num_signals!r}"
            )
        self.num_signals = int(m)
        self.episode_length = args.episode_length
        self.pseudo_count = args.pseudo_count
        self.render_mode = args.render_mode
        self.value_of_persuasion = value_of_persuasion(self.game)
        if args.game is None and args.prior is None:  # a random game: say when there is nothing to persuade
            spread = float(np.ptp(self.game.sender_utility)) or 1.0
            if self.value_of_persuasion < TRIVIAL_PERSUASION_GAIN * spread:
                warnings.warn(
                    f"random game game_seed={args.game_seed if args.game_seed is not None else 0} is trivial: the "
                    f"value of persuasion V* - V(no information) = {self.value_of_persuasion:.3g} (V* = "
                    f"{self.game.optimum.value:.4g}); every learner looks optimal here. Pick another game_seed.",
                    stacklevel=2,
                )

        S, M = self.game.n_states, self.num_signals
        if self.action_mode == "scheme":
            self.observation_space = spaces.Discrete(1)
            self.action_space = spaces.Box(0.0, 1.0, shape=(S, M), dtype=np.float32)
        else:
            self.observation_space = spaces.Discrete(S)
            self.action_space = spaces.Discrete(M)
        # the Receiver's memory n(ω, σ) and n(ω), as Python lists (read and updated once per step)
        self._counts: list[list[float]] = [[0.0] * M for _ in range(S)]
        self._n_state: list[float] = [0.0] * S
        self._state: int | None = None
        self._round = 0
        self._needs_reset = True
        self._last: dict[str, Any] | None = None

    # ---------------------------------------------------------------- gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``seed`` or ``options={"clear_history": True}`` clears the Receiver's memory."""
        if seed is not None:
            check_value(Seed, seed, "seed", "TabularPersuasionEnv.reset()")
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"TabularPersuasionEnv.reset(): options must be a dict or None, got {options!r}; "
                              "the only option is 'clear_history' (True/False)")
        options = dict(options or {})
        bad = set(options) - {"clear_history"}
        if bad:
            raise ConfigError(f"unknown reset option(s) {sorted(bad)}; the only option is 'clear_history'")
        clear = "clear_history" in options and check_value(Bool, options["clear_history"],
                                                           "options['clear_history']", "TabularPersuasionEnv.reset()")
        super().reset(seed=seed)
        if seed is not None or clear:
            self._counts = [[0.0] * self.num_signals for _ in range(self.game.n_states)]
            self._n_state = [0.0] * self.game.n_states
        self._round = 0
        self._needs_reset = False
        return self._observe(), {}

    def step(self, action):
        """Play one round (see the class docstring)."""
        if self._needs_reset:
            raise ConfigError("step() called before reset() or after the episode ended; call env.reset() first")
        g = self.game
        prior, _, us, _ = g._lists  # plain Python: numpy on a few entries costs more than the arithmetic
        if self.action_mode == "scheme":
            fast = self._scheme_round_fast(action)
            if fast is not None:
                state, signal, receiver_action, posterior, expected = fast
            else:  # the general path (and every error message)
                ev = g.evaluate(self.scheme_of(action))
                state = self._draw_state()
                signal = sample_categorical(ev.scheme[state], self.np_random)
                receiver_action = int(ev.actions[signal])
                posterior = ev.posteriors[signal].copy()
                expected = ev.value
            reward = us[state][receiver_action]
        else:
            m = self.num_signals
            signal = int(action) if type(action) in (int, np.int64) and 0 <= action < m else _as_signal(action, m)
            state = self._state
            a = self.pseudo_count
            counts, n_state = self._counts, self._n_state
            denominator = a * m
            joint = [mu * ((row[signal] + a) / (n + denominator)) for mu, row, n in zip(prior, counts, n_state)]
            total = _numpy_sum(joint)
            q = [x / total for x in joint]
            posterior = np.array(q)
            receiver_action = g._best_response_fast(q)
            if receiver_action is None:  # on a knife edge: numpy decides, as it always did
                receiver_action = int(g.best_response(posterior))
            reward = us[state][receiver_action]
            expected = reward
            counts[state][signal] += 1.0
            n_state[state] += 1.0
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

    def scheme_of(self, action) -> np.ndarray:
        """Scheme mode: the scheme an action commits to (row-normalised, ``(n_states, num_signals)``).

        Every action of the declared space ``Box(0, 1, (n_states, num_signals))`` is a valid scheme: row
        ``ω`` is normalised to sum to 1, and a row of zeros means the uniform row (state ``ω`` reveals
        nothing).  Rows may have any positive scale.  A negative or non-finite entry, a wrong shape, or a
        non-numeric array lies outside the space and raises :class:`~bpa_gym.errors.ConfigError`.

        Example:
            >>> env = TabularPersuasionEnv(game="prosecutor")
            >>> env.scheme_of([[0.0, 0.0], [0.0, 0.5]]).tolist()
            [[0.5, 0.5], [0.0, 1.0]]
        """
        arr = as_float_array(action, "a scheme action")
        shape = (self.game.n_states, self.num_signals)
        if arr.shape != shape:
            raise ConfigError(f"a scheme action must have shape {shape} (row ω = π(·|ω)), got shape {arr.shape}")
        zero = arr.sum(axis=1) == 0
        if zero.any() and np.isfinite(arr).all() and arr.min() >= 0:
            arr = arr.copy()
            arr[zero] = 1.0  # an all-zero row is the uniform row
        return normalize_scheme(arr, self.game.n_states, self.num_signals)

    def _scheme_round_fast(self, action) -> tuple[int, int, int, np.ndarray, float] | None:
        """One scheme-mode round in plain Python: ``(state, signal, receiver_action, posterior, expected)``.

        The same round as the general path (``game.evaluate(scheme_of(action))``, then the state
        and signal draws): the scheme and posteriors are computed with numpy's rounding, the draws
        use the same random numbers.  ``None`` (take the general path) for anything but a float
        array of the right shape with finite nonnegative entries, and where a best response is
        on a knife edge; the expected reward may differ from the general path's in the last bits.
        """
        if type(action) is not np.ndarray or action.dtype.kind != "f" or action.shape != self.action_space.shape:
            return None
        scheme = []
        for row in action.tolist():
            for x in row:
                if not 0.0 <= x < _INF:  # negative, NaN or infinite: the general path explains
                    return None
            total = _numpy_sum(row)
            if total == 0.0:  # an all-zero row is the uniform row (see scheme_of)
                row, total = [1.0] * len(row), float(len(row))
            elif total == _INF:
                return None
            row = [x / total for x in row]  # scheme_of normalises ...
            total = _numpy_sum(row)
            scheme.append([x / total for x in row])  # ... and evaluate() normalises again
        evaluation = self.game._evaluate_fast(scheme)
        if evaluation is None:
            return None
        posteriors, actions, value = evaluation
        state = self._draw_state()
        signal = sample_categorical(scheme[state], self.np_random)
        return state, signal, actions[signal], np.array(posteriors[signal]), value

    # ---------------------------------------------------------------- regret

    def regret_oracle(self) -> ExactLPOracle:
        """The exact LP oracle used by :class:`~bpa_gym.wrappers.regret.RegretWrapper`."""
        return ExactLPOracle(self.game, mode=self.action_mode, num_signals=self.num_signals)

    @property
    def receiver_counts(self) -> np.ndarray:
        """Signal mode: the Receiver's counts ``n(ω, σ)`` since the last history clear (a copy)."""
        return np.array(self._counts)

    # ---------------------------------------------------------------- helpers

    def _draw_state(self) -> int:
        return sample_categorical(self.game._lists[0], self.np_random)  # the prior as a list: the fast draw

    def _observe(self, draw: bool = True):
        if self.action_mode == "scheme":
            return 0
        if draw or self._state is None:
            self._state = self._draw_state()
        return self._state


def _as_signal(action, m: int) -> int:
    try:
        sig = int(action)
        ok = np.ndim(action) == 0 and not isinstance(action, (bool, np.bool_)) and sig == action
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or not 0 <= sig < m:
        raise ConfigError(f"a signal action must be an integer in 0..{m - 1}, got {action!r}")
    return sig


def _build_game(args: TabularEnvArgs) -> TabularGame:
    explicit = {k: getattr(args, k) is not None for k in ("prior", "receiver_utility", "sender_utility")}
    random_kw = [k for k in ("game_seed", "n_states", "n_actions") if getattr(args, k) is not None]
    if args.game is not None:
        if any(explicit.values()) or random_kw:
            extra = [k for k, e in explicit.items() if e] + random_kw
            raise ConfigError(f"pass either game= or the game's arrays/random-game keywords, not both (got game and {extra})")
        if isinstance(args.game, TabularGame):
            return args.game
        if isinstance(args.game, str) and args.game == "prosecutor":
            return TabularGame.prosecutor()
        raise ConfigError(f"game must be a bpa_gym.persuasion.TabularGame or 'prosecutor', got {args.game!r}")
    if any(explicit.values()):
        if not all(explicit.values()):
            missing = [k for k, e in explicit.items() if not e]
            raise ConfigError(f"an explicit game needs prior, receiver_utility and sender_utility; missing {missing}")
        if random_kw:
            raise ConfigError(f"{random_kw} only apply to random games; drop them or drop the explicit arrays")
        return TabularGame(args.prior, args.receiver_utility, args.sender_utility)
    return TabularGame.random(0 if args.game_seed is None else args.game_seed,
                              3 if args.n_states is None else args.n_states,
                              3 if args.n_actions is None else args.n_actions)
