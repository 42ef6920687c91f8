"""PersuasionGame.play on bad answers and cut-off answers: no lost batch, truncation visible.

Issue 8 items 5 and 6: a response the scorer cannot read is ``unparseable``
with a reason (never an exception out of ``play``); a scorer bug becomes a
flagged unparseable outcome; an answer cut at the length limit before an
explicit final answer is ``truncated`` (reward 0, never read from a stray
number), and ``Outcome`` / step ``info`` carry ``finish_reason``.
"""

from __future__ import annotations

import math

import gymnasium as gym
import pytest

import bpa_gym  # noqa: F401  (registers the envs)
from bpa_gym.envs.llm import STEP_INFO_KEYS
from bpa_gym.game import PersuasionGame
from bpa_gym.receivers.scripted import ScriptedReceiver
from bpa_gym.tasks.gsm8k import GSM8KTask
from bpa_gym.types import Item, Score

ITEMS = [Item(f"gsm8k/test/{i}", f"Question {i}?", "18") for i in range(8)]


def _task() -> GSM8KTask:
    task = GSM8KTask.__new__(GSM8KTask)
    task._data_dir, task._cache = None, {}
    return task


def _by_question(answers: dict[int, str]):
    def answer(messages):
        content = messages[-1]["content"]
        return next(text for i, text in answers.items() if f"Question {i}?" in content)
    return answer


@pytest.mark.parametrize("on_error", ["raise", "flag"])
def test_one_unreadable_answer_never_loses_the_batch(on_error: str) -> None:
    answers = {i: "The answer is 18." for i in range(8)}
    answers[2] = "1e400"
    answers[5] = "9" * 5000
    game = PersuasionGame(_task(), ScriptedReceiver(_by_question(answers)), on_error=on_error)
    outcomes = game.play(ITEMS, [""] * 8)
    assert len(outcomes) == 8
    assert [o.status for o in outcomes] == ["ok", "ok", "unparseable", "ok", "ok", "unparseable", "ok", "ok"]
    assert [o.reward for o in outcomes] == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert "exponent" in outcomes[2].parse_reason and "digits" in outcomes[5].parse_reason
    assert outcomes[0].parse_reason is None


class _BuggyTask:
    """A task whose scorer crashes on some responses (a scorer bug, not the Receiver's fault)."""

    name = "buggy"
    splits = ("test",)

    def load(self, split):
        return ITEMS

    def score(self, response: str, item: Item) -> Score:
        if "boom" in response:
            raise ZeroDivisionError("division by zero")
        return Score(response == item.gold, response, "ok")

    def default_template(self):
        return _task().default_template()


def test_a_scorer_bug_is_a_flagged_unparseable_outcome() -> None:
    answers = {i: "18" for i in range(8)}
    answers[3] = "boom"
    game = PersuasionGame(_BuggyTask(), ScriptedReceiver(_by_question(answers)))
    with pytest.warns(RuntimeWarning, match="ZeroDivisionError"):
        outcomes = game.play(ITEMS, [""] * 8)
    assert len(outcomes) == 8 and sum(o.reward for o in outcomes) == 7.0
    bad = outcomes[3]
    assert (bad.status, bad.reward, bad.correct, bad.extracted) == ("unparseable", 0.0, False, None)
    assert "scorer raised ZeroDivisionError: division by zero" in bad.parse_reason


def test_a_scorer_returning_garbage_is_flagged_too() -> None:
    class Garbage(_BuggyTask):
        def score(self, response, item):
            return "correct!"

    with pytest.warns(RuntimeWarning, match="not a Score"):
        (outcome,) = PersuasionGame(Garbage(), ScriptedReceiver(lambda m: "18")).play(ITEMS[:1], [""])
    assert outcome.status == "unparseable" and outcome.reward == 0.0


# ----------------------------------------------------------------------------- truncation

@pytest.mark.parametrize(
    "text,finish,status,reward",
    [
        ("16 - 3 - 4 = 9 and 9 * 2 = 18", "length", "truncated", 0.0),  # stray 18: not an answer
        ("Let me think. First, 0", "length", "truncated", 0.0),
        ("Let me think about", "length", "truncated", 0.0),  # no number at all: truncated, not unparseable
        ("The answer is 18. Let me double-check: 9 *", "length", "ok", 1.0),  # explicit before the cut
        ("The answer is 17. Let me double-check: 18", "length", "ok", 0.0),
        ("16 - 3 - 4 = 9 and 9 * 2 = 18", "stop", "ok", 1.0),  # finished: the last number is the answer
        ("16 - 3 - 4 = 9 and 9 * 2 = 18", None, "ok", 1.0),  # unknown finish reason: scored as before
        ("I don't know", "stop", "unparseable", 0.0),
    ],
)
def test_truncation_is_visible(text: str, finish: str | None, status: str, reward: float) -> None:
    game = PersuasionGame(_task(), ScriptedReceiver(lambda m: text, finish_reason=finish))
    (outcome,) = game.play(ITEMS[:1], [""])
    assert (outcome.status, outcome.reward, outcome.finish_reason) == (status, reward, finish)
    if status == "truncated":
        assert outcome.extracted is None and not outcome.correct
        assert "length limit" in outcome.parse_reason
    info = outcome.as_info()
    assert info["finish_reason"] == finish and info["parse_status"] == status


def test_finish_reason_callable_and_failed_generations_keep_it() -> None:
    receiver = ScriptedReceiver(lambda m: "9 * 2 = 18", finish_reason=lambda m, text: "length" if "0?" in
                                m[-1]["content"] else "stop")
    outcomes = PersuasionGame(_task(), receiver).play(ITEMS[:2], ["", ""])
    assert [o.status for o in outcomes] == ["truncated", "ok"]
    assert [o.finish_reason for o in outcomes] == ["length", "stop"]
    flagged = PersuasionGame(_task(), ScriptedReceiver(lambda m: "", fail_on=lambda m: True), on_error="flag")
    (o,) = flagged.play(ITEMS[:1], [""])
    assert o.status == "receiver_error" and math.isnan(o.reward)


def test_env_step_info_carries_finish_reason_and_parse_reason(shared_data_dir) -> None:
    assert "finish_reason" in STEP_INFO_KEYS and "parse_reason" in STEP_INFO_KEYS
    env = gym.make("BayesPersuasion-GSM8K-v0", data_dir=shared_data_dir, subset_size=3,
                   receiver=ScriptedReceiver(lambda m: "So 9 * 2 = 18", finish_reason="length"))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(0)
    assert set(info) == set(STEP_INFO_KEYS)
    assert (reward, info["parse_status"], info["finish_reason"], info["extracted_answer"]) == \
        (0.0, "truncated", "length", None)
    assert "length limit" in info["parse_reason"]


def test_scripted_receiver_rejects_a_bad_finish_reason() -> None:
    from bpa_gym.errors import ConfigError

    with pytest.raises(ConfigError, match="finish_reason"):
        ScriptedReceiver(lambda m: "", finish_reason="eos")
    with pytest.raises(ConfigError, match="returned 'eos'"):
        ScriptedReceiver(lambda m: "", finish_reason=lambda m, t: "eos").generate([[{"role": "user", "content": "x"}]])
