"""BayesPersuasion-GSM8K-v0 against the real SmolLM2 Receiver: both signal modes, check_env, oracle table.

Slow: every step is a real generation (kept short with max_new_tokens).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import bpa_gym
from bpa_gym.envs.llm import STEP_INFO_KEYS
from bpa_gym.oracle_table import build_oracle_table
from bpa_gym.wrappers import RegretWrapper

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    from bpa_gym.receivers import make_receiver

    return make_receiver("smollm2", max_new_tokens=24)


@pytest.mark.parametrize("mode", ["discrete", "text"])
def test_steps_with_a_real_answer_and_passes_check_env(smollm2, shared_data_dir, mode):
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=smollm2, data_dir=shared_data_dir, subset_size=8,
                   signals=mode)
    obs, _ = env.reset(seed=0)
    action = 9 if mode == "discrete" else "Compute step by step, then write: The answer is N."
    obs2, reward, terminated, truncated, info = env.step(action)
    assert set(info) == set(STEP_INFO_KEYS) and terminated and not truncated
    assert info["response"].strip()  # a real generation
    assert info["completion_tokens"] > 0 and info["prompt_tokens"] > 20 and info["latency_s"] > 0
    # The reward is the scorer's verdict on that very answer.
    from bpa_gym.tasks.gsm8k import is_correct

    # (a response cut at max_new_tokens before an explicit answer is "truncated": reward 0, whatever it says)
    truncated = info["parse_status"] == "truncated"
    assert reward == (0.0 if truncated else float(is_correct(info["response"], info["gold"])))
    assert info["parse_status"] in ("ok", "unparseable", "truncated")
    check_env(env.unwrapped)
    # The spec is nondeterministic only for latency (wall-clock); the rest replays exactly from the seed.
    assert env.spec.nondeterministic

    def replay():
        env.reset(seed=5)
        return env.step(action)

    (o1, r1, *_, i1), (o2, r2, *_, i2) = replay(), replay()
    assert (o1, r1, i1["response"], i1["item_id"]) == (o2, r2, i2["response"], i2["item_id"])


def test_spec_string_builds_smollm2(shared_data_dir):
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver="smollm2", data_dir=shared_data_dir, subset_size=2,
                   receiver_kwargs={"max_new_tokens": 8})
    assert env.unwrapped.receiver.name == "smollm2"
    env.reset(seed=0)
    assert env.step(0)[-1]["completion_tokens"] <= 8


def test_signal_changes_the_answer(smollm2, shared_data_dir):
    """The Receiver is sensitive to the signal: the same item gets different answers under different signals."""
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=smollm2, data_dir=shared_data_dir, subset_size=2)
    items = list(env.unwrapped.items[:2]) * 2
    signals = ["", "", bpa_gym.MATH_SIGNALS[9], bpa_gym.MATH_SIGNALS[9]]
    responses = [o.response for o in env.unwrapped.game.play(items, signals)]
    assert responses[:2] != responses[2:]
    # Greedy decoding: the same batch gives the same answers.
    assert [o.response for o in env.unwrapped.game.play(items, signals)] == responses


def test_oracle_table_and_regret_with_smollm2(smollm2, shared_data_dir):
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=smollm2, data_dir=shared_data_dir, subset_size=2,
                   signal_library=["", bpa_gym.MATH_SIGNALS[1], bpa_gym.MATH_SIGNALS[9]])
    table = build_oracle_table(env, batch_size=6)
    assert table.rewards.shape == (2, 3) and set(np.unique(table.rewards)) <= {0.0, 1.0}
    env.unwrapped.oracle_table = table
    wrapped = RegretWrapper(env)
    wrapped.reset(options={"item_index": 0})
    _, reward, *_, info = wrapped.step(1)
    # Greedy decoding makes the step's reward the table's entry, so regret is exact.
    assert reward == table.rewards[0, 1]
    assert info["regret"]["instant"] == table.rewards[0].max() - table.rewards[0, 1]
