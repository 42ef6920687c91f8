"""Reference learners: bandits find the best arm; the Zu-Iyer-Xu learner persuades with sublinear regret."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401
from agents.bandits import UCB1, Exp3, LinUCB, ThompsonSampling, run_bandit
from agents.persuasion_learner import MyopicAgent, RobustPersuasionLearner, robust_scheme, run_vectorised
from bpa_gym.envs.tabular import TabularPersuasionEnv
from bpa_gym.errors import ConfigError
from bpa_gym.persuasion import TabularGame
from bpa_gym.wrappers.regret import RegretWrapper, regret_bound


class BernoulliBandit(gym.Env):
    """Two contexts; arm means differ per context, so the best arm is context-dependent."""

    MEANS = np.array([[0.2, 0.5, 0.8], [0.7, 0.3, 0.1]])
    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.ctx = int(self.np_random.integers(2))
        return self.ctx, {}

    def step(self, action):
        p = self.MEANS[self.ctx, action]
        r = float(self.np_random.random() < p)
        return self.ctx, r, True, False, {"expected_reward": p}


AGENTS = {
    "ucb1": lambda: UCB1(3, seed=0),
    "ts": lambda: ThompsonSampling(3, seed=0),
    "ts-gauss": lambda: ThompsonSampling(3, likelihood="gaussian", seed=0),
    "exp3": lambda: Exp3(3, horizon=2000, seed=0),
    "linucb": lambda: LinUCB(3, n_contexts=2, alpha=1.0, seed=0),  # alpha >= the best mean, else it can lock in
}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_bandits_find_the_best_arm(name):
    agent = AGENTS[name]()
    stats = run_bandit(BernoulliBandit(), agent, total_steps=4000, seed=1)
    assert agent.greedy(0) == 2 and agent.greedy(1) == 0
    best = BernoulliBandit.MEANS.max(axis=1).mean()  # 0.75
    assert stats["mean_expected_reward"] > best - 0.1
    assert stats["final_regret"] is None  # unwrapped env


def test_run_bandit_reports_regret_on_tabular_env():
    env = RegretWrapper(TabularPersuasionEnv(game="prosecutor", action="signal"))
    stats = run_bandit(env, UCB1(2, seed=0), total_steps=500, seed=0)
    assert stats["final_regret"]["t"] == 500
    assert stats["final_regret"]["cumulative"] == pytest.approx(env.cumulative_regret)


def test_exp3_samples_its_distribution():
    agent = Exp3(3, gamma=1.0, seed=0)  # gamma = 1: uniform
    counts = np.bincount([agent.act(0) for _ in range(3000)], minlength=3)
    np.testing.assert_allclose(counts / 3000, 1 / 3, atol=0.04)


def test_bandit_rejects_out_of_range_rewards():
    with pytest.raises(ConfigError, match="gaussian"):
        ThompsonSampling(2).update(0, 0, 2.0)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        Exp3(2).update(0, 0, -1.0)


def test_robust_scheme_is_robustly_obedient():
    g = TabularGame.random(3, 3, 3)
    mu_hat = np.array([0.3, 0.3, 0.4])
    s = robust_scheme(mu_hat, 0.2, g.receiver_utility, g.sender_utility)
    rng = np.random.default_rng(0)
    for _ in range(300):  # random priors within L1 distance 0.2 of mu_hat: the Receiver obeys each signal
        d = rng.normal(size=3)
        d -= d.mean()
        mu = mu_hat + 0.2 * rng.random() * d / np.abs(d).sum()
        if mu.min() < 0:
            continue
        joint = mu[:, None] * s
        for a in range(3):
            if joint[:, a].sum() > 1e-9:
                u = joint[:, a] @ g.receiver_utility
                assert u[a] >= u.max() - 1e-7
    # the radius 0 case is the plain optimum
    exact = robust_scheme(g.prior, 0.0, g.receiver_utility, g.sender_utility)
    assert g.sender_value(exact) == pytest.approx(g.optimum.value, abs=1e-6)


def test_persuasion_learner_on_prosecutor_gym_env():
    env = RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0", action="scheme"))
    learner = RobustPersuasionLearner.from_env(env)
    checkpoints = {}
    obs, _ = env.reset(seed=0)
    expected = []
    for t in range(1, 4001):
        scheme = learner.act(obs)
        obs, r, term, trunc, info = env.step(scheme)
        learner.update(obs, scheme, r, info)
        expected.append(info["expected_reward"])
        if t in (1000, 2000, 3000, 4000):
            checkpoints[t] = info["regret"]["cumulative"]
        if term or trunc:
            obs, _ = env.reset()
    late = np.mean(expected[-1000:])
    assert 0.5 < late <= 0.6 + 1e-9  # approaching the optimum 0.6
    assert late > np.mean(expected[:200])  # and improving
    # sublinear: the average regret shrinks, and R_T is below the c = 1 bound
    # (lasting sqrt(T log T) growth is checked over 200k steps in the vectorised test below)
    c = checkpoints
    assert c[4000] - c[3000] < c[2000] - c[1000] < c[1000]  # each 1000 steps cost less than the previous
    assert c[4000] / 4000 < 0.9 * c[1000] / 1000
    assert 0 < checkpoints[4000] < regret_bound(4000, 2)
    assert learner.n == 4000 and learner.n_solves < 150  # lazy updates


def test_vectorised_learner_matches_gym_loop_in_distribution():
    # The same learner, stepped through gymnasium + RegretWrapper and on the numpy path: same lazy-update
    # schedule, and the same regret and reward up to sampling noise (independent seeds on each side).
    g = TabularGame.prosecutor()
    T, seeds = 4000, range(4)
    gym_R, gym_r, vec_R, vec_r = [], [], [], []
    for s in seeds:
        env = RegretWrapper(TabularPersuasionEnv(game=g, action="scheme"))
        learner = RobustPersuasionLearner.from_env(env)
        stats = run_bandit(env, learner, total_steps=T, seed=s)
        gym_R.append(stats["final_regret"]["cumulative"])
        gym_r.append(stats["mean_reward"])
        vec_learner = RobustPersuasionLearner(g.receiver_utility, g.sender_utility)
        out = run_vectorised(g, vec_learner, T, seed=100 + s)
        vec_R.append(out["cumulative_regret"][-1])
        vec_r.append(out["mean_reward"])
        assert out["n_solves"] == learner.n_solves == vec_learner.n_solves
        assert out["cumulative_regret"].shape == (T,)
    se = np.sqrt(np.var(gym_R, ddof=1) / len(seeds) + np.var(vec_R, ddof=1) / len(seeds))
    assert abs(np.mean(gym_R) - np.mean(vec_R)) < 4 * se + 0.05 * np.mean(gym_R)
    assert np.mean(gym_r) == pytest.approx(np.mean(vec_r), abs=0.02)


def test_vectorised_learner_regret_is_sublinear():
    g = TabularGame.prosecutor()
    out = run_vectorised(g, RobustPersuasionLearner(g.receiver_utility, g.sender_utility), 200_000, seed=1)
    R = out["cumulative_regret"]
    # sqrt(T log T) growth: quadrupling T roughly doubles R_T (far from linear)
    assert R[-1] / R[50_000 - 1] < 2.6
    assert R[-1] < regret_bound(200_000, 2)
    assert out["mean_reward"] == pytest.approx(0.6 - R[-1] / 200_000, abs=0.01)


def test_myopic_agent_fails_in_signal_mode():
    env = RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0", action="signal"))
    agent = MyopicAgent.from_env(env)
    assert agent.act(0) == 1 and agent.act(1) == 1  # always "convict"
    stats = run_bandit(env, agent, total_steps=3000, seed=0)
    assert stats["mean_reward"] < 0.1
    assert stats["final_regret"]["cumulative"] / 3000 > 0.5
