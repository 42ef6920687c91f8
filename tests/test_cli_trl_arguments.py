"""bpa_gym.integrations.trl: every bad argument of advisor_dataset / make_reward_fn is one clear ConfigError."""

from __future__ import annotations

import pytest

from bpa_gym import PersuasionGame
from bpa_gym.errors import ConfigError
from bpa_gym.integrations.trl import advisor_dataset, make_reward_fn
from bpa_gym.receivers import ScriptedReceiver
from bpa_gym.tasks.gsm8k import GSM8KTask
from bpa_gym.types import Item

ITEMS = [Item("q/0", "What is 6*7?", "42"), Item("q/1", "What is 1+1?", "2")]


@pytest.mark.parametrize("kwargs, match", [
    ({"template": 123}, "template = 123: must be a string"),
    ({"limit": 0}, "limit = 0: must be an integer >= 1"),
    ({"limit": 1.5}, "limit = 1.5: must be an integer >= 1"),
    ({"limit": float("nan")}, "limit = nan"),
    ({"limit": True}, "limit = True"),
    ({"limit": "1"}, "limit = '1'"),
    ({"conversational": 1}, "conversational = 1: must be True or False"),
    ({"conversational": True, "system": 5}, "system = 5: must be a string or None"),
])
def test_advisor_dataset_arguments(kwargs, match):
    pytest.importorskip("datasets")
    with pytest.raises(ConfigError, match=match):
        advisor_dataset(ITEMS, **kwargs)
    assert len(advisor_dataset(ITEMS, limit=1)) == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"name": 5}, "name = 5: must be a string"),
    ({"name": "not an identifier"}, "Python identifier"),
    ({"max_signal_chars": -1}, "max_signal_chars = -1: must be an integer >= 0"),
    ({"max_signal_chars": 2.5}, "max_signal_chars = 2.5"),
    ({"log_metrics": "no"}, "log_metrics = 'no': must be True or False"),
    ({"items": "q/0"}, "items must be a sequence of bpa_gym.types.Item"),
    ({"items": [1, 2]}, r"items must be bpa_gym.types.Item objects; got \['int', 'int'\]"),
])
def test_make_reward_fn_arguments(kwargs, match):
    game = PersuasionGame(GSM8KTask(), ScriptedReceiver(lambda m: "The answer is 42."))
    kwargs.setdefault("items", ITEMS)
    with pytest.raises(ConfigError, match=match):
        make_reward_fn(game, **kwargs)
    assert make_reward_fn(game, items=ITEMS, max_signal_chars=3)([""], ["x"], item_id=["q/0"]) == [1.0]
