"""The reference agents play through the public vector-env path: no `env.unwrapped.game` in agents/, wrappers see
every play, one Receiver batch per vector step; the vector env's item streams save and restore as plain data."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bpa_gym  # noqa: F401
from bpa_gym.envs.identity import IdentityReceiver
from bpa_gym.envs.llm import ItemOrder
from bpa_gym.envs.llm_vector import BayesPersuasionLLMVectorEnv
from bpa_gym.errors import ConfigError
from bpa_gym.receivers import ScriptedReceiver
from bpa_gym.wrappers import VectorRegretWrapper

AGENTS = Path(__file__).resolve().parents[1] / "agents"
IDENTITY = "BayesPersuasion-Identity-v0"


# ----------------------------------------------------------------------------- source scan
def test_agents_never_play_around_gymnasium():
    """No agent reaches the game behind the env: no `.game.play(`, no `unwrapped.game`, no `base.game`."""
    offenders = []
    for path in sorted(AGENTS.glob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.game\.play\(|unwrapped\.game\b|\bbase\.game\b", line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "agents go around Gymnasium:\n" + "\n".join(offenders)
    assert len(list(AGENTS.glob("*.py"))) >= 6  # the scan saw the agents


# ----------------------------------------------------------------------------- PPO (text signals)
class CountingOracle:
    """A regret oracle for free-text signals (which have none built in): regret 1 for a wrong answer; records
    every play it is shown."""

    name = "counting test oracle"
    num_signals = 1

    def __init__(self) -> None:
        self.plays: list[tuple[str, str]] = []

    def instant_regret(self, action, info) -> float:
        assert action == info["signal"]  # the action is the signal text the Receiver saw
        self.plays.append((info["item_id"], action))
        return 0.0 if info["correct"] else 1.0

    def describe(self) -> str:
        return "counts plays"


def _keyword_env(data_dir: Path, subset_size: int = 16):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    items = GSM8KTask(data_dir=data_dir).load("test")[:subset_size]
    receiver = ScriptedReceiver.keyword_gated("carefully", {it.question: f"The answer is {it.gold}." for it in items},
                                              name="keyword-test-double")
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=receiver, signals="text", data_dir=str(data_dir),
                   split="test", subset_size=subset_size)
    return env, receiver


def test_ppo_plays_every_signal_through_the_vector_env(shared_data_dir, gpt2_dir, tmp_path, one_thread):
    """A VectorRegretWrapper around PPO's vector env sees exactly batch_size x iterations plays, each
    iteration is one Receiver call of batch_size, and the rewards PPO learns from are the step's."""
    from agents import ppo_text as P

    env, receiver = _keyword_env(shared_data_dir)
    oracle = CountingOracle()
    venv = VectorRegretWrapper(P.make_vector_env(env, 4), oracle=oracle)
    args = P.Args(device="cpu", save_dir=str(tmp_path / "run"), progress=False, policy="random:tiny",
                  tokenizer=str(gpt2_dir), max_prompt_tokens=32, max_signal_tokens=3, batch_size=4,
                  num_minibatches=1, update_epochs=1, num_iterations=3, save_every=0, seed=5)
    out = P.train(args, env=venv)
    assert venv.t == 4 * 3 and len(oracle.plays) == 12
    assert receiver.calls == [4, 4, 4]
    # the wrapper's reward total is PPO's: the rewards come from the vector env's step
    assert venv.reward_sum == pytest.approx(sum(h["reward"] for h in out["history"]) * 4)
    # sub-env i draws its items from seed + i, as a single env reset with that seed would
    single = gym.make("BayesPersuasion-GSM8K-v0", receiver=receiver, signals="text", data_dir=str(shared_data_dir),
                      split="test", subset_size=16)
    expected = [single.reset(seed=5 + 0)[1]["item_id"]] + [single.reset()[1]["item_id"] for _ in range(2)]
    assert [oracle.plays[4 * k][0] for k in range(3)] == expected


def test_ppo_refuses_a_vector_env_of_another_size(shared_data_dir):
    from agents import ppo_text as P

    env, _ = _keyword_env(shared_data_dir, 8)
    with pytest.raises(ConfigError, match="num_envs=3.*batch_size=4"):
        P.make_vector_env(BayesPersuasionLLMVectorEnv.from_env(env, 3, signals="text"), 4)
    discrete = gym.make("BayesPersuasion-GSM8K-v0", receiver=ScriptedReceiver(lambda m: ""),
                        data_dir=str(shared_data_dir), subset_size=4)
    with pytest.raises(ConfigError, match="signals='text'"):
        P.make_vector_env(discrete, 4)


