"""Prompt templates: how an item and a signal are shown to the Receiver."""

from __future__ import annotations

import string
from dataclasses import dataclass

from bpa_gym.errors import ConfigError
from bpa_gym.types import Item, Message


@dataclass(frozen=True)
class PromptTemplate:
    """Renders an information item plus the Advisor's signal as chat messages.

    The ``user`` template may use ``{question}`` and ``{signal_block}``;
    ``signal_block`` is ``signal_format`` filled with the signal, or "" when the
    signal is empty (so "no signal" really shows nothing).

    Example:
        >>> from bpa_gym.types import Item
        >>> t = PromptTemplate(system="", user="Q: {question}{signal_block}",
        ...                    signal_format="\\nHint: {signal}")
        >>> t.render(Item("x", "1+1?", "2"), "add")[-1]["content"]
        'Q: 1+1?\\nHint: add'
        >>> t.render(Item("x", "1+1?", "2"), "")[-1]["content"]
        'Q: 1+1?'
    """

    system: str
    user: str
    signal_format: str = "\n\nAdvice: {signal}"

    def __post_init__(self) -> None:
        fields = {f for _, f, _, _ in string.Formatter().parse(self.user) if f}
        unknown = fields - {"question", "signal_block"}
        if unknown:
            raise ConfigError(
                f"PromptTemplate.user uses unknown fields {sorted(unknown)}; "
                "only {question} and {signal_block} are available"
            )
        if "question" not in fields:
            raise ConfigError("PromptTemplate.user must contain {question}")
        if "{signal}" not in self.signal_format:
            raise ConfigError("PromptTemplate.signal_format must contain {signal}")

    def render(self, item: Item, signal: str) -> list[Message]:
        """The chat messages for ``item`` with ``signal`` (may be empty)."""
        signal = signal.strip()
        block = self.signal_format.format(signal=signal) if signal else ""
        messages: list[Message] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": self.user.format(question=item.question, signal_block=block)})
        return messages
