"""A real Receiver cut at its token limit: the env reports finish_reason="length" and parse_status="truncated".

Slow (real SmolLM2 generations).  Relies on the HF Receiver reporting
``Generation.finish_reason`` (``"length"`` when generation stopped at
``max_new_tokens``); eight new tokens are far too few for SmolLM2 to reach a
"The answer is N" line on a GSM8K question.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import bpa_gym  # noqa: F401

pytestmark = pytest.mark.slow


def test_smollm2_cut_at_eight_tokens_is_truncated(smollm2_dir, shared_data_dir):
    from bpa_gym.receivers import make_receiver

    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=make_receiver("smollm2", max_new_tokens=8),
                   data_dir=shared_data_dir, subset_size=4)
    cut = 0
    for index in range(4):
        env.reset(options={"item_index": index})
        _, reward, terminated, _, info = env.step(0)
        assert terminated and info["response"].strip()  # a real (short) generation
        if info["completion_tokens"] < 8:  # SmolLM2 sometimes answers tersely ("The answer is 2.") and stops
            assert info["finish_reason"] == "stop"
            continue
        cut += 1
        assert info["finish_reason"] == "length"
        if "answer" not in info["response"].lower():  # cut before any final-answer marker (e.g. "To solve ... to")
            assert info["parse_status"] == "truncated", info["response"]
            assert reward == 0.0 and info["extracted_answer"] is None and not info["correct"]
            assert "length limit" in info["parse_reason"]
    assert cut >= 2  # greedy SmolLM2 starts "To solve this problem, we need to" on most GSM8K items
