"""The Task protocol: where items come from and how responses are scored."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bpa_gym.prompts import PromptTemplate
from bpa_gym.types import Item, Score


@runtime_checkable
class Task(Protocol):
    """A task = an item source + a scorer + the default prompt template."""

    #: Short name, e.g. ``"gsm8k"``.
    name: str
    #: Splits :meth:`load` accepts.
    splits: tuple[str, ...]

    def load(self, split: str) -> list[Item]:
        """All items of ``split``, in the dataset's order."""
        ...

    def score(self, response: str, item: Item) -> Score:
        """Judge one Receiver response against the item's gold answer.

        Must not raise on any response (a Receiver may return anything): an
        unreadable one is ``Score(False, None, "unparseable", reason=...)``.
        Set ``explicit=False`` when the answer is a fallback guess rather than
        a marked final answer, so a response cut at the length limit is not
        scored from it.  :class:`~bpa_gym.game.PersuasionGame` guards this
        call: an exception becomes an ``unparseable`` outcome with the reason.
        """
        ...

    def default_template(self) -> PromptTemplate:
        """The prompt template used when the caller gives none."""
        ...

    # Optional: ``score_many(responses, items) -> list[Score]`` judges a whole
    # batch at once (HumanEval runs a batch's programs in parallel sandboxes).
    # :meth:`~bpa_gym.game.PersuasionGame.play` uses it when a task has it, with
    # the same truncation rules, and falls back to :meth:`score` per item if it
    # raises.  It is not part of the runtime-checked protocol.
