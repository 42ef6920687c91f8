"""Scheme mode: every action of the declared Box space is a valid step; standard agents train on it (item 11)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import bpa_gym  # noqa: F401  (registers the envs)
from bpa_gym.envs.tabular import TabularPersuasionEnv
from bpa_gym.persuasion import TabularGame, no_information_value


def test_zero_rows_are_uniform_rows():
    env = TabularPersuasionEnv(game="prosecutor")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros((2, 2), dtype=np.float32))  # the Box's corner: used to raise
    assert info["expected_reward"] == 0.0  # uniform rows reveal nothing: the judge acquits
    np.testing.assert_array_equal(env.scheme_of(np.array([[0.0, 0.0], [0.0, 0.3]])), [[0.5, 0.5], [0.0, 1.0]])
    assert env.unwrapped.game.sender_value(env.scheme_of(np.zeros((2, 2)))) == no_information_value(env.game)


@settings(max_examples=150, deadline=None)
@given(
    game_seed=st.sampled_from([0, 1, 2]),
    n_signals_extra=st.integers(0, 2),
    data=st.data(),
)
def test_every_action_in_the_box_is_a_valid_step(game_seed, n_signals_extra, data):
    game = TabularGame.random(game_seed, 3, 2)
    env = TabularPersuasionEnv(game=game, num_signals=2 + n_signals_extra)
    shape = env.action_space.shape
    # entries drawn to hit the space's corners: exact 0s (whole zero rows), exact 1s, subnormals
    action = data.draw(arrays(np.float32, shape, elements=st.sampled_from([0.0, 1.0, 1e-45, 0.5, 1e-7]) | st.floats(
        0.0, 1.0, width=32)))
    assert env.action_space.contains(action)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(action)
    scheme = env.scheme_of(action)
    np.testing.assert_allclose(scheme.sum(axis=1), 1.0)
    assert info["expected_reward"] == pytest.approx(game.sender_value(scheme), abs=1e-12)
    assert terminated and np.isfinite(reward)


def _scheme_value(model, env) -> float:
    action, _ = model.predict(0, deterministic=True)
    return env.unwrapped.game.sender_value(env.unwrapped.scheme_of(action))


@pytest.mark.parametrize("algo", ["PPO", "SAC"])
def test_sb3_trains_on_scheme_mode_and_beats_no_information(algo, one_thread):
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make("BayesPersuasion-Prosecutor-v0")  # Box(0, 1, (2, 2)) scheme actions, V* = 0.6, no info = 0
    # small budgets (seconds on a CPU); with these settings PPO seeds 0-3 and SAC seeds 0-2 all end at >= 0.3
    if algo == "PPO":
        model = sb3.PPO("MlpPolicy", env, n_steps=256, batch_size=64, learning_rate=3e-3, seed=0,
                        device="cpu").learn(2048)
    else:
        model = sb3.SAC("MlpPolicy", env, learning_starts=100, batch_size=64, learning_rate=1e-2, train_freq=2,
                        gamma=0.0, policy_kwargs=dict(net_arch=[32, 32]), seed=0, device="cpu").learn(1200)
    game = env.unwrapped.game
    value = _scheme_value(model, env)
    assert no_information_value(game) + 0.2 < value <= game.optimum.value + 1e-5
