"""Plain data records shared by the game core: items, chat messages, generations, outcomes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence, TypedDict


class Message(TypedDict):
    """One chat message, as in the OpenAI chat format."""

    role: str
    content: str


#: A prompt for a Receiver: a list of chat messages.
ChatPrompt = Sequence[Message]


@dataclass(frozen=True)
class Item:
    """An information item: the state the Advisor observes.

    Attributes:
        id: Stable identifier (e.g. ``"gsm8k/test/17"``).
        question: The task text shown to the Advisor and to the Receiver.
        gold: The reference answer. It never appears in an observation.
        meta: Task-specific extras (e.g. HumanEval tests).
    """

    id: str
    question: str
    gold: str
    meta: Mapping[str, Any] = field(default_factory=dict)


#: Why a Receiver stopped generating (the OpenAI API's vocabulary).
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Generation:
    """What a Receiver produced for one prompt.

    Attributes:
        text: The completion text ("" when ``error`` is set).
        prompt_tokens: Tokens in the rendered prompt, when the Receiver knows.
        completion_tokens: Tokens generated, when the Receiver knows.
        latency_s: Wall-clock seconds of the call that produced this
            generation (for a batch, the batch's time divided evenly).
        error: ``None`` on success; otherwise a description of the failure.
        finish_reason: Why generation stopped: ``"stop"`` (end of sequence or
            a stop string), ``"length"`` (cut at ``max_new_tokens``), or
            ``None`` when the Receiver cannot tell.
    """

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    error: str | None = None
    finish_reason: FinishReason | None = None


#: How the scorer read a response.
#: ``ok``: an answer was extracted; ``unparseable``: no answer could be read
#: (no number, a number beyond the scorer's bounds, or a scorer failure; different
#: from wrong); ``truncated``: the Receiver stopped at its length limit
#: (``finish_reason == "length"``) before writing an explicit final answer, so
#: nothing is read from the cut-off text (a stray number is never scored);
#: ``receiver_error``: the Receiver failed.  Only ``ok`` can be correct.
ParseStatus = Literal["ok", "unparseable", "truncated", "receiver_error"]


@dataclass(frozen=True)
class Score:
    """A scorer's verdict on one response.

    Attributes:
        correct: Whether the answer is right (only ever with ``status="ok"``).
        extracted: The answer read, or ``None``.
        status: See :data:`ParseStatus`.
        reason: Why there is no answer (``unparseable`` / ``truncated``), else ``None``.
        explicit: Whether the answer followed an explicit final-answer marker
            (GSM8K: ``False`` for the last-number fallback).  A response cut
            at the length limit is scored only from an explicit answer.
    """

    correct: bool
    extracted: str | None
    status: ParseStatus
    reason: str | None = None
    explicit: bool = True


@dataclass(frozen=True)
class Outcome:
    """The result of one play of the game: item + signal -> Receiver -> reward.

    Attributes:
        item_id: Id of the item played.
        signal: The signal text the Receiver saw ("" for no signal).
        reward: 1.0 if correct, 0.0 if not; NaN for a flagged Receiver failure.
        correct: Whether the Receiver's answer was correct.
        response: The Receiver's raw text.
        extracted: The answer the scorer extracted, or ``None``.
        gold: The reference answer.
        status: See :data:`ParseStatus`.
        latency_s: Seconds attributed to this generation.
        prompt_tokens: Prompt length in tokens, if known.
        completion_tokens: Completion length in tokens, if known.
        error: The Receiver's error message for a flagged failure.
        parse_reason: Why the response was ``unparseable`` or ``truncated``
            (``None`` when ``ok``).
        finish_reason: Why the Receiver stopped (see :class:`Generation`):
            ``"stop"``, ``"length"`` or ``None`` (unknown).
    """

    item_id: str
    signal: str
    reward: float
    correct: bool
    response: str
    extracted: str | None
    gold: str
    status: ParseStatus
    latency_s: float
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None = None
    parse_reason: str | None = None
    finish_reason: FinishReason | None = None

    @property
    def failed(self) -> bool:
        """True when the Receiver failed and the reward is undefined (NaN)."""
        return self.status == "receiver_error" or math.isnan(self.reward)

    def as_info(self) -> dict[str, Any]:
        """The outcome as the stable ``info`` dict of a step (see env docs)."""
        return {
            "item_id": self.item_id,
            "signal": self.signal,
            "response": self.response,
            "extracted_answer": self.extracted,
            "gold": self.gold,
            "correct": self.correct,
            "parse_status": self.status,
            "latency_s": self.latency_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "receiver_error": self.error,
            "parse_reason": self.parse_reason,
            "finish_reason": self.finish_reason,
        }
