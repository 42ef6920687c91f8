"""Oracle tables and RegretWrapper on LLM envs (scripted Receiver here; SmolLM2 in test_env_smollm2.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401
from bpa_gym.errors import ConfigError, OracleUnavailableError
from bpa_gym.oracle_table import OracleTable, OracleTableRegret, build_oracle_table
from bpa_gym.receivers import ScriptedReceiver
from bpa_gym.wrappers import RegretWrapper

LIBRARY = ["", "Work step by step.", "Check units."]


def step_hint_receiver(items):
    """Test double: right iff advised 'step by step', except on items with an odd index, which it always gets."""
    gold = {it.question: (i, it.gold) for i, it in enumerate(items)}

    def answer(messages):
        content = messages[-1]["content"]
        i, g = next(v for q, v in gold.items() if q in content)
        return f"The answer is {g}." if ("step by step" in content or i % 2) else "The answer is -1."

    return ScriptedReceiver(answer)


@pytest.fixture()
def env(shared_data_dir):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    items = GSM8KTask(data_dir=shared_data_dir).load("test")[:6]
    return gym.make("BayesPersuasion-GSM8K-v0", receiver=step_hint_receiver(items), data_dir=shared_data_dir,
                    subset_size=6, signal_library=LIBRARY)


def test_table_values_and_batching(env):
    table = build_oracle_table(env, batch_size=7)
    expected = np.array([[0, 1, 0], [1, 1, 1]] * 3, dtype=float)
    np.testing.assert_array_equal(table.rewards, expected)
    assert env.unwrapped.receiver.calls == [7, 7, 4]  # 18 plays in Receiver batches of 7
    assert table.best_fixed_signal == 1
    s = table.summary()
    assert s["per_item_best_mean"] == 1.0 and s["mean_reward_per_signal"] == [0.5, 1.0, 0.5]


def test_save_load_roundtrip_is_atomic(env, tmp_path):
    table = build_oracle_table(env)
    path = table.save(tmp_path / "sub" / "t.npz")
    loaded = OracleTable.load(path)
    assert loaded.item_ids == table.item_ids and loaded.signals == table.signals
    np.testing.assert_array_equal(loaded.rewards, table.rewards)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["t.npz"]  # no temp file left
    with pytest.raises(ConfigError, match="does not exist"):
        OracleTable.load(tmp_path / "missing.npz")


def test_regret_wrapper_on_llm_env(env, shared_data_dir):
    table = build_oracle_table(env)
    wrapped = RegretWrapper(gym.make("BayesPersuasion-GSM8K-v0", receiver=env.unwrapped.receiver,
                                     data_dir=shared_data_dir, subset_size=6, signal_library=LIBRARY,
                                     oracle_table=table))
    assert wrapped.oracle_name == "oracle table: per-item best signal" and wrapped.num_signals == 3
    total = 0.0
    for k in range(6):
        wrapped.reset(options={"item_index": k})
        _, r, *_, info = wrapped.step(0)  # silence: wrong on even items, right on odd ones
        total += 1.0 - r
        assert info["regret"]["instant"] == (1.0 if k % 2 == 0 else 0.0)
    assert info["regret"]["cumulative"] == total == 3.0

    best_fixed = RegretWrapper(env, oracle=OracleTableRegret(table, "best_fixed"))
    assert best_fixed.oracle_name == "oracle table: best fixed signal in hindsight"
    best_fixed.reset(options={"item_index": 1})
    assert best_fixed.step(2)[-1]["regret"]["instant"] == 0.0  # odd item: every signal is right
    best_fixed.reset(options={"item_index": 0})
    assert best_fixed.step(2)[-1]["regret"]["instant"] == 1.0  # the best fixed signal (1) was right here


def test_wrapper_refuses_without_oracle(env, shared_data_dir):
    with pytest.raises(OracleUnavailableError, match="oracle table"):
        RegretWrapper(env)
    text_env = gym.make("BayesPersuasion-GSM8K-v0", receiver=ScriptedReceiver(lambda m: ""),
                        data_dir=shared_data_dir, subset_size=2, signals="text")
    with pytest.raises(OracleUnavailableError, match="free-text"):
        RegretWrapper(text_env)
    with pytest.raises(ConfigError, match="discrete"):
        build_oracle_table(text_env)


def test_table_for_other_library_is_refused(env, shared_data_dir):
    table = build_oracle_table(env)
    with pytest.raises(ConfigError, match=r"signals: table's 3 signals vs env's 10"):
        gym.make("BayesPersuasion-GSM8K-v0", receiver=env.unwrapped.receiver, data_dir=shared_data_dir,
                 subset_size=6, oracle_table=table)  # default library, not LIBRARY
    # A table set on the env afterwards is checked when the oracle is asked for.
    other = gym.make("BayesPersuasion-GSM8K-v0", receiver=env.unwrapped.receiver, data_dir=shared_data_dir,
                     subset_size=6)
    other.unwrapped.oracle_table = table
    with pytest.raises(OracleUnavailableError, match="another setup"):
        RegretWrapper(other)


def test_nan_rewards_are_rejected():
    with pytest.raises(ConfigError, match="NaN"):
        OracleTable(("a",), ("", "x"), np.array([[np.nan, 1.0]]), "r")
