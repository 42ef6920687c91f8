"""VectorRegretWrapper: cumulative pseudo-regret over every sub-env play equals the single-env RegretWrapper's
instants summed over the same plays, in SAME_STEP (native LLM vector env) and NEXT_STEP (sync tabular) modes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import bpa_gym  # noqa: F401
from bpa_gym.errors import ConfigError, OracleUnavailableError
from bpa_gym.receivers import ScriptedReceiver
from bpa_gym.wrappers.regret import RegretWrapper, regret_bound
from bpa_gym.wrappers.vector_regret import VECTOR_TB_TAGS, VectorRegretWrapper

IDENTITY = "BayesPersuasion-Identity-v0"


def test_native_identity_regret_equals_single_env_wrappers():
    n, steps = 4, 6
    native = VectorRegretWrapper(gym.make_vec(IDENTITY, num_envs=n, vectorization_mode="vector_entry_point"))
    sync = gym.make_vec(IDENTITY, num_envs=n, vectorization_mode="sync", wrappers=[RegretWrapper],
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    native.reset(seed=11)
    sync.reset(seed=11)
    rng = np.random.default_rng(0)
    expected = 0.0
    for k in range(steps):
        actions = rng.integers(4, size=n)
        info = native.step(actions)[-1]
        info_s = sync.step(actions)[-1]
        instants = info_s["final_info"]["regret"]["instant"]
        np.testing.assert_array_equal(info["regret"]["instant"], instants)
        expected += float(instants.sum())
        assert info["regret"]["t"] == n * (k + 1)
        assert info["regret"]["cumulative"] == pytest.approx(expected)
        assert info["regret"]["bound"] == regret_bound(n * (k + 1), 4)
    assert expected > 0  # random play on a known-optimum env has regret
    native.reset_regret()
    assert native.regret_info()["t"] == 0 and native.regret_info()["instant"].tolist() == [0.0] * n


def test_optimal_play_has_zero_regret():
    venv = VectorRegretWrapper(gym.make_vec(IDENTITY, num_envs=5, vectorization_mode="vector_entry_point"))
    venv.reset(seed=0)
    key = venv.unwrapped.task.answer_key
    for _ in range(4):
        best = [key[it.meta["topic"]] for it in venv.unwrapped.current_items]
        info = venv.step(best)[-1]
    assert info["regret"]["t"] == 20 and info["regret"]["cumulative"] == 0.0


def test_next_step_mode_counts_only_plays_tabular():
    """SyncVectorEnv's default NEXT_STEP: the reset steps after an episode's end are not plays."""
    n = 3
    venv = VectorRegretWrapper(gym.make_vec("BayesPersuasion-Prosecutor-v0", num_envs=n, vectorization_mode="sync",
                                            action="scheme"))
    single = [RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0", action="scheme")) for _ in range(n)]
    venv.reset(seed=0)
    for i, e in enumerate(single):
        e.reset(seed=i)
    length = venv.unwrapped.envs[0].unwrapped.episode_length
    rng = np.random.default_rng(1)
    plays = 0
    done = np.zeros(n, dtype=bool)
    expected = 0.0
    for _ in range(2 * length + 2):
        actions = rng.uniform(0.05, 1, size=(n, 2, 2))
        _, _, term, trunc, info = venv.step(actions)
        for i in range(n):
            if done[i]:
                single[i].reset()
                continue
            expected += single[i].step(actions[i])[-1]["regret"]["instant"]
            plays += 1
        done = term | trunc
        assert info["regret"]["t"] == plays
        assert info["regret"]["cumulative"] == pytest.approx(expected)


def test_tensorboard_scalars_written(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    venv = VectorRegretWrapper(gym.make_vec(IDENTITY, num_envs=4, vectorization_mode="vector_entry_point"),
                               log_dir=tmp_path, log_every=8)
    venv.reset(seed=0)
    for _ in range(5):
        venv.step([0, 1, 2, 3])
    venv.close()
    acc = EventAccumulator(str(tmp_path)).Reload()
    assert set(VECTOR_TB_TAGS) <= set(acc.Tags()["scalars"])
    steps = [e.step for e in acc.Scalars("regret/cumulative")]
    assert steps == [4, 8, 16, 20]  # first step, each multiple of 8 passed, close
    assert acc.Scalars("regret/cumulative")[-1].value == pytest.approx(venv.cumulative_regret)


def test_errors(shared_data_dir):
    venv = gym.make_vec(IDENTITY, num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(ConfigError, match="bound_constant"):
        VectorRegretWrapper(venv, bound_constant=0)
    with pytest.raises(ConfigError, match="log_every"):
        VectorRegretWrapper(venv, log_every=2.5)
    with pytest.raises(ConfigError, match="RegretOracle"):
        VectorRegretWrapper(venv, oracle=object())
    gsm = gym.make_vec("BayesPersuasion-GSM8K-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       receiver=ScriptedReceiver(lambda m: "0"), data_dir=shared_data_dir, subset_size=3)
    with pytest.raises(OracleUnavailableError, match="no oracle table"):
        VectorRegretWrapper(gsm)
