"""SB3VecEnv: the full SB3 VecEnv interface over the native vector env, one Receiver batch per SB3 step, and
SB3 PPO learning BayesPersuasion-Identity-v0 through it (batches of 8 only)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401
from bpa_gym.envs.identity import IdentityReceiver
from bpa_gym.errors import ConfigError
from bpa_gym.integrations.sb3 import SB3VecEnv
from bpa_gym.wrappers.token_ids import TokenIdsObservation

IDENTITY = "BayesPersuasion-Identity-v0"


class CountingIdentityReceiver(IdentityReceiver):
    def __init__(self):
        self.batches: list[int] = []

    def generate(self, prompts):
        self.batches.append(len(prompts))
        return super().generate(prompts)


def _venv(n, gpt2_dir, receiver=None, **kwargs):
    native = gym.make_vec(IDENTITY, num_envs=n, vectorization_mode="vector_entry_point",
                          receiver=receiver or IdentityReceiver(), **kwargs)
    return SB3VecEnv(native, str(gpt2_dir), max_length=12)


def test_vecenv_interface(gpt2_dir):
    receiver = CountingIdentityReceiver()
    venv = _venv(4, gpt2_dir, receiver)
    venv.seed(5)
    obs = venv.reset()
    assert obs.shape == (4, 12) and obs.dtype == np.int64 and venv.observation_space.contains(obs[0])
    # the same encoding as the single-env TokenIdsObservation wrapper, seeded s + i
    for i in range(4):
        single = TokenIdsObservation(gym.make(IDENTITY), str(gpt2_dir), max_length=12)
        np.testing.assert_array_equal(single.reset(seed=5 + i)[0], obs[i])
    items = venv.venv.current_items
    key = venv.get_attr("task")[0].answer_key
    best = np.array([key[it.meta["topic"]] for it in items])
    new_obs, rewards, dones, infos = venv.step(best)
    assert rewards.tolist() == [1.0] * 4 and dones.all() and receiver.batches == [4]
    for i, info in enumerate(infos):
        assert info["item_id"] == items[i].id and info["correct"] is True and info["TimeLimit.truncated"] is False
        np.testing.assert_array_equal(info["terminal_observation"], obs[i])  # the item just played
    assert [ri["item_id"] for ri in venv.reset_infos] == [it.id for it in venv.venv.current_items]
    assert venv.get_attr("num_signals", indices=[0, 2]) == [4, 4]
    assert venv.env_method("signal_text", 1) == ["Strategy B"] * 4
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 4
    venv.set_attr("render_mode", None)
    with pytest.raises(ConfigError, match="share one env"):
        venv.set_attr("render_mode", None, indices=[0])
    venv.set_options({"item_index": [0, 1, 2, 3]})
    venv.reset()
    assert [it.id for it in venv.venv.current_items] == [f"identity/train/{i}" for i in range(4)]
    venv.close()


def test_refuses_non_vector_and_next_step(gpt2_dir):
    with pytest.raises(ConfigError, match="vector env"):
        SB3VecEnv(gym.make(IDENTITY), str(gpt2_dir))
    sync = gym.make_vec(IDENTITY, num_envs=2, vectorization_mode="sync")
    with pytest.raises(ConfigError, match="SAME_STEP"):
        SB3VecEnv(sync, str(gpt2_dir))


def test_ppo_learns_identity_with_batches_of_8(gpt2_dir, one_thread):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    receiver = CountingIdentityReceiver()
    # 3 topics over 4 strategies (chance 0.25): learnable from raw token ids in a few seconds of CPU
    venv = VecNormalize(_venv(8, gpt2_dir, receiver, num_topics=3), norm_obs=True, norm_reward=False)
    venv.seed(0)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=64, n_epochs=10, learning_rate=3e-3, ent_coef=0.0,
                seed=0, verbose=0)
    model.learn(8 * 16 * 12)
    assert receiver.batches and set(receiver.batches) == {8}  # one Receiver call of 8 per SB3 step
    learn_calls = len(receiver.batches)
    assert learn_calls == 16 * 12

    venv.training = False
    obs = venv.reset()
    rewards = []
    for _ in range(16):
        actions, _ = model.predict(obs, deterministic=True)
        obs, r, _, _ = venv.step(actions)
        rewards.extend(r.tolist())
    assert set(receiver.batches[learn_calls:]) == {8}
    mean = float(np.mean(rewards))
    assert mean >= 0.25 + 0.3, f"eval reward {mean:.3f} does not beat chance 0.25 by the margin"
