"""The native vector env (``vectorization_mode="vector_entry_point"``): one Receiver batch per step, and exactly
the values and info layout of Gymnasium's SyncVectorEnv (SAME_STEP autoreset) over the single env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

import bpa_gym  # noqa: F401  (registers envs)
from bpa_gym.envs.llm import STEP_INFO_KEYS, ItemOrder
from bpa_gym.envs.llm_vector import BayesPersuasionLLMVectorEnv, IdentityVectorEnv
from bpa_gym.errors import ConfigError, ReceiverError
from bpa_gym.types import Generation

IDENTITY = "BayesPersuasion-Identity-v0"
GSM8K = "BayesPersuasion-GSM8K-v0"


class CountingReceiver:
    """Answers GSM8K items right iff advised 'step by step'; records every batch size."""

    name = "counting"

    def __init__(self, golds: dict[str, str] | None = None):
        self.batches: list[int] = []
        self.golds = golds or {}  # question -> gold: answered right when advised 'step by step'

    def generate(self, prompts):
        self.batches.append(len(prompts))
        out = []
        for messages in prompts:
            content = messages[-1]["content"]
            gold = next((g for q, g in self.golds.items() if q in content), "18")
            out.append(Generation(f"The answer is {gold}." if "step by step" in content.lower() else "no idea",
                                  latency_s=0.0, prompt_tokens=len(content), completion_tokens=4,
                                  finish_reason="stop"))
        return out


class FailingReceiver:
    name = "failing"

    def generate(self, prompts):
        return [Generation("", error="server down") for _ in prompts]


def _assert_info_equal(a: dict, b: dict, path: str = "info") -> None:
    assert set(a) == set(b), (path, sorted(set(a) ^ set(b)))
    for key in a:
        if key in ("latency_s", "_latency_s"):  # wall clock
            continue
        if isinstance(a[key], dict):
            _assert_info_equal(a[key], b[key], f"{path}[{key}]")
        else:
            x, y = np.asarray(a[key]), np.asarray(b[key])
            assert x.dtype == y.dtype, (path, key, x.dtype, y.dtype)
            assert x.tolist() == y.tolist(), (path, key)


def _pair(env_id, n, **kwargs):
    native = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    sync = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs)
    return native, sync


def _run_lockstep(native, sync, seed, steps, rng):
    obs_n, info_n = native.reset(seed=seed)
    obs_s, info_s = sync.reset(seed=seed)
    assert obs_n == obs_s
    _assert_info_equal(info_n, info_s)
    for _ in range(steps):
        actions = native.action_space.sample() if rng is None else rng.integers(
            native.single_action_space.n, size=native.num_envs)
        out_n, out_s = native.step(actions), sync.step(actions)
        assert out_n[0] == out_s[0]  # next items' observations
        np.testing.assert_array_equal(out_n[1], out_s[1])  # rewards, exactly
        assert out_n[1].dtype == out_s[1].dtype
        np.testing.assert_array_equal(out_n[2], out_s[2])
        np.testing.assert_array_equal(out_n[3], out_s[3])
        _assert_info_equal(out_n[4], out_s[4])


def test_registered_vector_entry_points_and_metadata():
    for env_id, cls in ((IDENTITY, IdentityVectorEnv), (GSM8K, BayesPersuasionLLMVectorEnv)):
        assert gym.spec(env_id).vector_entry_point is not None
    venv = gym.make_vec(IDENTITY, num_envs=2, vectorization_mode="vector_entry_point")
    assert isinstance(venv, IdentityVectorEnv)
    assert venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert venv.action_space == gym.spaces.MultiDiscrete([4, 4])
    venv.close()


@pytest.mark.parametrize("n", [1, 3, 8])
def test_identity_native_equals_sync_step_by_step(n):
    native, sync = _pair(IDENTITY, n, num_items=10)  # 10 items: several reshuffles within 12 steps
    _run_lockstep(native, sync, seed=7, steps=12, rng=np.random.default_rng(0))
    # an unseeded reset continues each sub-env's item sequence, in both
    _assert_info_equal(native.reset()[1], sync.reset()[1])


def test_gsm8k_native_equals_sync_and_plays_one_batch_per_step(shared_data_dir):
    receiver = CountingReceiver()
    native, sync = _pair(GSM8K, 4, receiver=receiver, data_dir=shared_data_dir, subset_size=6)
    _run_lockstep(native, sync, seed=3, steps=5, rng=np.random.default_rng(1))
    # sync: 4 calls of batch 1 per step; native: one call of batch 4 per step
    assert receiver.batches.count(4) == 5
    assert receiver.batches.count(1) == 20


def test_step_info_keys_and_final_obs():
    venv = gym.make_vec(IDENTITY, num_envs=4, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=0)
    key = venv.task.answer_key
    best = [key[it.meta["topic"]] for it in venv.current_items]
    played = venv.current_items
    nxt, rewards, term, trunc, info = venv.step(np.array(best))
    assert rewards.tolist() == [1.0] * 4 and term.all() and not trunc.any()
    assert set(STEP_INFO_KEYS) <= set(info["final_info"])
    assert info["_final_info"].all() and info["_final_obs"].all()
    assert list(info["final_obs"]) == list(obs) == [it.question for it in played]
    assert info["final_info"]["item_id"].tolist() == [it.id for it in played]
    assert info["final_info"]["signal_index"].tolist() == best
    assert info["item_id"].tolist() == [it.id for it in venv.current_items]  # the next items
    assert nxt == tuple(it.question for it in venv.current_items)


def test_receiver_failure_raises_never_zero(shared_data_dir):
    venv = gym.make_vec(GSM8K, num_envs=3, vectorization_mode="vector_entry_point", receiver=FailingReceiver(),
                        data_dir=shared_data_dir, subset_size=5)
    venv.reset(seed=0)
    with pytest.raises(ReceiverError, match="server down"):
        venv.step([0, 1, 2])


@pytest.mark.parametrize("actions, match", [
    ([0, 1], "got 2 actions for num_envs=3"),
    ([0, 1, 2, 3], "got 4 actions"),
    ([0, 4, 1], "sub-env 1: action 4 is outside"),
    ([0, -1, 1], "sub-env 1"),
    ([0, 1, True], "sub-env 2"),
    (np.zeros((3, 1), dtype=int), r"shape \(3,\)"),
    ("abc", "sequence of num_envs=3"),
    (5, "sequence of num_envs=3"),
])
def test_bad_actions_are_config_errors(actions, match):
    venv = gym.make_vec(IDENTITY, num_envs=3, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    with pytest.raises(ConfigError, match=match):
        venv.step(actions)


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": [1, 2]}, "num_envs=3 entries"),
    ({"seed": -1}, "seed"),
    ({"options": {"item_index": [0, 1]}}, "num_envs=3 entries"),
    ({"options": {"item_index": 99}}, "outside 0..63"),
    ({"options": {"items": ["x", "y", "z"]}}, "Item objects"),
    ({"options": {"color": 1}}, "invalid options"),
    ({"options": {"reset_mask": np.array([True, False, True])}}, r"sub-envs \[1\] were never reset"),
    ({"options": {"reset_mask": np.zeros(3, dtype=bool)}}, "reset_mask"),
    ({"options": {"reset_mask": np.ones(2, dtype=bool)}}, "reset_mask"),
    ({"options": "x"}, "must be a dict"),
])
def test_bad_reset_arguments_are_config_errors(kwargs, match):
    venv = gym.make_vec(IDENTITY, num_envs=3, vectorization_mode="vector_entry_point")
    with pytest.raises(ConfigError, match=match):
        venv.reset(**kwargs)


def test_step_before_reset_and_bad_num_envs():
    venv = gym.make_vec(IDENTITY, num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(gym.error.ResetNeeded):
        venv.step([0, 0])
    with pytest.raises(ConfigError, match="num_envs"):
        IdentityVectorEnv(num_envs=0)


def test_pinned_items_reset_mask_and_from_env():
    env = gym.make(IDENTITY)
    venv = BayesPersuasionLLMVectorEnv.from_env(env, 3)
    items = env.unwrapped.items
    obs, info = venv.reset(options={"item_index": [5, 6, 7]})
    assert obs == tuple(items[i].question for i in (5, 6, 7))
    obs2, info2 = venv.reset(options={"reset_mask": np.array([False, True, False]), "item_index": 1})
    assert obs2 == (items[5].question, items[1].question, items[7].question)
    assert info2["_item_id"].tolist() == [False, True, False]
    _, _, _, _, info = venv.step([0, 0, 0])
    assert info["final_info"]["item_index"].tolist() == [5, 1, 7]
    outside = [items[0].__class__("x/1", items[0].question, "Strategy A", items[0].meta)] * 3
    venv.reset(options={"items": outside})
    _, r, _, _, info = venv.step([0, 1, 2])
    assert r.tolist() == [1.0, 0.0, 0.0] and info["final_info"]["item_id"].tolist() == ["x/1"] * 3
    venv.close()
    assert env.unwrapped.receiver is not None  # the view does not close the caller's env


@settings(max_examples=25, deadline=None)
@given(n_items=st.integers(1, 9), shuffle=st.booleans(), seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 30))
def test_item_order_matches_single_env(n_items, shuffle, seed, draws):
    """The factored ItemOrder gives the single env's sequence: seeded permutation, reshuffle after a pass."""
    env = gym.make(IDENTITY, num_items=max(n_items, 1), shuffle=shuffle).unwrapped
    seq = [env.reset(seed=seed)[1]["item_index"]] + [env.reset()[1]["item_index"] for _ in range(draws - 1)]
    rng = np.random.default_rng(seed)
    order = ItemOrder(n_items, shuffle)
    order.restart(rng)
    assert seq == [order.next(rng) for _ in range(draws)]
    passes = [sorted(seq[i:i + n_items]) for i in range(0, draws - n_items + 1, n_items)]
    assert all(p == list(range(n_items)) for p in passes)  # every pass plays each item once


