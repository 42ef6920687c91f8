"""Signal mode (learning Receiver): the knife edge, the value of persuasion, and the margin learner (item 12)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401
from agents.bandits import UCB1, run_bandit
from agents.persuasion_learner import MarginSignalLearner
from bpa_gym.envs.tabular import TabularPersuasionEnv
from bpa_gym.errors import ConfigError
from bpa_gym.persuasion import TabularGame, no_information_value, optimal_scheme, value_of_persuasion
from bpa_gym.wrappers import RegretWrapper


def _play(env, act, n, seed=0):
    """Signal-mode rollout; returns per-step expected rewards and cumulative regrets."""
    obs, _ = env.reset(seed=seed)
    rewards, regret = [], []
    for _ in range(n):
        a = act(obs)
        obs, r, term, trunc, info = env.step(a)
        rewards.append(info["expected_reward"])
        regret.append(info["regret"]["cumulative"])
        if term or trunc:
            obs, _ = env.reset()
    return np.array(rewards), np.array(regret)


def test_exact_optimum_is_a_knife_edge_for_the_learning_receiver():
    # Signals sampled from the exact optimum: the estimated posterior of "convict" wanders around the judge's
    # threshold 0.5, so what the Sender earns depends on the luck of the draw, on average far below V* = 0.6.
    game = TabularGame.prosecutor()
    scheme = game.optimum.scheme
    late = []
    for seed in range(6):
        env = RegretWrapper(TabularPersuasionEnv(game=game, action="signal"))
        rng = np.random.default_rng(100 + seed)  # not the env's seed (same uniforms would correlate draws)
        rewards, _ = _play(env, lambda s: int(rng.random() < scheme[int(s), 1]), 3000, seed=seed)
        late.append(rewards[-1500:].mean())
    assert np.mean(late) < game.optimum.value - 0.15
    assert min(late) < 0.2 and max(late) > 0.5


def test_margin_learner_has_sublinear_regret_where_myopic_bandits_are_linear():
    env = RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0", action="signal"))
    learner = MarginSignalLearner.from_env(env, seed=0)
    n = 8000
    obs, _ = env.reset(seed=1)
    rewards, regret = [], []
    for _ in range(n):
        a = learner.act(obs)
        obs2, r, term, trunc, info = env.step(a)
        learner.update(obs, a, r, info)
        rewards.append(info["expected_reward"])
        regret.append(info["regret"]["cumulative"])
        obs = env.reset()[0] if term or trunc else obs2
    rewards, regret = np.array(rewards), np.array(regret)
    assert rewards[-2000:].mean() > 0.5  # close to V* = 0.6
    # doubling T from n/2 to n adds less than 3/4 of R_{n/2} (linear growth would add all of it)
    assert regret[-1] - regret[n // 2 - 1] < 0.75 * regret[n // 2 - 1]
    assert learner.current_margin < 0.05 and learner.n_solves < 150
    # a myopic bandit in the same env: the Receiver learns to ignore it, regret grows linearly
    ucb = run_bandit(RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0", action="signal")), UCB1(2, seed=7),
                     total_steps=n, seed=1)
    assert ucb["mean_reward"] < 0.05 and ucb["final_regret"]["cumulative"] > 10 * regret[-1]


def test_margin_schemes_keep_the_margin_and_cost_little():
    game = TabularGame.random(seed=189, n_states=3, n_actions=4)
    values = []
    for margin in (0.0, 0.01, 0.05):
        opt = optimal_scheme(game.prior, game.receiver_utility, game.sender_utility, margin=margin)
        values.append(opt.value)
        post = opt.scheme.T * game.prior  # joint by signal
        for a in np.flatnonzero(post.sum(axis=1) > 0):
            q = post[a] / post[a].sum()
            u = q @ game.receiver_utility
            spread = np.ptp(game.receiver_utility, axis=1).max()
            assert u[a] - np.delete(u, a).max() >= margin * spread - 1e-9
    assert values[0] >= values[1] >= values[2] > values[0] - 0.1
    with pytest.raises(ConfigError, match="margin"):
        optimal_scheme(game.prior, game.receiver_utility, game.sender_utility, margin=0.99)


def test_value_of_persuasion_and_trivial_game_warning():
    env = gym.make("BayesPersuasion-Prosecutor-v0", action="signal")
    assert env.unwrapped.value_of_persuasion == pytest.approx(0.6)
    with pytest.warns(UserWarning, match="game_seed=3 is trivial"):
        env = TabularPersuasionEnv(game_seed=3, action="signal")
    g = env.game
    assert value_of_persuasion(g) == pytest.approx(g.optimum.value - no_information_value(g))
    assert env.value_of_persuasion < 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TabularPersuasionEnv(game_seed=0)  # a game worth learning: no warning


@pytest.mark.parametrize("kwargs, match", [
    ({"margin_scale": 0}, "margin_scale = 0"),
    ({"seed": -1}, "seed = -1"),
    ({"update_ratio": float("nan")}, "update_ratio = nan"),
    ({"num_signals": 1}, "num_signals must be >= n_actions"),
])
def test_margin_learner_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MarginSignalLearner(TabularGame.prosecutor(), **kwargs)
