"""BayesPersuasion-GSM8K-v0 with a scripted Receiver (test double): spaces, info keys, seeding, errors."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import bpa_gym
from bpa_gym.envs.llm import RESET_INFO_KEYS, STEP_INFO_KEYS
from bpa_gym.errors import ConfigError, ReceiverError
from bpa_gym.receivers import ScriptedReceiver
from bpa_gym.types import Generation

ENV_ID = "BayesPersuasion-GSM8K-v0"


def gold_when_hinted(messages):
    """Scripted Receiver: answers the gold answer iff the prompt carries advice containing 'step'."""
    text = messages[-1]["content"]
    return "I think the answer is 1." if "step" not in text.lower() else "The answer is {GOLD}."


class GoldOracleReceiver:
    """Test double that knows the gold answers and answers right iff advised to work 'step by step'."""

    name = "gold-oracle"

    def __init__(self, items):
        self.by_question = {it.question: it.gold for it in items}
        self.batches: list[int] = []

    def generate(self, prompts):
        self.batches.append(len(prompts))
        out = []
        for messages in prompts:
            content = messages[-1]["content"]
            gold = next(g for q, g in self.by_question.items() if q in content)
            out.append(Generation(f"The answer is {gold}." if "step by step" in content.lower() else "No idea."))
        return out


@pytest.fixture()
def env(shared_data_dir):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    task = GSM8KTask(data_dir=shared_data_dir)
    items = task.load("test")[:50]
    e = gym.make(ENV_ID, receiver=GoldOracleReceiver(items), data_dir=shared_data_dir, subset_size=50)
    yield e
    e.close()


def test_registered_and_namespaced_make(shared_data_dir):
    assert ENV_ID in gym.registry
    e = gym.make(f"bpa_gym:{ENV_ID}", receiver=ScriptedReceiver(lambda m: "0"), data_dir=shared_data_dir, subset_size=5)
    assert e.unwrapped.num_signals == len(bpa_gym.MATH_SIGNALS)
    assert ENV_ID in bpa_gym.env_ids()


def test_observation_is_question_without_gold(env):
    obs, info = env.reset(seed=3)
    assert set(info) == set(RESET_INFO_KEYS)
    item = env.unwrapped.items[info["item_index"]]
    assert obs == item.question
    assert env.observation_space.contains(obs)
    assert "####" not in obs


def test_every_item_is_in_the_observation_space(shared_data_dir):
    e = gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: "0"), data_dir=shared_data_dir).unwrapped
    assert len(e.items) == 1319
    assert all(e.observation_space.contains(it.question) for it in e.items)
    # Gymnasium's default Text charset (alphanumeric) would reject them: ours really covers the data.
    assert any("$" in it.question for it in e.items)


def test_step_reward_and_info_keys(env):
    obs, info = env.reset(seed=0)
    step_hint = next(i for i, s in enumerate(bpa_gym.MATH_SIGNALS) if "step by step" in s.lower())
    _, r, term, trunc, info = env.step(step_hint)
    assert (r, term, trunc) == (1.0, True, False)
    assert tuple(sorted(info)) == tuple(sorted(STEP_INFO_KEYS))
    assert info["correct"] is True and info["parse_status"] == "ok"
    assert info["signal"] == bpa_gym.MATH_SIGNALS[step_hint] and info["signal_index"] == step_hint
    assert info["extracted_answer"] == info["gold"]
    env.reset()
    _, r, *_ , info = env.step(0)  # silence: the double answers "No idea." -> unparseable, reward 0
    assert r == 0.0 and info["parse_status"] == "unparseable" and info["signal"] == ""


def test_seeded_item_order_is_reproducible(env):
    def order(seed):
        ids = [env.reset(seed=seed)[1]["item_id"]]
        ids += [env.reset()[1]["item_id"] for _ in range(9)]
        return ids

    assert order(7) == order(7)
    assert order(7) != order(8)
    full = [env.reset(seed=1)[1]["item_index"]] + [env.reset()[1]["item_index"] for _ in range(49)]
    assert sorted(full) == list(range(50))  # one pass visits each item once


def test_item_index_option(env):
    _, info = env.reset(options={"item_index": 4})
    assert info["item_index"] == 4
    with pytest.raises(ConfigError, match="item_index"):
        env.reset(options={"item_index": 50})
    with pytest.raises(ConfigError, match=r"bogus = 1: unknown argument; known: item_index"):
        env.reset(options={"bogus": 1})


def test_check_env_discrete_and_text(shared_data_dir):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    items = GSM8KTask(data_dir=shared_data_dir).load("test")[:20]
    for mode in ("discrete", "text"):
        e = gym.make(ENV_ID, receiver=GoldOracleReceiver(items), data_dir=shared_data_dir, subset_size=20, signals=mode)
        check_env(e.unwrapped)
        # Registered nondeterministic (latency is wall-clock), so check_env skips its step-determinism
        # check: do it here on everything but the timing.
        action = e.action_space.sample()
        steps = []
        for _ in range(2):
            e.reset(seed=11)
            obs, r, term, trunc, info = e.step(action)
            steps.append((obs, r, term, trunc, {k: v for k, v in info.items() if k != "latency_s"}))
        assert steps[0] == steps[1]


def test_text_signals(shared_data_dir):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    items = GSM8KTask(data_dir=shared_data_dir).load("test")[:10]
    e = gym.make(ENV_ID, receiver=GoldOracleReceiver(items), data_dir=shared_data_dir, subset_size=10,
                 signals="text", max_signal_length=64)
    e.reset(seed=0)
    _, r, *_, info = e.step("Go step by step, carefully – é ✓")
    assert r == 1.0 and info["signal_index"] is None
    with pytest.raises(ConfigError, match="64"):
        e.step("x" * 65)
    with pytest.raises(ConfigError, match="not a string"):
        e.step(3)


def test_bad_actions_and_kwargs(env, shared_data_dir):
    env.reset(seed=0)
    for bad in (-1, len(bpa_gym.MATH_SIGNALS), 2.5, "3"):
        with pytest.raises(ConfigError, match="outside the action space"):
            env.step(bad)
    with pytest.raises(ConfigError, match=r"sigals = 'text': unknown argument; known: .*signals"):
        gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: ""), data_dir=shared_data_dir, sigals="text")
    with pytest.raises(ConfigError, match=r"signals = 'words'"):
        gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: ""), data_dir=shared_data_dir, signals="words")
    with pytest.raises(ConfigError, match="unknown split"):
        gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: ""), data_dir=shared_data_dir, split="dev")
    with pytest.raises(ConfigError, match="subset_size"):
        gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: ""), data_dir=shared_data_dir, subset_size=0)
    with pytest.raises(ConfigError, match=r"unknown receiver spec|accepted"):
        gym.make(ENV_ID, receiver="gpt-17", data_dir=shared_data_dir)


def test_custom_signal_library(shared_data_dir):
    e = gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: "The answer is 3"), data_dir=shared_data_dir,
                 subset_size=3, signal_library=["", "Be brief."])
    assert e.action_space.n == 2
    with pytest.raises(ConfigError, match="distinct"):
        gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: ""), data_dir=shared_data_dir, signal_library=["a", "a"])


def test_missing_data_dir_error(tmp_path):
    with pytest.raises(bpa_gym.DataNotFoundError, match=str(tmp_path / "nope")):
        gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: ""), data_dir=tmp_path / "nope")


def test_receiver_failure_raises_never_zero(shared_data_dir):
    class Down:
        name = "down"

        def generate(self, prompts):
            return [Generation("", error="connection refused") for _ in prompts]

    e = gym.make(ENV_ID, receiver=Down(), data_dir=shared_data_dir, subset_size=3)
    e.reset(seed=0)
    with pytest.raises(ReceiverError, match="connection refused"):
        e.step(1)


def test_game_play_batches_and_flags(shared_data_dir):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    task = GSM8KTask(data_dir=shared_data_dir)
    items = task.load("test")[:6]
    rec = GoldOracleReceiver(items)
    game = bpa_gym.PersuasionGame(task, rec)
    outs = game.play(items, ["step by step", ""] * 3)
    assert rec.batches == [6]  # one Receiver call for the whole batch
    assert [o.reward for o in outs] == [1.0, 0.0] * 3
    assert [o.status for o in outs] == ["ok", "unparseable"] * 3
    with pytest.raises(ConfigError, match="one signal per item"):
        game.play(items, ["x"])

    class Flaky:
        name = "flaky"

        def generate(self, prompts):
            return [Generation("", error="timeout") if i % 2 else Generation("The answer is 18.")
                    for i, _ in enumerate(prompts)]

    flagged = bpa_gym.PersuasionGame(task, Flaky(), on_error="flag").play(items[:2], ["", ""])
    assert flagged[0].reward == 1.0 and flagged[0].gold == "18"  # test item 0: Janet's ducks, $18
    assert flagged[1].status == "receiver_error" and np.isnan(flagged[1].reward) and flagged[1].failed
    with pytest.raises(ReceiverError, match="timeout"):
        bpa_gym.PersuasionGame(task, Flaky()).play(items[:2], ["", ""])
    # a per-call on_error overrides the game's: a trainer that needs every reward raises on a flagging game
    with pytest.raises(ReceiverError, match="never scored 0"):
        bpa_gym.PersuasionGame(task, Flaky(), on_error="flag").play(items[:2], ["", ""], on_error="raise")
    assert bpa_gym.PersuasionGame(task, Flaky()).play(items[:2], ["", ""], on_error="flag")[1].failed
    with pytest.raises(ConfigError, match="on_error"):
        game.play(items[:1], [""], on_error="ignore")


def test_render_ansi(shared_data_dir):
    e = gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: "The answer is 2."), data_dir=shared_data_dir,
                 subset_size=2, render_mode="ansi")
    e.reset(seed=0)
    e.step(1)
    text = e.render()
    assert "signal:" in text and re.search(r"reward=", text)
