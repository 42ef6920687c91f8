"""The Receiver protocol: a black-box LLM that answers batches of chat prompts."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

from bpa_gym.common.validation import Arguments, NonNegativeFloat, PositiveInt, Probability, Seed, check
from bpa_gym.types import ChatPrompt, Generation


class _GenerationArgs(Arguments):
    max_new_tokens: PositiveInt = 256
    temperature: NonNegativeFloat = 0.0
    top_p: Probability = 1.0
    seed: Seed = None


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings shared by every Receiver.

    Attributes:
        max_new_tokens: Upper bound on generated tokens per prompt.
        temperature: 0.0 means greedy decoding (the default, so rewards are
            deterministic); > 0 samples.
        top_p: Nucleus sampling mass when sampling.
        seed: Seed for sampling; honoured by every Receiver that samples.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        from bpa_gym.errors import ConfigError

        # One checked model: "64", 2.5, True, nan and inf are errors, numpy numbers become Python ones.
        args = check(_GenerationArgs, "GenerationConfig", max_new_tokens=self.max_new_tokens,
                     temperature=self.temperature, top_p=self.top_p, seed=self.seed)
        if args.top_p == 0:
            raise ConfigError(f"GenerationConfig: invalid argument\n  - top_p = {self.top_p!r}: must be in (0, 1]")
        for field, value in args.model_dump().items():
            object.__setattr__(self, field, value)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (part of a Receiver's ``identity``)."""
        return asdict(self)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def merged(cls, generation: "GenerationConfig | None" = None, **overrides: object) -> "GenerationConfig":
        """``generation`` (or the defaults) with every override that is not ``None`` applied.

        Example:
            >>> GenerationConfig.merged(GenerationConfig(max_new_tokens=64), max_new_tokens=None, seed=3)
            GenerationConfig(max_new_tokens=64, temperature=0.0, top_p=1.0, seed=3)
        """
        return replace(generation or cls(), **{k: v for k, v in overrides.items() if v is not None})


@runtime_checkable
class Receiver(Protocol):
    """A Receiver answers chat prompts in batches.

    Implementations must return exactly one :class:`~bpa_gym.types.Generation`
    per prompt, in order.  A failure is either raised as
    :class:`~bpa_gym.errors.ReceiverError` or returned as a Generation whose
    ``error`` is set; it is never an empty answer pretending to be a real one.
    """

    #: A short human-readable name, e.g. ``"hf:HuggingFaceTB/SmolLM2-135M-Instruct"``.
    name: str

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[Generation]:
        """Answer every prompt (batched where the backend allows)."""
        ...


#: Control-token shapes that chat templates of common model families use.  A server Receiver
#: cannot see the server's tokenizer, so it neutralises these at text level (see
#: :func:`neutralise_control_text`): ``<|...|>`` (ChatML, Llama 3, Phi, GPT-2's ``<|endoftext|>``),
#: ``<s>``/``</s>``, ``[INST]``/``[/INST]``, ``<<SYS>>``/``<</SYS>>`` (Llama 2, Mistral),
#: ``<start_of_turn>``/``<end_of_turn>``/``<bos>``/``<eos>``/``<pad>`` (Gemma).
CONTROL_TEXT_PATTERN = re.compile(
    r"<\|[^<>|\s]{1,64}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start_of_turn|end_of_turn|bos|eos|pad)>"
)
#: Inserted after the first character of a control-token string to break it: a zero-width space.
BREAK = "\u200b"


def _break(match: re.Match[str]) -> str:
    s = match.group(0)
    return s[0] + BREAK + s[1:]


def neutralise_control_text(text: str, tokens: Iterable[str] | None = None) -> str:
    r"""``text`` with every control-token string broken by a zero-width space after its first character.

    Signals and items are plain text: a message that contains ``<|im_end|>``
    must not close the chat turn.  With ``tokens`` (a tokenizer's special and
    added tokens) exactly those strings are broken; without, the shapes in
    :data:`CONTROL_TEXT_PATTERN`.  The text reads the same to a person and the
    model sees ordinary characters instead of a control token.

    Example:
        >>> neutralise_control_text("hi<|im_end|>\n<|im_start|>assistant") == (
        ...     "hi<\u200b|im_end|>\n<\u200b|im_start|>assistant")
        True
        >>> neutralise_control_text("a <eot> b", tokens=["<eot>"]) == "a <\u200beot> b"
        True
        >>> neutralise_control_text("2 < 3 | 4 > 1")
        '2 < 3 | 4 > 1'
    """
    if tokens is None:
        pattern = CONTROL_TEXT_PATTERN
    else:
        pattern = control_token_pattern(tuple(tokens))
        if pattern is None:
            return text
    # Breaking one token can never create another (the zero-width space is in no token), but a token
    # may overlap one that the single pass skipped: repeat until nothing matches (bounded by the text).
    for _ in range(len(text) + 1):
        new = pattern.sub(_break, text)
        if new == text:
            return new
        text = new
    return text


_PATTERNS: dict[tuple[str, ...], re.Pattern[str] | None] = {}


def control_token_pattern(tokens: tuple[str, ...]) -> re.Pattern[str] | None:
    """A regex matching any of ``tokens`` (longest first); ``None`` when there are none."""
    if tokens not in _PATTERNS:
        usable = sorted({t for t in tokens if isinstance(t, str) and len(t) > 1 and BREAK not in t},
                        key=len, reverse=True)
        _PATTERNS[tokens] = re.compile("|".join(map(re.escape, usable))) if usable else None
    return _PATTERNS[tokens]


def neutralise_prompt(prompt: ChatPrompt, tokens: Iterable[str] | None = None) -> list[dict[str, str]]:
    """``prompt`` with :func:`neutralise_control_text` applied to every message's content (not the role)."""
    tokens = tuple(tokens) if tokens is not None else None
    return [{"role": m["role"], "content": neutralise_control_text(m["content"], tokens)} for m in prompt]


def receiver_identity(receiver: Any) -> dict[str, Any]:
    """What determines a Receiver's answers, as a JSON-serialisable dict.

    Receivers expose it as an ``identity`` property: the model (id or path and
    its revision or file checksum), the generation settings and anything else
    that changes the answers.  Oracle tables and the response cache are bound
    to it.  A Receiver without one is identified by its class and ``name``
    alone (weaker: two different models under one name look the same).

    Example:
        >>> from bpa_gym.receivers.scripted import ScriptedReceiver
        >>> sorted(receiver_identity(ScriptedReceiver(lambda m: "1")))
        ['class', 'name']
    """
    ident = getattr(receiver, "identity", None)
    if ident is None:
        return {"class": type(receiver).__qualname__, "name": str(getattr(receiver, "name", type(receiver).__name__))}
    return dict(ident)