def test_trl_reward_goes_through_vector_env_and_equals_game_play(shared_data_dir):
    """The TRL reward plays each batch as one vector step: same rewards as game.play, any completion text
    (longer than the env's max_signal_length, non-BMP characters) still played, one Receiver call per batch."""
    from bpa_gym.envs.llm_vector import BatchPlayer
    from bpa_gym.integrations.trl import make_reward_fn

    from bpa_gym.tasks.gsm8k import GSM8KTask

    items = GSM8KTask(data_dir=shared_data_dir).load("test")[:5]
    receiver = CountingReceiver({it.question: it.gold for it in items})
    env = gym.make(GSM8K, receiver=receiver, data_dir=shared_data_dir, subset_size=5, signals="text")
    completions = ["think step by step", "guess", "x" * 900 + " step by step", "🙂 step by step", ""]
    ids = [it.id for it in items]
    reward = make_reward_fn(env)
    assert isinstance(reward._player, BatchPlayer)
    got = reward(["p"] * 5, completions, item_id=ids)
    expected = [o.reward for o in env.unwrapped.game.play(items, completions)]
    assert got == expected == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert receiver.batches == [5, 5]
    reward(["p"] * 2, completions[:2], item_id=ids[:2])
    assert receiver.batches[-1] == 2


