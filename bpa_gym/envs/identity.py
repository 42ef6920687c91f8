"""A known-optimum persuasion env for testing agents (an ``IdentityEnv`` analogue).

``BayesPersuasion-Identity-v0`` is the LLM game with a synthetic task and a
rule-based Receiver: each item names a topic, and the Receiver answers
correctly iff the Advisor's signal is the strategy assigned to that topic.
The optimal policy earns 1.0 per step; a uniformly random one earns 1/m.
It exercises the same code path as the GSM8K env (Text observations, the
batched game, the scorer), so an agent that learns here is wired correctly.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from pydantic import Field

from bpa_gym.common.validation import Arguments, NonNegativeInt, PositiveInt, check
from bpa_gym.envs.llm import BayesPersuasionLLMEnv
from bpa_gym.errors import ConfigError
from bpa_gym.prompts import PromptTemplate
from bpa_gym.types import ChatPrompt, Generation, Item, Score

TOPICS: tuple[str, ...] = (
    "apples", "bridges", "clocks", "dolphins", "engines", "forests", "glaciers", "harbours",
    "islands", "jungles", "kettles", "lanterns", "meadows", "needles", "orchards", "pianos",
)


class IdentityTaskArgs(Arguments):
    """The arguments of :class:`IdentityTask`."""

    num_signals: PositiveInt = Field(4, ge=2, le=26)
    num_topics: PositiveInt = Field(8, le=len(TOPICS))
    num_items: PositiveInt = 64
    seed: NonNegativeInt = 0
    data_dir: Any = None


class IdentityTask:
    """Synthetic items whose correct signal is a fixed function of the item's topic.

    Each item asks "Which strategy fits <topic>?"; items with the same topic
    share their text, as in SB3's ``IdentityEnv`` the observation determines
    the right action.

    Args:
        num_signals: m, the number of strategies (signals).
        num_topics: Number of distinct topics (each mapped to one strategy).
        num_items: Items per split.
        seed: Seed of the topic -> strategy map and of the item texts.
    """

    name = "identity"
    splits = ("train", "test")

    def __init__(self, num_signals: int = 4, num_topics: int = 8, num_items: int = 64, seed: int = 0,
                 data_dir: Any = None) -> None:
        check(IdentityTaskArgs, "IdentityTask", num_signals=num_signals, num_topics=num_topics, num_items=num_items,
              seed=seed, data_dir=data_dir)
        rng = np.random.default_rng(seed)
        self.num_signals = num_signals
        self.topics = TOPICS[:num_topics]
        #: topic -> index of the right strategy
        self.answer_key = {t: int(rng.integers(num_signals)) for t in self.topics}
        self._items = {
            split: [self._item(split, i, rng) for i in range(num_items)] for split in self.splits
        }

    def _item(self, split: str, i: int, rng: np.random.Generator) -> Item:
        topic = self.topics[int(rng.integers(len(self.topics)))]
        question = f"Which strategy fits {topic}?"
        return Item(f"identity/{split}/{i}", question, self.strategy_name(self.answer_key[topic]), {"topic": topic})

    @staticmethod
    def strategy_name(index: int) -> str:
        return f"Strategy {chr(ord('A') + index)}"

    def signal_library(self) -> list[str]:
        return [self.strategy_name(i) for i in range(self.num_signals)]

    def load(self, split: str) -> list[Item]:
        if split not in self._items:
            raise ConfigError(f"unknown split {split!r}; choose from {list(self.splits)}")
        return list(self._items[split])

    def score(self, response: str, item: Item) -> Score:
        m = re.search(r"Strategy [A-Z]", response)
        if m is None:
            return Score(False, None, "unparseable")
        return Score(m.group(0) == item.gold, m.group(0), "ok")

    def default_template(self) -> PromptTemplate:
        return PromptTemplate(system="", user="{question}{signal_block}", signal_format="\nAdvice: {signal}")


class IdentityReceiver:
    """Rule-based Receiver for :class:`IdentityTask` (a test double, not an LLM).

    It repeats the strategy it was advised ("Using Strategy B.") and
    "I don't know." when the prompt carries no advice; the task scores the
    repeated strategy against the topic's answer key.
    """

    name = "identity-rule"

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[Generation]:
        out = []
        for messages in prompts:
            m = re.search(r"Advice: (Strategy [A-Z])", messages[-1]["content"])
            out.append(Generation(f"Using {m.group(1)}." if m else "I don't know.", latency_s=0.0))
        return out


class IdentityEnv(BayesPersuasionLLMEnv):
    """``BayesPersuasion-Identity-v0``: the right signal is a function of the item.

    Optimal return 1.0 per step; random 1/m.

    Example:
        >>> import gymnasium as gym, bpa_gym
        >>> env = gym.make("BayesPersuasion-Identity-v0", num_signals=4)
        >>> obs, info = env.reset(seed=0)
        >>> key = env.unwrapped.task.answer_key
        >>> topic = env.unwrapped.item.meta["topic"]
        >>> env.step(key[topic])[1]
        1.0
    """

    def __init__(self, num_signals: int = 4, num_topics: int = 8, num_items: int = 64, task_seed: int = 0,
                 split: str = "train", render_mode: str | None = None, **kwargs: Any) -> None:
        try:
            task = IdentityTask(num_signals, num_topics, num_items, task_seed)
        except ConfigError as e:  # name the env's own argument: task_seed, not seed
            raise ConfigError(str(e).replace("IdentityTask", "IdentityEnv").replace("  - seed =", "  - task_seed =")) \
                from None
        self.task_seed = task_seed  # recorded in oracle tables (bpa_gym.oracle_table.table_identity)
        if "receiver" not in kwargs:
            kwargs["receiver"] = IdentityReceiver()
        super().__init__(task, signals="discrete", signal_library=task.signal_library(), split=split,
                         render_mode=render_mode, **kwargs)

    def regret_oracle(self, comparator: str = "per_item"):
        """Exact oracle: the rule-based Receiver is deterministic, so the table is the truth."""
        if self.oracle_table is None:
            from bpa_gym.oracle_table import build_oracle_table

            self.oracle_table = build_oracle_table(self)
        return super().regret_oracle(comparator)

    def optimal_action(self) -> int:
        """The right signal for the current item (for tests and oracles)."""
        return self.task.answer_key[self.item.meta["topic"]]
