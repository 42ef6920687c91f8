"""Oracle tables are bound to what built them: Receiver, generation settings, template, task, signals, items.

A table built for one setup and handed to an env with another must be refused with a ConfigError that names
each field that differs (table's value vs env's value), never silently used for regret.
"""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401  (registers envs)
from bpa_gym.errors import ConfigError, OracleUnavailableError
from bpa_gym.oracle_table import (OracleTable, OracleTableRegret, bind_oracle_table, build_oracle_table,
                                  item_digest, table_identity)
from bpa_gym.prompts import PromptTemplate
from bpa_gym.receivers import ScriptedReceiver
from bpa_gym.receivers.base import GenerationConfig
from bpa_gym.wrappers import RegretWrapper

LIBRARY = ["", "Work step by step."]


def answer_one(messages):
    return "The answer is 1."


class GenReceiver(ScriptedReceiver):
    """A scripted Receiver that declares generation settings, as the real ones do."""

    def __init__(self, max_new_tokens: int = 16, temperature: float = 0.0, seed: int | None = None,
                 name: str = "scripted") -> None:
        super().__init__(answer_one, name=name)
        self.generation = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)


def gsm8k(data_dir, receiver=None, **kwargs):
    kwargs.setdefault("subset_size", 4)
    kwargs.setdefault("signal_library", LIBRARY)
    return gym.make("BayesPersuasion-GSM8K-v0", receiver=receiver or ScriptedReceiver(answer_one),
                    data_dir=data_dir, **kwargs)


def test_identity_records_receiver_generation_template_and_task(shared_data_dir):
    env = gsm8k(shared_data_dir, GenReceiver(16, seed=5))
    table = build_oracle_table(env)
    ident = table.identity
    assert ident["receiver"] == {"class": "GenReceiver", "name": "scripted"}
    assert ident["generation"] == {"max_new_tokens": 16, "temperature": 0.0}  # top_p/seed: moot when greedy
    assert ident["template"]["user"] == env.unwrapped.game.template.user
    assert ident["task"] == {"name": "gsm8k", "split": "test", "task_seed": None,
                             "data_source": str(shared_data_dir)}
    assert table.item_digests == tuple(item_digest(it) for it in env.unwrapped.items)
    assert table.signals == tuple(LIBRARY)
    # The same setup accepts its own table, from memory and from a file.
    assert bind_oracle_table(table, gsm8k(shared_data_dir, GenReceiver(16, seed=9))) is table


def test_other_receiver_is_refused_naming_both(shared_data_dir):
    table = build_oracle_table(gsm8k(shared_data_dir, ScriptedReceiver(answer_one, name="model-a")))
    with pytest.raises(ConfigError) as exc:
        gsm8k(shared_data_dir, ScriptedReceiver(answer_one, name="model-b"), oracle_table=table)
    assert "receiver.name: table's 'model-a' vs env's 'model-b'" in str(exc.value)


def test_receiver_identity_property_is_used(shared_data_dir):
    class Versioned(ScriptedReceiver):
        def __init__(self, revision):
            super().__init__(answer_one)
            self.revision = revision

        @property
        def identity(self):
            return {"model": "m", "revision": self.revision}

    table = build_oracle_table(gsm8k(shared_data_dir, Versioned("abc")))
    assert table.identity["receiver"] == {"model": "m", "revision": "abc"}
    with pytest.raises(ConfigError, match="receiver.revision: table's 'abc' vs env's 'def'"):
        gsm8k(shared_data_dir, Versioned("def"), oracle_table=table)


def test_other_generation_settings_are_refused(shared_data_dir):
    table = build_oracle_table(gsm8k(shared_data_dir, GenReceiver(16)))
    with pytest.raises(ConfigError, match="generation.max_new_tokens: table's 16 vs env's 32"):
        gsm8k(shared_data_dir, GenReceiver(32), oracle_table=table)


def test_other_template_is_refused(shared_data_dir):
    table = build_oracle_table(gsm8k(shared_data_dir))
    env = gsm8k(shared_data_dir)
    env.unwrapped.game.template = PromptTemplate(system="Be brief.", user="{question}{signal_block}")
    with pytest.raises(ConfigError, match=r"template.system: table's .* vs env's 'Be brief.'"):
        bind_oracle_table(table, env)


def test_other_split_is_refused(shared_data_dir):
    table = build_oracle_table(gsm8k(shared_data_dir, split="test"))
    with pytest.raises(ConfigError) as exc:
        gsm8k(shared_data_dir, split="train", oracle_table=table)
    msg = str(exc.value)
    assert "task.split: table's 'test' vs env's 'train'" in msg
    assert "items: 4 of the env's 4 items are not in the table" in msg


def test_other_task_seed_is_refused(tmp_path):
    # Identity env items with the same ids but other topics/answers: the case the issue found accepted.
    table = build_oracle_table(gym.make("BayesPersuasion-Identity-v0", task_seed=0))
    with pytest.raises(ConfigError) as exc:
        gym.make("BayesPersuasion-Identity-v0", task_seed=1, oracle_table=table)
    msg = str(exc.value)
    assert "task.task_seed: table's 0 vs env's 1" in msg
    assert "items have another question/gold answer" in msg
    path = table.save(tmp_path / "t.npz")
    env = gym.make("BayesPersuasion-Identity-v0", task_seed=0, oracle_table=path)  # same seed: accepted
    assert env.unwrapped.oracle_table.identity == table.identity


