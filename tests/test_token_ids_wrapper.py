"""TokenIdsObservation: Text items -> fixed-length Box of GPT-2 token ids; SB3's check_env passes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401
from bpa_gym.errors import ConfigError
from bpa_gym.wrappers import TokenIdsObservation


@pytest.fixture(scope="module")
def gpt2_tokenizer(gpt2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gpt2_dir)


def test_tokenizes_and_pads(gpt2_tokenizer):
    env = TokenIdsObservation(gym.make("BayesPersuasion-Identity-v0"), gpt2_tokenizer, max_length=24)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and obs.shape == (24,)
    text = env.unwrapped.item.question
    ids = gpt2_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert env.lengths == len(ids)
    assert obs[: len(ids)].tolist() == ids
    assert (obs[len(ids):] == env.pad_token_id).all() and env.pad_token_id == gpt2_tokenizer.eos_token_id
    assert gpt2_tokenizer.decode(obs[: env.lengths]) == text


def test_truncation_sides(gpt2_tokenizer):
    base = gym.make("BayesPersuasion-Identity-v0")
    left = TokenIdsObservation(base, gpt2_tokenizer, max_length=3, truncation_side="left")
    obs, _ = left.reset(seed=0)
    ids = gpt2_tokenizer(left.unwrapped.item.question, add_special_tokens=False)["input_ids"]
    assert obs.tolist() == ids[-3:]
    right = TokenIdsObservation(gym.make("BayesPersuasion-Identity-v0"), gpt2_tokenizer, max_length=3,
                                truncation_side="right")
    obs, _ = right.reset(seed=0)
    assert obs.tolist() == ids[:3]


def test_loads_tokenizer_from_folder(gpt2_dir):
    env = TokenIdsObservation(gym.make("BayesPersuasion-Identity-v0"), gpt2_dir, max_length=16)
    assert env.observation_space.high.max() == 50256


def test_rejects_non_text_env(gpt2_tokenizer):
    with pytest.raises(ConfigError, match="Text observation"):
        TokenIdsObservation(TokenIdsObservation(gym.make("BayesPersuasion-Identity-v0"), gpt2_tokenizer), gpt2_tokenizer)


def test_sb3_check_env_on_wrapped_gsm8k(gpt2_tokenizer, shared_data_dir):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from bpa_gym.receivers import ScriptedReceiver

    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=ScriptedReceiver(lambda m: "The answer is 5."),
                   data_dir=shared_data_dir, subset_size=20)
    wrapped = TokenIdsObservation(env, gpt2_tokenizer, max_length=256)
    sb3_check_env(wrapped, warn=True)
    obs, _ = wrapped.reset(seed=1)
    assert obs.dtype == np.int64 and wrapped.lengths > 10
