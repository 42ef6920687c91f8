"""Learning to persuade with an unknown prior (Zu, Iyer & Xu), plus a myopic baseline.

:class:`RobustPersuasionLearner` plays the tabular env's ``action="scheme"``
mode.  It implements the algorithm of

    You Zu, Krishnamurthy Iyer, Haifeng Xu. "Learning to Persuade on the Fly:
    Robustness Against Ignorance." EC 2021 (arXiv:2102.10156; Operations
    Research 2025).

Setting: the Sender knows both utility tables but not the prior; after each
round it sees the realised state.  Each round it (1) estimates the prior by the
empirical frequency ``μ̂_t`` of past states, (2) builds a confidence set
``B_t = {μ ∈ Δ : ||μ − μ̂_t||_1 <= ε_t}``, and (3) commits to the scheme
maximising the Sender's utility under ``μ̂_t`` among schemes that are
persuasive (obedient) for *every* prior in ``B_t`` -- "robustly persuasive".
If the true prior is in ``B_t`` the Receiver, who knows the true prior,
follows the recommendation, and the paper shows the price of robustness is
``O(ε_t)``; summing gives regret ``O(sqrt(T log T))`` (game-dependent
constant), which is optimal up to the log factor (they prove ``Ω(sqrt(T))``).

What this file does exactly (and where it may differ from the paper):

* Confidence radius from the L1 concentration of Weissman et al. (2003),
  ``P(||μ̂_n − μ||_1 >= ε) <= (2^S − 2) exp(−n ε² / 2)``, with failure
  probability ``δ_n = 1/n`` at ``n`` observations:
  ``ε_n = confidence_scale * sqrt(2 (log(2^S − 2) + log n) / n)`` (and the
  whole simplex at ``n = 0``).  The paper's set and constants may differ; the
  structure (a ``sqrt(log n / n)`` ball, robust LP) is the same.
* Robustness for all priors in the L1 ball ∩ simplex is written as one LP by
  dualising the inner minimisation (per obedience constraint ``(a, a')``:
  ``min_{μ ∈ B} Σ_ω μ(ω) π(a|ω) (u_r(ω, a) − u_r(ω, a')) >= 0``).
* **Lazy updates** (an engineering simplification): the LP is re-solved every
  step for the first ``1/update_ratio`` observations and afterwards only when
  the number of observations has grown by the factor ``1 + update_ratio``
  (default 5%); between updates the same scheme is played.  The set used is
  still a valid confidence set, so the regret stays ``O(sqrt(T log T))``
  (the constant grows by about ``sqrt(1 + update_ratio)``); it makes 10^5
  steps cost ~200 LPs instead of 10^5.  ``update_ratio=0`` re-solves every
  step (the paper's algorithm verbatim).

:class:`MarginSignalLearner` plays ``action="signal"`` mode, where the
Receiver learns the meaning of signals from their frequencies: it samples
signals from the optimal scheme with a decaying obedience margin, and its
regret is sublinear.

:class:`MyopicAgent` is the benchmark's cautionary baseline: in
``action="signal"`` mode it always sends the signal that recommends the
Sender's favourite action ("always convict").  The learning Receiver soon
finds the signal uninformative and acts on the prior.

:func:`run_vectorised` plays the learner on a game without Gymnasium, a whole
lazy-update epoch at a time with :meth:`TabularGame.sample_many`, so T = 10^6
takes seconds.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy.optimize import linprog

from bpa_gym.common import sample_categorical
from pydantic import Field

from bpa_gym.common.validation import Arguments, NonNegativeFloat, PositiveFloat, PositiveInt, Seed, check
from bpa_gym import ConfigError
from bpa_gym.persuasion import TabularGame, as_float_array, optimal_scheme


class _RobustArgs(Arguments):
    num_signals: PositiveInt | None = Field(None, description="an integer >= n_actions or None")
    update_ratio: NonNegativeFloat = 0.05
    confidence_scale: PositiveFloat = 1.0


class RobustPersuasionLearner:
    """Zu-Iyer-Xu robust persuasion with an unknown prior (see the module docstring).

    Args:
        receiver_utility: ``(n_states, n_actions)``.
        sender_utility: ``(n_states, n_actions)``.
        num_signals: Columns of the emitted scheme (``>= n_actions``; extra
            signals are never used).  Default ``n_actions``.
        update_ratio: Lazy-update growth factor (0 = re-solve every step).
        confidence_scale: Multiplies the radius ``ε_n`` (1 = the
            concentration bound above; smaller is more aggressive and loses
            the high-probability guarantee).

    Example:
        >>> g = TabularGame.prosecutor()
        >>> learner = RobustPersuasionLearner(g.receiver_utility, g.sender_utility)
        >>> learner.act(0).round(3).tolist()  # nothing observed: persuasive for every prior
        [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, receiver_utility, sender_utility, num_signals: int | None = None,
                 update_ratio: float = 0.05, confidence_scale: float = 1.0) -> None:
        args = check(_RobustArgs, "RobustPersuasionLearner", num_signals=num_signals, update_ratio=update_ratio,
                     confidence_scale=confidence_scale)
        ur = as_float_array(receiver_utility, "receiver_utility")
        n_states = ur.shape[0] if ur.ndim == 2 and ur.shape[0] >= 2 else 2
        # the utilities are checked as a game's (any valid prior will do: the learner never reads it)
        game = TabularGame(np.full(n_states, 1.0 / n_states), ur, sender_utility)
        self.ur, self.us = game.receiver_utility, game.sender_utility
        self.n_states, self.n_actions = self.ur.shape
        self.num_signals = self.n_actions if args.num_signals is None else args.num_signals
        if self.num_signals < self.n_actions:
            raise ConfigError(f"num_signals must be >= n_actions = {self.n_actions}, got {num_signals!r}")
        self.update_ratio = args.update_ratio
        self.confidence_scale = args.confidence_scale
        self.counts = np.zeros(self.n_states)
        self.n_solves = 0
        self._solve()

    @classmethod
    def from_env(cls, env, **kwargs) -> "RobustPersuasionLearner":
        """Build from a tabular env: reads the utilities and ``num_signals``, never the prior."""
        game = env.get_wrapper_attr("game")  # the env's public TabularGame (its definition, not a way to play)
        return cls(game.receiver_utility, game.sender_utility, num_signals=env.get_wrapper_attr("num_signals"),
                   **kwargs)

    # ---------------------------------------------------------------- the algorithm

    @property
    def n(self) -> int:
        """Number of states observed."""
        return int(self.counts.sum())

    def radius(self, n: int) -> float:
        """``ε_n``; at least 2 (the whole simplex) when ``n = 0``."""
        if n == 0:
            return 2.0
        S = self.n_states
        return self.confidence_scale * math.sqrt(2.0 * (math.log(2 ** S - 2) + math.log(n)) / n)

    def steps_until_update(self) -> int:
        """How many more observations until the scheme is re-solved (>= 1)."""
        return max(1, self._next_update - self.n)

    def _solve(self) -> None:
        n = self.n
        mu_hat = self.counts / n if n else np.full(self.n_states, 1.0 / self.n_states)
        scheme = robust_scheme(mu_hat, self.radius(n), self.ur, self.us)
        if self.num_signals > self.n_actions:
            scheme = np.hstack([scheme, np.zeros((self.n_states, self.num_signals - self.n_actions))])
        self.scheme = scheme
        self.n_solves += 1
        self._next_update = n + 1 if self.update_ratio == 0 else max(n + 1, math.ceil(n * (1 + self.update_ratio)))

    def act(self, obs: Any = None) -> np.ndarray:
        """The scheme to commit to this round (a ``(n_states, num_signals)`` array)."""
        return self.scheme

    def update(self, obs: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        """Record the realised state ``info["state"]``; re-solve when due."""
        self.observe_states(np.array([int(info["state"])]))

    def observe_states(self, states: np.ndarray) -> None:
        """Record many realised states at once (used by :func:`run_vectorised`)."""
        self.counts += np.bincount(np.asarray(states, dtype=np.int64), minlength=self.n_states)
        if self.n >= self._next_update:
            self._solve()


def robust_scheme(mu_hat, eps: float, receiver_utility, sender_utility) -> np.ndarray:
    """The best scheme under ``mu_hat`` that is obedient for every prior within L1 distance ``eps``.

    Variables ``π(a|ω)``; for each obedience pair ``(a, b)`` with
    ``c_ω = π(a|ω)(u_r(ω, a) − u_r(ω, b))`` the constraint
    ``min {c·μ : μ ∈ Δ, ||μ − μ̂||_1 <= ε} >= 0`` is, by LP duality, the
    existence of ``z``, ``λ >= 0``, ``0 <= α_ω <= λ`` with
    ``z − 2 α_ω <= c_ω`` for all ``ω`` and ``z − 2 μ̂·α − ε λ >= 0``
    (sufficiency: for μ in the set, ``c·μ >= z − 2α·μ >= z − 2α·μ̂ − λε``
    because ``Σ(μ − μ̂) = 0`` and ``|α_ω − λ/2| <= λ/2``).

    Returns:
        ``(n_states, n_actions)``, rows normalised.  Always feasible: full
        revelation with the Receiver's best action per state is obedient for
        every prior.

    Example:
        >>> g = TabularGame.prosecutor()
        >>> float(robust_scheme(g.prior, 0.0, g.receiver_utility, g.sender_utility)[0, 1].round(6))  # 3/7
        0.428571
    """
    mu = np.asarray(mu_hat, dtype=np.float64)
    ur = np.asarray(receiver_utility, dtype=np.float64)
    us = np.asarray(sender_utility, dtype=np.float64)
    S, A = ur.shape
    pairs = [(a, b) for a in range(A) for b in range(A) if a != b]
    n_p = S * A
    per = S + 2  # z, lambda, alpha_1..S
    n_var = n_p + per * len(pairs)
    c = np.zeros(n_var)
    c[:n_p] = -(mu[:, None] * us).ravel()
    rows, rhs = [], []
    for k, (a, b) in enumerate(pairs):
        base = n_p + per * k
        z, lam, alpha = base, base + 1, base + 2
        d = ur[:, a] - ur[:, b]
        for w in range(S):
            r = np.zeros(n_var)  # z - 2 alpha_w - p[w, a] d_w <= 0
            r[z], r[alpha + w], r[w * A + a] = 1.0, -2.0, -d[w]
            rows.append(r)
            rhs.append(0.0)
            r = np.zeros(n_var)  # alpha_w - lambda <= 0
            r[alpha + w], r[lam] = 1.0, -1.0
            rows.append(r)
            rhs.append(0.0)
        r = np.zeros(n_var)  # -z + 2 mu.alpha + eps lambda <= 0
        r[z], r[alpha:alpha + S], r[lam] = -1.0, 2.0 * mu, eps
        rows.append(r)
        rhs.append(0.0)
    a_eq = np.zeros((S, n_var))
    for w in range(S):
        a_eq[w, w * A:(w + 1) * A] = 1.0
    bounds = [(0.0, 1.0)] * n_p
    for _ in pairs:
        bounds += [(None, None), (0.0, None)] + [(0.0, None)] * S
    res = linprog(c, A_ub=np.array(rows), b_ub=np.array(rhs), A_eq=a_eq, b_eq=np.ones(S), bounds=bounds,
                  method="highs")
    if res.status != 0:  # pragma: no cover - full revelation is always feasible
        raise RuntimeError(f"robust persuasion LP failed: {res.message}")
    p = np.clip(res.x[:n_p].reshape(S, A), 0.0, None)
    return p / p.sum(axis=1, keepdims=True)


class MyopicAgent:
    """Signal mode: always recommend the Sender's favourite action in the observed state.

    On the prosecutor that is "always convict" (signal 1 in every state): a
    lie the learning Receiver sees through, so the average reward goes to the
    no-information value 0, far below the optimum 0.6.

    Args:
        sender_utility: ``(n_states, n_actions)``; signal ``a`` is read as
            "play ``a``".
    """

    def __init__(self, sender_utility) -> None:
        us = as_float_array(sender_utility, "sender_utility")
        if us.ndim != 2 or us.size == 0 or not np.isfinite(us).all():
            raise ConfigError(f"MyopicAgent: sender_utility must be a finite (n_states, n_actions) array, got {us!r}")
        self.choice = us.argmax(axis=1)

    @classmethod
    def from_env(cls, env) -> "MyopicAgent":
        return cls(env.get_wrapper_attr("game").sender_utility)

    def act(self, obs: Any) -> int:
        return int(self.choice[int(obs)])

    def update(self, obs: Any, action: int, reward: float, info: Mapping[str, Any] | None = None) -> None:
        """Myopic: learns nothing."""


class _MarginArgs(Arguments):
    margin_scale: PositiveFloat = 1.0
    max_margin: PositiveFloat = 0.5
    update_ratio: NonNegativeFloat = 0.05
    seed: Seed = None


class MarginSignalLearner:
    """Signal mode: send signals drawn from the optimal scheme with a decaying obedience margin.

    The tabular env's ``action="signal"`` Receiver does not know the Sender's
    scheme; it estimates it from the (state, signal) pairs so far and
    best-responds to the *estimated* posterior.  Playing the exact optimal
    scheme leaves that Receiver on a knife edge: the optimum makes it exactly
    indifferent, so estimation noise (and the Laplace pseudo-counts) tip it
    to the other action about half the time, far from ``V*``.

    This learner knows the game (prior and both utilities; it observes the
    state) and each round samples ``σ ~ π_t(·|ω)`` from the Sender-optimal
    scheme whose every recommendation beats the alternatives by the margin
    ``δ_t = min(max_margin, margin_scale * sqrt(log(t + 2) / (t + 1)))`` (in
    units of the Receiver's utility spread; see
    :func:`bpa_gym.persuasion.optimal_scheme`'s ``margin``).  The Receiver's
    estimate of the (time-averaged) scheme is off by ``O(1/sqrt(t))``, so
    with the margin it obeys with high probability; the margin costs
    ``O(δ_t)`` of value per round.  Summed, the regret against ``V*`` grows
    like ``sqrt(T log T)`` (game-dependent constant), where myopic signalling
    has linear regret.  If a game has no scheme with margin ``δ_t`` the margin
    is halved until one exists.

    The scheme is re-solved lazily, like :class:`RobustPersuasionLearner`:
    when the round count has grown by the factor ``1 + update_ratio``.

    Args:
        game: The :class:`~bpa_gym.persuasion.TabularGame`.
        num_signals: Signals of the env (``>= n_actions``; extra ones unused).
        margin_scale: ``c`` of the margin ``c sqrt(log t / t)``.
        max_margin: The margin's cap (the first rounds).
        update_ratio: Lazy-update growth factor (0 = re-solve every round).
        seed: Seed of the signal sampling.

    Example:
        >>> learner = MarginSignalLearner(TabularGame.prosecutor(), seed=0)
        >>> learner.margin(0), learner.act(1)  # a guilty defendant: always "convict"
        (0.5, 1)
    """

    def __init__(self, game: TabularGame, num_signals: int | None = None, margin_scale: float = 1.0,
                 max_margin: float = 0.5, update_ratio: float = 0.05, seed: int | None = None) -> None:
        args = check(_MarginArgs, "MarginSignalLearner", margin_scale=margin_scale, max_margin=max_margin,
                     update_ratio=update_ratio, seed=seed)
        if not isinstance(game, TabularGame):
            raise ConfigError(f"MarginSignalLearner needs a bpa_gym.persuasion.TabularGame, got {game!r}")
        self.game = game
        self.num_signals = game.n_actions if num_signals is None else int(num_signals)
        if self.num_signals < game.n_actions:
            raise ConfigError(f"num_signals must be >= n_actions = {game.n_actions}, got {num_signals!r}")
        self.margin_scale, self.max_margin = args.margin_scale, min(args.max_margin, 0.99)
        self.update_ratio = args.update_ratio
        # A stream of its own: with default_rng(seed) a learner and an env reset with the same seed would
        # draw the same uniforms, correlating the signal with the state draw.
        self.rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(0x516E,)))
        self.t = 0
        self.n_solves = 0
        self._solve()

    @classmethod
    def from_env(cls, env, **kwargs) -> "MarginSignalLearner":
        """Build from a tabular env in signal mode (reads its game and ``num_signals``)."""
        return cls(env.get_wrapper_attr("game"), num_signals=env.get_wrapper_attr("num_signals"), **kwargs)

    def margin(self, t: int) -> float:
        """The target margin ``δ_t`` after ``t`` rounds."""
        return min(self.max_margin, self.margin_scale * math.sqrt(math.log(t + 2) / (t + 1)))

    def _solve(self) -> None:
        g, delta = self.game, self.margin(self.t)
        while True:
            try:
                opt = optimal_scheme(g.prior, g.receiver_utility, g.sender_utility, margin=delta)
                break
            except ConfigError:
                delta = delta / 2 if delta > 1e-6 else 0.0
        self.current_margin = delta
        scheme = np.zeros((g.n_states, self.num_signals))
        scheme[:, :g.n_actions] = opt.scheme
        self.scheme = scheme
        self.n_solves += 1
        self._next_update = self.t + 1 if self.update_ratio == 0 else max(
            self.t + 1, math.ceil(self.t * (1 + self.update_ratio)))

    def act(self, obs: Any) -> int:
        """A signal for the observed state, drawn from the current scheme."""
        return int(sample_categorical(self.scheme[int(obs)], self.rng))

    def update(self, obs: Any, action: Any, reward: float, info: Mapping[str, Any] | None = None) -> None:
        """Count the round; re-solve with a smaller margin when due."""
        self.t += 1
        if self.t >= self._next_update:
            self._solve()