# ----------------------------------------------------------------------------- SB3 and the classical bandits
class CountingIdentityReceiver(IdentityReceiver):
    def __init__(self):
        self.batches: list[int] = []

    def generate(self, prompts):
        self.batches.append(len(prompts))
        return super().generate(prompts)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_sb3_makes_receiver_calls_of_num_envs_only(algo, gpt2_dir, one_thread):
    from agents import sb3_bandit

    receiver = CountingIdentityReceiver()
    args = sb3_bandit.Args(algo=algo, tokenizer=str(gpt2_dir), max_length=12, num_envs=4, n_steps=4, batch_size=8,
                           total_steps=32, eval_steps=8, seed=0, device="cpu")
    summary = sb3_bandit.train(args, receiver=receiver)
    # the Identity env's exact oracle table is built first: 4 signals x 64 items, one batch per signal
    assert receiver.batches[:4] == [64] * 4
    # then every SB3 step and every evaluation step is one batch of num_envs
    assert receiver.batches[4:] == [4] * (32 // 4 + 8 // 4)
    assert summary["final_regret"]["t"] == 32  # VectorRegretWrapper saw every training play
    assert summary["eval_plays"] == 8


def test_classical_bandit_regret_sees_every_play(gpt2_dir):
    from agents import sb3_bandit

    receiver = CountingIdentityReceiver()
    args = sb3_bandit.Args(algo="ucb1", tokenizer=str(gpt2_dir), num_envs=4, total_steps=50, eval_steps=8, seed=0)
    summary = sb3_bandit.train(args, receiver=receiver)
    assert summary["final_regret"]["t"] == 50 and summary["train"]["steps"] == 50
    # after the oracle table (4 x 64): a bandit plays once per step; evaluation is batched
    assert receiver.batches == [64] * 4 + [1] * 50 + [4] * 2


# ----------------------------------------------------------------------------- item-stream state
def _identity_vec(n: int):
    return gym.make_vec(IDENTITY, num_envs=n, vectorization_mode="vector_entry_point")


def _item_ids(venv, steps: int) -> list[list[str]]:
    return [venv.step([0] * venv.num_envs)[-1]["final_info"]["item_id"].tolist() for _ in range(steps)]


def test_item_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    venv = _identity_vec(3)
    venv.reset(seed=11)
    _item_ids(venv, 70)  # past a full pass of the 64 items: the sub-envs have reshuffled from their own RNGs
    state = venv.get_item_state()
    torch.save({"env_items": state}, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)["env_items"]
    assert loaded == state
    expected = _item_ids(venv, 80)
    other = _identity_vec(3)
    other.set_item_state(loaded)
    assert [it.id for it in other.current_items] == expected[0]
    assert _item_ids(other, 80) == expected


def test_item_state_of_unseeded_and_pinned_envs():
    venv = _identity_vec(2)
    with pytest.raises(ConfigError, match="reset"):
        venv.get_item_state()  # never reset
    venv.reset()  # unseeded: the generators are fresh ones, saved and restored all the same
    expected_state = venv.get_item_state()
    expected = _item_ids(venv, 70)
    other = _identity_vec(2)
    other.set_item_state(expected_state)
    assert _item_ids(other, 70) == expected
    venv.reset(options={"items": venv.items[:2]})
    venv.reset(options={"items": [venv.items[0], venv.items[0]]})
    with pytest.raises(ConfigError, match="items"):
        venv.get_item_state()


@pytest.mark.parametrize("mutate, match", [
    (lambda s: {**s, "num_envs": 3}, "num_envs=2"),
    (lambda s: {**s, "num_items": 5}, "64 items"),
    (lambda s: "garbage", "not an item state"),
    (lambda s: {**s, "sub_envs": [{**s["sub_envs"][0], "item_index": 64}, s["sub_envs"][1]]}, "sub-env 0.*item_index"),
    (lambda s: {**s, "sub_envs": [s["sub_envs"][0], {**s["sub_envs"][1], "rng": {"bit_generator": "Evil"}}]},
     "sub-env 1.*bit generator"),
    (lambda s: {**s, "sub_envs": [{**s["sub_envs"][0], "order": {**s["sub_envs"][0]["order"], "order": [0] * 64}},
                                  s["sub_envs"][1]]}, "sub-env 0.*permutation"),
    (lambda s: {**s, "sub_envs": [{**s["sub_envs"][0], "order": {**s["sub_envs"][0]["order"], "cursor": 65}},
                                  s["sub_envs"][1]]}, "sub-env 0.*cursor"),
])
def test_bad_item_state_is_a_clear_error(mutate, match):
    venv = _identity_vec(2)
    venv.reset(seed=0)
    good = venv.get_item_state()
    before = [it.id for it in venv.current_items]
    with pytest.raises(ConfigError, match=match):
        venv.set_item_state(mutate(good))
    assert [it.id for it in venv.current_items] == before  # a refused state changes nothing


@settings(max_examples=60, deadline=None)
@given(num_items=st.integers(1, 12), shuffle=st.booleans(), seed=st.integers(0, 2**32 - 1), k=st.integers(0, 30))
def test_item_order_state_continues_the_same_sequence(num_items, shuffle, seed, k):
    rng = np.random.default_rng(seed)
    order = ItemOrder(num_items, shuffle)
    order.restart(rng)
    for _ in range(k):
        order.next(rng)
    state = order.get_state()
    rng_state = rng.bit_generator.state
    expected = [order.next(rng) for _ in range(2 * num_items + 3)]
    again = ItemOrder(num_items, shuffle)
    again.set_state(state)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = rng_state
    assert [again.next(rng2) for _ in range(2 * num_items + 3)] == expected


def test_sb3_vecenv_steps_a_vector_regret_wrapper(gpt2_dir):
    """SB3VecEnv over VectorRegretWrapper (how sb3_bandit trains): the wrapper's scalar running totals in the
    vector info (once a TypeError in SB3VecEnv) are shared by the sub-envs, and the wrapper counts every play."""
    from bpa_gym.integrations.sb3 import SB3VecEnv

    regret = VectorRegretWrapper(_identity_vec(4))
    venv = SB3VecEnv(regret, str(gpt2_dir), max_length=8)
    venv.reset()
    for _ in range(3):
        _, rewards, dones, infos = venv.step(np.zeros(4, dtype=np.int64))
    assert dones.all() and [info["signal_index"] for info in infos] == [0] * 4
    assert regret.t == 12 and venv.reset_infos[0]["regret"]["t"] == 12
