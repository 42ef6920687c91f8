"""BayesPersuasion-HumanEval-v0: gym.make, the native vector env, oracle tables, the real SmolLM2 Receiver."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401  (registers the envs)
from bpa_gym.errors import SandboxError
from bpa_gym.oracle_table import build_oracle_table
from bpa_gym.receivers.scripted import ScriptedReceiver
from bpa_gym.sandbox import VERDICTS, bwrap_unavailable_reason
from bpa_gym.signals import CODE_SIGNALS
from bpa_gym.tasks.humaneval import HumanEvalTask, execution_verdict

ENV_ID = "BayesPersuasion-HumanEval-v0"
NO_BWRAP = bwrap_unavailable_reason()
pytestmark = pytest.mark.skipif(NO_BWRAP is not None, reason=f"bubblewrap unavailable: {NO_BWRAP}")
GOOD = len(CODE_SIGNALS) - 1  # the signal after which the scripted Receiver answers correctly
N_ITEMS = 3


@pytest.fixture(scope="module")
def items(shared_data_dir):
    return HumanEvalTask(data_dir=shared_data_dir).load("test")[:N_ITEMS]


def scripted(items) -> ScriptedReceiver:
    """Canonical solution (fenced full function) when the prompt carries the last signal; else wrong code."""
    by_prompt = {it.question: it for it in items}

    def answer(messages):
        user = messages[-1]["content"]
        item = next(it for q, it in by_prompt.items() if q in user)
        entry = item.meta["entry_point"]
        if CODE_SIGNALS[GOOD] in user:
            return f"Here it is:\n\n```python\n{item.meta['prompt']}{item.gold}```"
        return f"```python\ndef {entry}(*args, **kwargs):\n    return None\n```"

    return ScriptedReceiver(answer)


def make(items, **kwargs):
    return gym.make(ENV_ID, receiver=scripted(items), data_dir=str(kwargs.pop("data_dir")), subset_size=N_ITEMS,
                    **kwargs)


def test_registered_with_the_code_library(shared_data_dir, items) -> None:
    assert ENV_ID in gym.registry and gym.registry[ENV_ID].vector_entry_point is not None
    env = make(items, data_dir=shared_data_dir)
    assert env.action_space.n == len(CODE_SIGNALS) and env.unwrapped.task.name == "humaneval"
    obs, info = env.reset(seed=0, options={"item_index": 1})
    assert obs == items[1].question and info["item_id"] == items[1].id


def test_steps_report_the_execution_verdict(shared_data_dir, items) -> None:
    env = make(items, data_dir=shared_data_dir)
    env.reset(seed=0, options={"item_index": 0})
    _, reward, terminated, _, info = env.step(GOOD)
    assert (reward, terminated, info["correct"], info["parse_status"]) == (1.0, True, True, "ok")
    assert info["parse_reason"] == "passed" and items[0].meta["entry_point"] in info["extracted_answer"]
    env.reset(options={"item_index": 0})
    _, reward, _, _, info = env.step(0)
    assert reward == 0.0 and info["parse_status"] == "ok" and execution_verdict(info["parse_reason"]) == "failed"
    assert "AssertionError" in info["parse_reason"]


def test_text_signals(shared_data_dir, items) -> None:
    env = make(items, data_dir=shared_data_dir, signals="text")
    env.reset(seed=1, options={"item_index": 2})
    assert env.step(CODE_SIGNALS[GOOD])[1] == 1.0
    env.reset(options={"item_index": 2})
    assert env.step("Just guess.")[1] == 0.0


def test_native_vector_env(shared_data_dir, items) -> None:
    venv = gym.make_vec(ENV_ID, num_envs=N_ITEMS, vectorization_mode="vector_entry_point",
                        receiver=scripted(items), data_dir=str(shared_data_dir), subset_size=N_ITEMS, shuffle=False)
    venv.reset(seed=0)
    _, rewards, terminated, _, infos = venv.step(np.array([GOOD, 0, GOOD]))
    assert rewards.tolist() == [1.0, 0.0, 1.0] and terminated.all()
    assert [execution_verdict(r) for r in infos["final_info"]["parse_reason"]] == ["passed", "failed", "passed"]
    venv.close()


def test_oracle_table_and_regret(shared_data_dir, items) -> None:
    env = make(items, data_dir=shared_data_dir)
    table = build_oracle_table(env)
    expected = np.zeros((N_ITEMS, len(CODE_SIGNALS)))
    expected[:, GOOD] = 1.0
    np.testing.assert_array_equal(table.rewards, expected)
    env2 = make(items, data_dir=shared_data_dir, oracle_table=table)
    oracle = env2.unwrapped.regret_oracle()
    env2.reset(options={"item_index": 0})
    info = env2.step(3)[-1]
    assert oracle.instant_regret(3, info) == 1.0 and oracle.instant_regret(GOOD, info) == 0.0


def test_unreadable_and_cut_answers(shared_data_dir, items) -> None:
    env = gym.make(ENV_ID, receiver=ScriptedReceiver(lambda m: "I would rather not."), data_dir=str(shared_data_dir),
                   subset_size=1)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(0)
    assert (reward, info["parse_status"], execution_verdict(info["parse_reason"])) == (0.0, "unparseable", None)
    cut = ScriptedReceiver(lambda m: "```python\ndef has_close_elements(numbers, threshold):\n    for a in (",
                           finish_reason="length")
    env = gym.make(ENV_ID, receiver=cut, data_dir=str(shared_data_dir), subset_size=1)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(0)
    assert (reward, info["parse_status"]) == (0.0, "truncated")


def test_a_broken_sandbox_is_an_error_not_a_reward_of_0(shared_data_dir, items) -> None:
    class Broken:
        def run_many(self, programs):
            raise SandboxError("bwrap: No permissions to create new namespace")

    env = gym.make(ENV_ID, task=HumanEvalTask(data_dir=shared_data_dir, sandbox=Broken()), receiver=scripted(items),
                   subset_size=N_ITEMS)
    env.reset(seed=0)
    with pytest.raises(SandboxError, match="namespace"):
        env.step(GOOD)


@pytest.mark.slow
def test_smollm2_answers_through_the_sandbox(shared_data_dir, smollm2_dir) -> None:
    env = gym.make(ENV_ID, receiver="smollm2", receiver_kwargs={"max_new_tokens": 128},
                   data_dir=str(shared_data_dir), subset_size=3, shuffle=False)
    infos = []
    for index in range(3):
        env.reset(seed=0, options={"item_index": index})
        _, reward, _, _, info = env.step(GOOD)
        assert not math.isnan(reward) and reward in (0.0, 1.0)
        assert info["parse_status"] in ("ok", "unparseable", "truncated")
        if info["parse_status"] == "ok":
            assert execution_verdict(info["parse_reason"]) in VERDICTS
        infos.append(info)
    print([(i["parse_status"], (i["parse_reason"] or "")[:120]) for i in infos])
    assert any(i["parse_status"] == "ok" for i in infos), [i["response"][:300] for i in infos]  # code really ran


def test_a_batch_runs_its_code_in_one_parallel_call(shared_data_dir, items) -> None:
    from bpa_gym.sandbox import Sandbox

    class Counting(Sandbox):
        calls: list[int] = []

        def run_many(self, programs):
            self.calls.append(len(programs))
            return super().run_many(programs)

    sandbox = Counting()
    task = HumanEvalTask(data_dir=shared_data_dir, sandbox=sandbox)
    venv = gym.make_vec(ENV_ID, num_envs=N_ITEMS, vectorization_mode="vector_entry_point", task=task,
                        receiver=scripted(items), subset_size=N_ITEMS, shuffle=False)
    venv.reset(seed=0)
    assert venv.step(np.array([GOOD, GOOD, 0]))[1].tolist() == [1.0, 1.0, 0.0]
    assert sandbox.calls == [N_ITEMS]
    cut = ScriptedReceiver(lambda m: "```python\ndef f(x):\n    return (", finish_reason="length")
    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", receiver=cut,
                        data_dir=str(shared_data_dir), subset_size=2)
    venv.reset(seed=0)
    _, rewards, _, _, infos = venv.step(np.array([0, 1]))
    assert rewards.tolist() == [0.0, 0.0] and infos["final_info"]["parse_status"].tolist() == ["truncated"] * 2