def test_other_data_file_with_same_ids_is_refused(shared_data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shared_data_dir / "gsm8k", data / "gsm8k")
    table = build_oracle_table(gsm8k(data))
    lines = (data / "gsm8k" / "test.jsonl").read_text().splitlines(keepends=True)
    record = json.loads(lines[2])
    record["question"] = "What is 2 + 2?"
    lines[2] = json.dumps(record) + "\n"
    (data / "gsm8k" / "test.jsonl").write_text("".join(lines))
    with pytest.raises(ConfigError) as exc:
        gsm8k(data, oracle_table=table)
    assert "1 items have another question/gold answer" in str(exc.value) and "'gsm8k/test/2'" in str(exc.value)
    # Another folder with the same data is the same task: accepted (the path is not part of the binding).
    same = build_oracle_table(gsm8k(shared_data_dir))
    moved = tmp_path / "moved"
    shutil.copytree(shared_data_dir / "gsm8k", moved / "gsm8k")
    assert gsm8k(moved, oracle_table=same).unwrapped.oracle_table is same


def test_subset_of_the_table_is_accepted_superset_refused(shared_data_dir):
    table = build_oracle_table(gsm8k(shared_data_dir, subset_size=4))
    assert gsm8k(shared_data_dir, subset_size=2, oracle_table=table).unwrapped.oracle_table is table
    with pytest.raises(ConfigError, match=r"items: 2 of the env's 6 items are not in the table \(e.g. 'gsm8k/test/4'\)"):
        gsm8k(shared_data_dir, subset_size=6, oracle_table=table)


def test_mismatch_message_names_the_file_and_the_rebuild_command(shared_data_dir, tmp_path):
    path = build_oracle_table(gsm8k(shared_data_dir, GenReceiver(16))).save(tmp_path / "t.npz")
    with pytest.raises(ConfigError) as exc:
        gsm8k(shared_data_dir, GenReceiver(24), oracle_table=path)
    msg = str(exc.value)
    assert msg.startswith(f"oracle table {path} was built for another setup than this env:")
    assert "bpa-gym oracle-table" in msg and "--max-new-tokens 24" in msg and f"--out {path}" in msg


def test_every_way_in_checks_the_binding(shared_data_dir):
    table = build_oracle_table(gsm8k(shared_data_dir, GenReceiver(16)))
    env = gsm8k(shared_data_dir, GenReceiver(64))
    with pytest.raises(ConfigError, match="generation.max_new_tokens"):
        OracleTableRegret(table, env=env)
    env.unwrapped.oracle_table = table  # set behind make()'s back
    with pytest.raises(OracleUnavailableError, match="generation.max_new_tokens: table's 16 vs env's 64"):
        RegretWrapper(env)
    with pytest.raises(ConfigError, match="generation.max_new_tokens"):
        env.unwrapped.regret_oracle()


def test_hand_made_table_is_refused_by_an_env(shared_data_dir):
    env = gsm8k(shared_data_dir)
    ids = tuple(it.id for it in env.unwrapped.items)
    table = OracleTable(ids, tuple(LIBRARY), np.zeros((4, 2)), "scripted")
    with pytest.raises(ConfigError, match="records nothing about what built it"):
        gsm8k(shared_data_dir, oracle_table=table)
    bound = OracleTable(ids, tuple(LIBRARY), np.zeros((4, 2)), "scripted", table_identity(env),
                        tuple(item_digest(it) for it in env.unwrapped.items))
    assert gsm8k(shared_data_dir, oracle_table=bound).unwrapped.oracle_table is bound


def test_oracle_table_argument_type_is_checked(shared_data_dir):
    with pytest.raises(ConfigError, match="oracle_table must be an OracleTable or the path of a saved one, got int"):
        gsm8k(shared_data_dir, oracle_table=123)


@pytest.mark.slow
def test_smollm2_table_is_refused_by_other_generation_settings(smollm2_dir, shared_data_dir, tmp_path):
    """Real component: a table from the real SmolLM2 Receiver (2 items, max_new_tokens=16) is bound to it."""
    from bpa_gym.receivers import make_receiver

    def env(max_new_tokens, **kwargs):
        return gsm8k(shared_data_dir, make_receiver("smollm2", max_new_tokens=max_new_tokens), subset_size=2,
                     **kwargs)

    table = build_oracle_table(env(16), batch_size=4)
    assert table.rewards.shape == (2, 2) and set(np.unique(table.rewards)) <= {0.0, 1.0}
    assert table.identity["generation"]["max_new_tokens"] == 16 and table.receiver == "smollm2"
    path = table.save(tmp_path / "smollm2.npz")
    with pytest.raises(ConfigError) as exc:
        env(24, oracle_table=path)
    assert f"oracle table {path}" in str(exc.value)
    assert "generation.max_new_tokens: table's 16 vs env's 24" in str(exc.value)
    same = env(16, oracle_table=path)  # the same setup accepts it and measures regret against it
    wrapped = RegretWrapper(same)
    wrapped.reset(options={"item_index": 0})
    assert wrapped.step(0)[-1]["regret"]["instant"] == table.rewards[0].max() - table.rewards[0, 0]
