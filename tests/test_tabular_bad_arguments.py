"""Every bad argument of the tabular env, games, oracle and reference learners is a clear ConfigError (item 10)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401
from agents.bandits import UCB1, Exp3, LinUCB, ThompsonSampling, run_bandit
from agents.persuasion_learner import MyopicAgent, RobustPersuasionLearner, run_vectorised
from bpa_gym.envs.tabular import TabularPersuasionEnv
from bpa_gym.errors import ConfigError
from bpa_gym.oracles import ExactLPOracle
from bpa_gym.persuasion import TabularGame, normalize_scheme, optimal_scheme

NAN = float("nan")


@pytest.mark.parametrize("kwargs, match", [
    ({"game_seed": -1}, "game_seed = -1: must be an integer >= 0"),
    ({"game_seed": 1.5}, "game_seed = 1.5"),
    ({"game_seed": "abc"}, "game_seed = 'abc'"),
    ({"game_seed": NAN}, "game_seed = nan"),
    ({"n_states": 0}, "n_states = 0: must be an integer >= 2"),  # used to become 3 silently
    ({"n_actions": 1}, "n_actions = 1"),
    ({"n_states": True}, "n_states = True"),
    ({"num_signals": 2.5}, "num_signals = 2.5"),
    ({"num_signals": "3"}, "num_signals = '3'"),
    ({"episode_length": 0}, "episode_length = 0"),
    ({"pseudo_count": NAN}, "pseudo_count = nan"),
    ({"pseudo_count": 0}, "pseudo_count = 0"),
    ({"action": 1}, "action = 1"),
    ({"render_mode": "human"}, "render_mode = 'human'"),
    ({"game": "judge"}, "game must be"),
    ({"prior": [0.5, 0.5], "receiver_utility": [[1, 0], [0]], "sender_utility": np.eye(2)}, "ragged"),
    ({"prior": [0.5, 0.5], "receiver_utility": np.eye(2) * 1j, "sender_utility": np.eye(2)}, "complex"),
    ({"prior": "ab", "receiver_utility": np.eye(2), "sender_utility": np.eye(2)}, "prior must be a rectangular"),
])
def test_bad_env_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        gym.make("BayesPersuasion-Tabular-v0", **kwargs)


def test_several_bad_arguments_in_one_message():
    with pytest.raises(ConfigError, match=r"(?s)game_seed = -1.*num_signals = 2.5"):
        TabularPersuasionEnv(game_seed=-1, num_signals=2.5)


@pytest.mark.parametrize("mode, action, match", [
    ("signal", float("inf"), "signal action must be an integer"),
    ("signal", NAN, "signal action must be an integer"),
    ("signal", 1.5, "signal action must be an integer"),
    ("signal", True, "signal action must be an integer"),
    ("signal", "1", "signal action must be an integer"),
    ("signal", [1], "signal action must be an integer"),
    ("scheme", [[1, 0], [1]], "ragged"),
    ("scheme", np.eye(2) + 0j, "complex"),
    ("scheme", [["a", "b"], ["c", "d"]], "non-numeric"),
    ("scheme", np.eye(3), "shape"),
])
def test_bad_actions(mode, action, match):
    env = TabularPersuasionEnv(game="prosecutor", action=mode)
    env.reset(seed=0)
    with pytest.raises(ConfigError, match=match):
        env.step(action)


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": -1}, "seed = -1"),
    ({"seed": 1.5}, "seed = 1.5"),
    ({"seed": "abc"}, "seed = 'abc'"),
    ({"seed": NAN}, "seed = nan"),
    ({"options": "x"}, "options must be a dict"),
    ({"options": {"clear_history": "yes"}}, "clear_history"),
    ({"options": {"clear": True}}, "unknown reset option"),
])
def test_bad_reset_arguments(kwargs, match):
    env = TabularPersuasionEnv(game="prosecutor")
    with pytest.raises(ConfigError, match=match):
        env.reset(**kwargs)


@pytest.mark.parametrize("call, match", [
    (lambda: TabularGame.random(seed=-1), "seed = -1"),
    (lambda: TabularGame.random(n_states=0), "n_states = 0"),
    (lambda: normalize_scheme([[1, 2], [3]], 2), "ragged"),
    (lambda: normalize_scheme([[1 + 1j, 0], [0, 1]], 2), "complex"),
    (lambda: optimal_scheme([0.5, 0.5], np.eye(2), np.eye(2), margin=NAN), "margin = nan"),
    (lambda: TabularGame.prosecutor().sample_many(np.eye(2), np.random.default_rng(0), size=0), "size >= 1"),
    (lambda: TabularGame.prosecutor().sample_many(np.eye(2), np.random.default_rng(0), size=2.5), "size = 2.5"),
    (lambda: ExactLPOracle(TabularGame.prosecutor(), mode="signals"), "mode = 'signals'"),
    (lambda: ExactLPOracle(TabularGame.prosecutor(), num_signals=1), "num_signals must be >= n_actions"),
    (lambda: UCB1(0), "n_actions = 0"),
    (lambda: UCB1(2, seed=-1), "seed = -1"),
    (lambda: ThompsonSampling(2, likelihood="poisson"), "likelihood = 'poisson'"),
    (lambda: Exp3(2, gamma=0), "gamma = 0"),
    (lambda: LinUCB(2, n_contexts=2.5), "n_contexts = 2.5"),
    (lambda: LinUCB(2), "needs features"),
    (lambda: UCB1(2, context_key="state"), "context_key must be a function"),
    (lambda: RobustPersuasionLearner(np.eye(2), np.eye(2), update_ratio=-1), "update_ratio = -1"),
    (lambda: RobustPersuasionLearner([[1, 0], [0]], np.eye(2)), "ragged"),
    (lambda: MyopicAgent([[1, 2], [3]]), "ragged"),
    (lambda: run_vectorised(TabularGame.prosecutor(), RobustPersuasionLearner(np.eye(2), np.eye(2)), 2.5),
     "total_steps = 2.5"),
    (lambda: run_bandit(TabularPersuasionEnv(game="prosecutor", action="signal"), UCB1(2), 0), "total_steps = 0"),
])
def test_bad_arguments_elsewhere(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
