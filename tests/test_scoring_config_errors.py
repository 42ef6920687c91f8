"""Every bad argument of the GSM8K / Identity envs and bad GSM8K data gets a clear error (issue 8, item 10).

Arguments go through :mod:`bpa_gym.common.validation` (one ConfigError naming the
argument, the value and what is expected); data errors name the file and the
1-based line.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401
from bpa_gym.errors import ConfigError, DataNotFoundError
from bpa_gym.receivers.scripted import ScriptedReceiver
from bpa_gym.tasks.gsm8k import GSM8KTask

ENV_ID = "BayesPersuasion-GSM8K-v0"


def _make(shared_data_dir, **kwargs):
    kwargs.setdefault("receiver", ScriptedReceiver(lambda m: "The answer is 1"))
    kwargs.setdefault("data_dir", shared_data_dir)
    return gym.make(ENV_ID, **kwargs)


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"data_dir": 123}, "data_dir = 123"),
        ({"subset_size": math.nan}, "subset_size = nan"),
        ({"subset_size": math.inf}, "subset_size = inf"),
        ({"subset_size": 2.7}, "subset_size = 2.7"),
        ({"subset_size": 0}, "subset_size = 0"),
        ({"subset_size": True}, "subset_size = True"),
        ({"max_signal_length": 2.5, "signals": "text"}, "max_signal_length = 2.5"),
        ({"max_signal_length": "512", "signals": "text"}, "max_signal_length = '512'"),
        ({"template": "abc"}, "template = 'abc'"),
        ({"signals": "words"}, "signals = 'words'"),
        ({"split": 3}, "split = 3"),
        ({"shuffle": "yes"}, "shuffle = 'yes'"),
        ({"shuffle": 1}, "shuffle = 1"),
        ({"receiver_kwargs": "max_new_tokens=8", "receiver": "smollm2"}, "receiver_kwargs"),
        ({"render_mode": "human"}, "render_mode = 'human'"),
        ({"signal_library": "abc"}, "signal_library = 'abc'"),
        ({"task": 42}, "task = 42"),
        ({"receiver": 42}, "receiver = 42"),
    ],
)
def test_bad_constructor_arguments_are_config_errors(shared_data_dir, kwargs, named) -> None:
    with pytest.raises(ConfigError, match="BayesPersuasionLLMEnv: invalid argument") as err:
        _make(shared_data_dir, **kwargs)
    assert named in str(err.value)


def test_several_bad_arguments_are_reported_together(shared_data_dir) -> None:
    with pytest.raises(ConfigError, match="invalid arguments") as err:
        _make(shared_data_dir, subset_size=2.7, template="abc", signals="text", max_signal_length="512")
    assert all(name in str(err.value) for name in ("subset_size", "template", "max_signal_length"))


@pytest.mark.parametrize("seed", [-1, 1.5, "abc", math.nan, True])
def test_bad_seeds_in_reset(shared_data_dir, seed) -> None:
    env = _make(shared_data_dir, subset_size=3)
    with pytest.raises(ConfigError, match=r"reset\(\): invalid argument\n  - seed = "):
        env.reset(seed=seed)
    assert env.reset(seed=np.int64(3))[1]["item_index"] in range(3)


@pytest.mark.parametrize("options,match", [
    ("x", r"options = 'x': must be a dict"),
    ({"item_index": 1.5}, r"item_index = 1.5"),
    ({"item_index": -1}, r"item_index = -1"),
    ({"item_index": "2"}, r"item_index = '2'"),
    ({"item_index": 3}, r"item_index 3 outside 0..2"),
    ({"bogus": 1}, r"bogus = 1: unknown argument"),
])
def test_bad_reset_options(shared_data_dir, options, match) -> None:
    env = _make(shared_data_dir, subset_size=3)
    with pytest.raises(ConfigError, match=match):
        env.reset(options=options)


@pytest.mark.parametrize("action", [math.inf, np.float64(math.inf), -math.inf, math.nan, True, 1.0, "1", None])
def test_bad_discrete_actions(shared_data_dir, action) -> None:
    env = _make(shared_data_dir, subset_size=3)
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="outside the action space"):
        env.step(action)


def test_text_mode_rejects_non_string_signals(shared_data_dir) -> None:
    env = _make(shared_data_dir, subset_size=3, signals="text")
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="not a string but float"):
        env.step(math.inf)


def test_step_after_the_episode_ended_raises(shared_data_dir) -> None:
    env = _make(shared_data_dir, subset_size=3)
    env.reset(seed=0)
    assert env.step(0)[2] is True
    with pytest.raises(ConfigError, match="after the episode ended.*reset"):
        env.step(0)
    env.reset()
    env.step(0)  # a new episode steps again


@pytest.mark.parametrize("kwargs,named", [
    ({"num_signals": 2.5}, "num_signals = 2.5"),
    ({"num_signals": 1}, "num_signals = 1"),
    ({"num_topics": 0}, "num_topics = 0"),
    ({"num_items": "64"}, "num_items = '64'"),
    ({"task_seed": -1}, "task_seed = -1"),
    ({"task_seed": math.nan}, "task_seed = nan"),
    ({"subset_size": 2.7}, "subset_size = 2.7"),
])
def test_identity_env_arguments(kwargs, named) -> None:
    with pytest.raises(ConfigError, match="IdentityEnv: invalid argument") as err:
        gym.make("BayesPersuasion-Identity-v0", **kwargs)
    assert named in str(err.value)


# ----------------------------------------------------------------------------- data files

def _split_file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "gsm8k").mkdir(exist_ok=True)
    path = tmp_path / "gsm8k" / "test.jsonl"
    path.write_text(text)
    return path


GOOD = '{"question": "q", "answer": "#### 4"}\n'


@pytest.mark.parametrize(
    "bad_line,match",
    [
        ('{"question": null, "answer": "#### 4"}', r"'question' must be non-empty text, got None"),
        ('{"question": 42, "answer": "#### 4"}', r"'question' must be non-empty text, got 42"),
        ('{"question": "q", "answer": 4}', r"'answer' must be non-empty text, got 4"),
        ('{"question": "q", "answer": "#### 1e400"}', r"exponent e400"),
        ('{"question": "q", "answer": "#### ' + "9" * 500 + '"}', r"500 digits"),
        ('[' * 100_000 + ']' * 100_000, r"nested too deeply"),
        ('{"question": "q", "answer": "#### 4"', r"malformed JSON"),
    ],
)
def test_bad_records_name_the_file_and_line(tmp_path, bad_line, match) -> None:
    path = _split_file(tmp_path, GOOD + "\n" + bad_line + "\n" + GOOD)
    with pytest.raises(DataNotFoundError, match=match) as err:
        GSM8KTask(data_dir=tmp_path).load("test")
    assert f"{path}:3:" in str(err.value)


def test_an_empty_split_file_names_the_file(tmp_path) -> None:
    path = _split_file(tmp_path, "\n\n")
    with pytest.raises(DataNotFoundError, match="holds no records") as err:
        GSM8KTask(data_dir=tmp_path).load("test")
    assert str(path) in str(err.value)


def test_data_dir_of_the_wrong_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="data_dir must be a folder path"):
        GSM8KTask(data_dir=123)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs,named", [
    ({"max_length": 2.5}, "max_length = 2.5"),
    ({"max_length": "32"}, "max_length = '32'"),
    ({"max_length": 0}, "max_length = 0"),
    ({"truncation_side": "middle"}, "truncation_side = 'middle'"),
    ({"dtype": np.float32}, "dtype"),
])
def test_token_ids_wrapper_arguments(shared_dir, kwargs, named) -> None:
    from bpa_gym.wrappers import TokenIdsObservation

    with pytest.raises(ConfigError, match="TokenIdsObservation: invalid argument") as err:
        TokenIdsObservation(gym.make("BayesPersuasion-Identity-v0"), shared_dir / "models" / "gpt2", **kwargs)
    assert named in str(err.value)