class _RunArgs(Arguments):
    total_steps: PositiveInt
    seed: Seed = None


def run_vectorised(game: TabularGame, learner: RobustPersuasionLearner, total_steps: int,
                   seed: int | None = None) -> dict[str, Any]:
    """Play ``learner`` on ``game`` for ``total_steps`` rounds, one lazy-update epoch per numpy call.

    Same algorithm as stepping the Gymnasium env (the scheme only changes at
    updates), without the per-step Python overhead.

    Returns:
        ``{"cumulative_regret"`` (array, ``R_t`` for t = 1..T, pseudo-regret
        ``V* − sender_value(scheme_t)``), ``"mean_reward"`` (sampled),
        ``"n_solves"}``.

    Example:
        >>> g = TabularGame.prosecutor()
        >>> out = run_vectorised(g, RobustPersuasionLearner(g.receiver_utility, g.sender_utility), 10_000, seed=0)
        >>> bool(out["cumulative_regret"][-1] < 10_000 * 0.05)
        True
    """
    total_steps = check(_RunArgs, "run_vectorised", total_steps=total_steps, seed=seed).total_steps
    rng = np.random.default_rng(seed)
    v_star = game.optimum.value
    inst = np.empty(int(total_steps))
    reward_sum, t = 0.0, 0
    while t < total_steps:
        k = min(learner.steps_until_update(), total_steps - t)
        batch = game.sample_many(learner.act(None), rng, size=k)
        inst[t:t + k] = v_star - batch.expected_rewards
        reward_sum += float(batch.rewards.sum())
        learner.observe_states(batch.states)
        t += k
    return {"cumulative_regret": np.cumsum(inst), "mean_reward": reward_sum / max(total_steps, 1),
            "n_solves": learner.n_solves}
