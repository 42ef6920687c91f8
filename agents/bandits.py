"""Contextual bandit learners over discrete signals, CleanRL-style (one readable file).

Every agent has the same tiny interface::

    action = agent.act(obs)
    agent.update(obs, action, reward, info)   # info is optional; bandits ignore it

* :class:`UCB1`, :class:`ThompsonSampling`, :class:`Exp3`: one independent
  bandit per *context*.  The context is ``context_key(obs)``; the default
  ``int(obs)`` fits a ``Discrete`` observation (the state in the tabular env's
  ``action="signal"`` mode).  For other observations pass your own
  ``context_key`` (any hashable).
* :class:`LinUCB`: disjoint LinUCB (Li et al. 2010) on a feature vector
  ``features(obs)`` (default: one-hot of ``int(obs)`` over ``n_contexts``).

:func:`run_bandit` steps a (possibly :class:`~bpa_gym.wrappers.regret.RegretWrapper`
-wrapped) env for a number of steps and returns summary statistics.

Example:
    >>> import gymnasium as gym
    >>> import bpa_gym  # registers the envs
    >>> from bpa_gym.wrappers import RegretWrapper
    >>> env = RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0", action="signal"))
    >>> stats = run_bandit(env, UCB1(n_actions=2, seed=0), total_steps=200, seed=0)
    >>> sorted(stats)[:3], stats["steps"]
    (['final_regret', 'mean_expected_reward', 'mean_reward'], 200)
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Hashable, Mapping

import numpy as np

from typing import Annotated, Literal

from pydantic import Field

from bpa_gym.common import sample_categorical
from bpa_gym.common.validation import Arguments, FiniteFloat, NonNegativeFloat, PositiveFloat, PositiveInt, Seed, check
from bpa_gym import ConfigError


def _default_key(obs: Any) -> Hashable:
    return int(obs)


class _BanditArgs(Arguments):
    n_actions: PositiveInt
    seed: Seed = None
    c: NonNegativeFloat = 1.0
    likelihood: Literal["bernoulli", "gaussian"] = Field("bernoulli", description="'bernoulli' or 'gaussian'")
    gamma: Annotated[FiniteFloat, Field(gt=0, le=1)] | None = Field(None, description="a number in (0, 1] or None")
    horizon: PositiveInt = 10_000
    n_contexts: PositiveInt | None = Field(None, description="an integer >= 1 or None")
    alpha: NonNegativeFloat = 1.0
    ridge: PositiveFloat = 1.0


def _check(owner: str, context_key=None, features=None, **kwargs) -> _BanditArgs:
    for name, fn in (("context_key", context_key), ("features", features)):
        if fn is not None and not callable(fn):
            raise ConfigError(f"{owner}: {name} must be a function of the observation, got {fn!r}")
    return check(_BanditArgs, owner, **kwargs)


class UCB1:
    """UCB1 (Auer, Cesa-Bianchi & Fischer 2002), one instance per context.

    Plays every arm once, then ``argmax mean + c * sqrt(2 log n / n_a)``.
    Rewards are assumed in ``[0, 1]`` (scale with ``c`` otherwise).

    Args:
        n_actions: Number of arms (signals).
        c: Exploration multiplier (1 = the textbook index).
        context_key: Maps an observation to a hashable context.
        seed: Tie-breaking randomness.
    """

    def __init__(self, n_actions: int, c: float = 1.0, context_key: Callable[[Any], Hashable] = _default_key,
                 seed: int | None = None) -> None:
        args = _check("UCB1", context_key, n_actions=n_actions, c=c, seed=seed)
        self.n_actions, self.c, self.context_key = args.n_actions, args.c, context_key
        self.rng = np.random.default_rng(args.seed)
        self.counts: dict[Hashable, np.ndarray] = defaultdict(lambda: np.zeros(self.n_actions))
        self.sums: dict[Hashable, np.ndarray] = defaultdict(lambda: np.zeros(self.n_actions))

    def act(self, obs: Any) -> int:
        k = self.context_key(obs)
        n = self.counts[k]
        untried = np.flatnonzero(n == 0)
        if untried.size:
            return int(untried[0])
        index = self.sums[k] / n + self.c * np.sqrt(2.0 * math.log(n.sum()) / n)
        return int(self.rng.choice(np.flatnonzero(index == index.max())))

    def update(self, obs: Any, action: int, reward: float, info: Mapping[str, Any] | None = None) -> None:
        k = self.context_key(obs)
        self.counts[k][action] += 1
        self.sums[k][action] += reward

    def greedy(self, obs: Any) -> int:
        """The arm with the best empirical mean in this context."""
        k = self.context_key(obs)
        return int(np.argmax(self.sums[k] / np.maximum(self.counts[k], 1)))


class ThompsonSampling:
    """Thompson sampling, one posterior per (context, arm).

    ``likelihood="bernoulli"`` (default): Beta(1, 1) priors; a reward ``r`` in
    ``[0, 1]`` that is not 0/1 is turned into a Bernoulli(r) success (Agrawal &
    Goyal 2012), so the posterior stays Beta and the regret guarantee holds for
    ``[0, 1]`` rewards.  ``likelihood="gaussian"``: unknown mean, known unit
    variance, N(0, 1) prior: the posterior of arm ``a`` is
    ``N(sum_a / (n_a + 1), 1 / (n_a + 1))`` -- for rewards outside ``[0, 1]``.

    Args:
        n_actions: Number of arms.
        likelihood: ``"bernoulli"`` or ``"gaussian"``.
        context_key: Maps an observation to a hashable context.
        seed: Sampling randomness.
    """

    def __init__(self, n_actions: int, likelihood: str = "bernoulli",
                 context_key: Callable[[Any], Hashable] = _default_key, seed: int | None = None) -> None:
        args = _check("ThompsonSampling", context_key, n_actions=n_actions, likelihood=likelihood, seed=seed)
        self.n_actions, self.likelihood, self.context_key = args.n_actions, args.likelihood, context_key
        self.rng = np.random.default_rng(args.seed)
        self.a: dict[Hashable, np.ndarray] = defaultdict(lambda: np.zeros(self.n_actions))  # successes / sums
        self.b: dict[Hashable, np.ndarray] = defaultdict(lambda: np.zeros(self.n_actions))  # failures / counts

    def act(self, obs: Any) -> int:
        k = self.context_key(obs)
        if self.likelihood == "bernoulli":
            theta = self.rng.beta(1.0 + self.a[k], 1.0 + self.b[k])
        else:
            n = self.b[k] + 1.0
            theta = self.rng.normal(self.a[k] / n, 1.0 / np.sqrt(n))
        return int(np.argmax(theta))

    def update(self, obs: Any, action: int, reward: float, info: Mapping[str, Any] | None = None) -> None:
        k = self.context_key(obs)
        if self.likelihood == "bernoulli":
            if not 0.0 <= reward <= 1.0:
                raise ConfigError(f"Bernoulli Thompson sampling needs rewards in [0, 1], got {reward}; "
                                  "use likelihood='gaussian'")
            success = reward if reward in (0.0, 1.0) else float(self.rng.random() < reward)
            self.a[k][action] += success
            self.b[k][action] += 1.0 - success
        else:
            self.a[k][action] += reward
            self.b[k][action] += 1.0

    def greedy(self, obs: Any) -> int:
        """The arm with the best posterior mean in this context."""
        k = self.context_key(obs)
        if self.likelihood == "bernoulli":
            return int(np.argmax((1.0 + self.a[k]) / (2.0 + self.a[k] + self.b[k])))
        return int(np.argmax(self.a[k] / (self.b[k] + 1.0)))


class Exp3:
    """Exp3 (Auer et al. 2002) for adversarial bandits, one instance per context.

    Importance-weighted reward estimates ``r / p_a`` and exponential weights
    mixed with ``gamma`` uniform exploration.  Rewards must be in ``[0, 1]``.
    With a known horizon ``T`` per context, ``gamma = min(1, sqrt(K log K /
    ((e - 1) T)))`` gives ``O(sqrt(T K log K))`` regret (the default uses
    ``horizon``; pass ``gamma`` to override).

    Args:
        n_actions: Number of arms ``K``.
        gamma: Exploration rate in ``(0, 1]``; default from ``horizon``.
        horizon: Expected number of plays per context (for the default gamma).
        context_key: Maps an observation to a hashable context.
        seed: Sampling randomness.
    """

    def __init__(self, n_actions: int, gamma: float | None = None, horizon: int = 10_000,
                 context_key: Callable[[Any], Hashable] = _default_key, seed: int | None = None) -> None:
        args = _check("Exp3", context_key, n_actions=n_actions, gamma=gamma, horizon=horizon, seed=seed)
        K = args.n_actions
        self.n_actions, self.context_key = K, context_key
        self.gamma = args.gamma if args.gamma is not None else min(
            1.0, math.sqrt(K * math.log(K) / ((math.e - 1) * args.horizon))) or 1.0  # K = 1: nothing to explore
        self.rng = np.random.default_rng(args.seed)
        self.log_w: dict[Hashable, np.ndarray] = defaultdict(lambda: np.zeros(K))

    def probs(self, obs: Any) -> np.ndarray:
        """The current sampling distribution in this context."""
        lw = self.log_w[self.context_key(obs)]
        w = np.exp(lw - lw.max())
        return (1.0 - self.gamma) * w / w.sum() + self.gamma / self.n_actions

    def act(self, obs: Any) -> int:
        return sample_categorical(self.probs(obs), self.rng)

    def update(self, obs: Any, action: int, reward: float, info: Mapping[str, Any] | None = None) -> None:
        if not 0.0 <= reward <= 1.0:
            raise ConfigError(f"Exp3 needs rewards in [0, 1], got {reward}; rescale them")
        p = self.probs(obs)[action]
        self.log_w[self.context_key(obs)][action] += self.gamma * (reward / p) / self.n_actions

    def greedy(self, obs: Any) -> int:
        """The arm with the largest weight in this context."""
        return int(np.argmax(self.log_w[self.context_key(obs)]))


class LinUCB:
    """Disjoint LinUCB (Li, Chu, Langford & Schapire 2010).

    One ridge regression per arm ``a``: ``A_a = λ I + Σ x xᵀ``, ``b_a = Σ r x``;
    play ``argmax θ_aᵀ x + α sqrt(xᵀ A_a⁻¹ x)`` with ``θ_a = A_a⁻¹ b_a``.
    ``A_a⁻¹`` is kept up to date by Sherman-Morrison (O(d²) per step).
    ``θ`` starts at 0, so an untried arm's index is about ``α``: keep ``α``
    at least the reward range (default 1 for ``[0, 1]`` rewards) or LinUCB
    can lock onto the first arm that pays.

    Args:
        n_actions: Number of arms.
        features: ``obs -> 1-d float array`` of length ``dim``; default one-hot
            of ``int(obs)`` over ``n_contexts`` (then LinUCB is a per-context
            UCB with ridge shrinkage).
        n_contexts: Size of the default one-hot (needed if ``features`` is None).
        alpha: Exploration multiplier.
        ridge: ``λ``.
        seed: Tie-breaking randomness.
    """

    def __init__(self, n_actions: int, features: Callable[[Any], np.ndarray] | None = None,
                 n_contexts: int | None = None, alpha: float = 1.0, ridge: float = 1.0, seed: int | None = None) -> None:
        args = _check("LinUCB", features=features, n_actions=n_actions, n_contexts=n_contexts, alpha=alpha,
                      ridge=ridge, seed=seed)
        if features is None:
            if args.n_contexts is None:
                raise ConfigError("LinUCB needs features=obs->vector or n_contexts for the default one-hot features")
            eye = np.eye(args.n_contexts)
            features = lambda obs: eye[int(obs)]  # noqa: E731
        self.features, self.n_actions, self.alpha = features, args.n_actions, args.alpha
        self.rng = np.random.default_rng(args.seed)
        self.ridge = args.ridge
        self.A_inv: np.ndarray | None = None
        self.b: np.ndarray | None = None

    def _init(self, d: int) -> None:
        self.A_inv = np.stack([np.eye(d) / self.ridge] * self.n_actions)
        self.b = np.zeros((self.n_actions, d))

    def act(self, obs: Any) -> int:
        x = np.asarray(self.features(obs), dtype=np.float64)
        if self.A_inv is None:
            self._init(x.size)
        theta = np.einsum("kij,kj->ki", self.A_inv, self.b)
        width = np.sqrt(np.einsum("i,kij,j->k", x, self.A_inv, x))
        index = theta @ x + self.alpha * width
        return int(self.rng.choice(np.flatnonzero(index >= index.max() - 1e-12)))

    def update(self, obs: Any, action: int, reward: float, info: Mapping[str, Any] | None = None) -> None:
        x = np.asarray(self.features(obs), dtype=np.float64)
        if self.A_inv is None:
            self._init(x.size)
        Ai = self.A_inv[action]
        Ax = Ai @ x
        Ai -= np.outer(Ax, Ax) / (1.0 + x @ Ax)
        self.b[action] += reward * x

    def greedy(self, obs: Any) -> int:
        """The arm with the best ridge estimate for this observation."""
        x = np.asarray(self.features(obs), dtype=np.float64)
        if self.A_inv is None:
            return 0
        return int(np.argmax(np.einsum("kij,kj->ki", self.A_inv, self.b) @ x))


class _RunArgs(Arguments):
    total_steps: PositiveInt


def run_bandit(env, agent, total_steps: int, seed: int | None = None) -> dict[str, Any]:
    """Step ``env`` for ``total_steps`` steps with ``agent``, resetting at episode ends.

    The first reset uses ``seed`` (which also clears a tabular env's Receiver
    memory); later resets keep the memory.  ``agent.update`` gets the step's
    ``info`` as a 4th argument.

    Returns:
        ``{"steps", "mean_reward", "mean_expected_reward"`` (``None`` if the
        env's info has no ``expected_reward``), ``"final_regret"`` (the last
        ``info["regret"]`` dict, or ``None`` without a RegretWrapper)``}``.
    """
    total_steps = check(_RunArgs, "run_bandit", total_steps=total_steps).total_steps
    obs, _ = env.reset(seed=seed)
    reward_sum, expected_sum, have_expected = 0.0, 0.0, True
    info: Mapping[str, Any] = {}
    for _ in range(int(total_steps)):
        action = agent.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        agent.update(obs, action, float(reward), info)
        reward_sum += float(reward)
        if have_expected and "expected_reward" in info:
            expected_sum += float(info["expected_reward"])
        else:
            have_expected = False
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    n = max(int(total_steps), 1)
    return {
        "steps": int(total_steps),
        "mean_reward": reward_sum / n,
        "mean_expected_reward": expected_sum / n if have_expected else None,
        "final_regret": dict(info["regret"]) if "regret" in info else None,
    }