def test_oracle_table_built_through_vector_env_keeps_batches(shared_data_dir):
    from bpa_gym.oracle_table import build_oracle_table

    receiver = CountingReceiver()
    env = gym.make(GSM8K, receiver=receiver, data_dir=shared_data_dir, subset_size=3)
    base = env.unwrapped
    table = build_oracle_table(env, batch_size=16)
    m = len(base.signal_library)
    assert receiver.batches == [16] * (3 * m // 16) + ([3 * m % 16] if 3 * m % 16 else [])
    for i, item in enumerate(base.items):
        direct = base.game.play([item] * m, list(base.signal_library))
        assert table.rewards[i].tolist() == [o.reward for o in direct]


@pytest.mark.slow
def test_native_vector_env_with_real_smollm2_equals_single_steps(smollm2_dir, shared_data_dir, one_thread):
    """N=4 real SmolLM2 plays in ONE batched generate equal 4 single-env steps on the same items and signals."""
    venv = gym.make_vec(GSM8K, num_envs=4, vectorization_mode="vector_entry_point", receiver="smollm2",
                        receiver_kwargs={"max_new_tokens": 16}, data_dir=shared_data_dir, subset_size=12)
    receiver = venv.receiver
    calls: list[int] = []
    generate = receiver.generate

    def counting(prompts):
        calls.append(len(prompts))
        return generate(prompts)

    receiver.generate = counting
    actions = np.array([0, 3, 9, 5])
    venv.reset(seed=2)
    _, rewards, _, _, info = venv.step(actions)
    assert calls == [4]
    single = gym.make(GSM8K, receiver=receiver, data_dir=shared_data_dir, subset_size=12)
    for i in range(4):
        single.reset(seed=2 + i)
        _, r, _, _, inf = single.step(int(actions[i]))
        assert inf["item_id"] == info["final_info"]["item_id"][i]
        assert inf["response"] == info["final_info"]["response"][i]
        assert r == rewards[i]
    assert calls == [4, 1, 1, 1, 1]
