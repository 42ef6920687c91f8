"""The tabular Gymnasium envs: API conformance, validation, seeding, learning Receiver, vector path."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import bpa_gym  # noqa: F401  (registers the envs)
from bpa_gym.envs.tabular import TabularPersuasionEnv
from bpa_gym.errors import ConfigError
from bpa_gym.persuasion import TabularGame

INFO_KEYS = {"state", "signal", "receiver_action", "posterior", "expected_reward"}


@pytest.mark.parametrize("env_id", ["BayesPersuasion-Prosecutor-v0", "BayesPersuasion-Tabular-v0"])
@pytest.mark.parametrize("mode", ["scheme", "signal"])
def test_check_env_both_modes(env_id, mode):
    env = gym.make(env_id, action=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec for alternative render modes" only
        check_env(env.unwrapped)
    assert env.unwrapped.num_signals == env.unwrapped.game.n_actions
    obs, _ = env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(env.action_space.sample())
    assert set(info) == INFO_KEYS and terminated and not truncated


def test_check_env_longer_episodes_and_extra_signals():
    env = TabularPersuasionEnv(game_seed=5, n_states=4, n_actions=3, num_signals=5, episode_length=3, action="signal")
    check_env(env, skip_render_check=True)
    assert env.num_signals == 5 and env.action_space.n == 5
    env.reset(seed=1)
    assert [env.step(0)[2] for _ in range(3)] == [False, False, True]


def test_spaces():
    env = gym.make("BayesPersuasion-Tabular-v0", game_seed=1, n_states=5, n_actions=4)
    assert env.action_space.shape == (5, 4) and env.observation_space.n == 1
    env = gym.make("BayesPersuasion-Tabular-v0", game_seed=1, n_states=5, n_actions=4, action="signal")
    assert env.action_space.n == 4 and env.observation_space.n == 5


@pytest.mark.parametrize(
    "row, match", [([-0.1, 1.1], "negative"), ([np.inf, 1.0], "non-finite"), ([np.nan, 1.0], "non-finite")]
)
def test_invalid_scheme_row_raises(row, match):  # outside Box(0, 1): never silently repaired
    env = TabularPersuasionEnv(game="prosecutor")
    env.reset(seed=0)
    with pytest.raises(ConfigError, match=match):
        env.step(np.array([row, [0.0, 1.0]]))
    with pytest.raises(ConfigError, match="shape"):
        env.step(np.ones((3, 2)))


def test_scheme_rows_are_normalised():
    env = TabularPersuasionEnv(game="prosecutor")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([[4.0, 3.0], [0.0, 2.0]]))  # = the optimum up to scale
    assert info["expected_reward"] == pytest.approx(0.6)


def test_bad_kwargs_and_actions():
    with pytest.raises(ConfigError, match=r"n_signal = 3: unknown argument; known: .*num_signals"):
        gym.make("BayesPersuasion-Tabular-v0", n_signal=3)
    with pytest.raises(ConfigError, match="either game= or"):
        gym.make("BayesPersuasion-Prosecutor-v0", prior=[0.5, 0.5])
    with pytest.raises(ConfigError, match="missing"):
        TabularPersuasionEnv(prior=[0.5, 0.5], receiver_utility=np.eye(2))
    with pytest.raises(ConfigError, match="action = .signals.: must be .scheme. or .signal."):
        TabularPersuasionEnv(action="signals")
    with pytest.raises(ConfigError, match="num_signals must be"):
        TabularPersuasionEnv(game="prosecutor", num_signals=1)
    env = TabularPersuasionEnv(game="prosecutor", action="signal")
    with pytest.raises(ConfigError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="0..1"):
        env.step(2)
    with pytest.raises(ConfigError, match="clear_history"):
        env.reset(options={"clear": True})


def test_explicit_game_kwargs():
    g = TabularGame.prosecutor()
    env = gym.make("BayesPersuasion-Tabular-v0", prior=g.prior, receiver_utility=g.receiver_utility,
                   sender_utility=g.sender_utility)
    assert env.unwrapped.game.optimum.value == pytest.approx(0.6)


def _rollout(env, n, seed, policy):
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(n):
        obs, r, term, trunc, info = env.step(policy(obs))
        out.append((obs, r, info["state"], info["signal"], info["receiver_action"]))
        if term or trunc:
            obs, _ = env.reset()
    return out


@pytest.mark.parametrize("mode", ["scheme", "signal"])
def test_reproducible_with_seeds(mode):
    game = TabularGame.random(5, 3, 3)
    policy = (lambda obs: game.optimum.scheme) if mode == "scheme" else (lambda obs: int(obs) % 3)
    a = _rollout(TabularPersuasionEnv(game=game, action=mode), 300, 11, policy)
    b = _rollout(TabularPersuasionEnv(game=game, action=mode), 300, 11, policy)
    c = _rollout(TabularPersuasionEnv(game=game, action=mode), 300, 12, policy)
    assert a == b
    assert a != c


def test_receiver_memory_persists_until_cleared():
    env = TabularPersuasionEnv(game="prosecutor", action="signal")
    env.reset(seed=0)
    for _ in range(50):
        env.step(1)
        env.reset()
    assert env.receiver_counts.sum() == 50
    env.reset(options={"clear_history": True})
    assert env.receiver_counts.sum() == 0
    env.step(1)
    env.reset(seed=3)  # a seeded reset clears too
    assert env.receiver_counts.sum() == 0


def test_myopic_lying_fails_in_signal_mode():
    env = TabularPersuasionEnv(game="prosecutor", action="signal")
    env.reset(seed=0)
    rewards = []
    for _ in range(2000):
        _, r, _, _, info = env.step(1)  # always "convict"
        rewards.append(r)
        env.reset()
    assert np.mean(rewards) < 0.1  # far below the optimum 0.6
    assert np.mean(rewards[-1000:]) == 0.0  # the judge has learned the signal is worthless
    np.testing.assert_allclose(info["posterior"], [0.7, 0.3], atol=0.01)


def test_honest_near_optimal_signalling_persuades_in_signal_mode():
    # Signals drawn from a scheme with slack (convict 40% of innocents, not the boundary 3/7) teach the
    # Receiver to obey: value 0.3 + 0.7 * 0.4 = 0.58.  (At exactly 3/7 the judge is indifferent and the
    # Laplace-smoothed estimate tips him to acquit: the exact optimum is only reachable in the limit.)
    game = TabularGame.prosecutor()
    env = TabularPersuasionEnv(game=game, action="signal")
    rng = np.random.default_rng(123)  # not the env's seed: same seed = same uniforms = correlated draws
    obs, _ = env.reset(seed=0)
    rewards = []
    for _ in range(5000):
        sig = int(rng.random() < (0.4 if obs == 0 else 1.0))
        _, r, _, _, _ = env.step(sig)
        rewards.append(r)
        obs, _ = env.reset()
    assert np.mean(rewards[-2000:]) == pytest.approx(0.58, abs=0.04)


def test_vector_path_agrees_with_scalar_env():
    game = TabularGame.random(9, 3, 3)
    scheme = np.random.default_rng(1).random((3, 3))
    n = 20_000
    env = TabularPersuasionEnv(game=game)
    env.reset(seed=0)
    scalar = np.array([env.step(scheme)[1] for _ in range(n) if env.reset() is not None])
    env.reset(seed=0)
    _, _, _, _, info = env.step(scheme)
    batch = game.sample_many(scheme, np.random.default_rng(2), size=n)
    batch_many = game.sample_many(np.broadcast_to(scheme, (n, 3, 3)), np.random.default_rng(3))
    assert batch.expected_rewards[0] == pytest.approx(info["expected_reward"], abs=1e-12)
    assert batch_many.expected_rewards[0] == pytest.approx(info["expected_reward"], abs=1e-12)
    se = np.sqrt(scalar.var() / n + batch.rewards.var() / n)
    assert abs(scalar.mean() - batch.rewards.mean()) < 5 * se
    assert abs(batch_many.rewards.mean() - batch.rewards.mean()) < 5 * se
    # state and signal frequencies agree too
    s_env, s_vec = np.zeros(3), np.bincount(batch.states, minlength=3) / n
    env.reset(seed=5)
    for _ in range(n):
        s_env[env.step(scheme)[4]["state"]] += 1
        env.reset()
    np.testing.assert_allclose(s_env / n, s_vec, atol=0.02)
    np.testing.assert_allclose(s_vec, game.prior, atol=0.02)
