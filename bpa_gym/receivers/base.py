"""The Receiver protocol: a black-box LLM that answers batches of chat prompts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, Sequence, runtime_checkable

from bpa_gym.types import ChatPrompt, Generation


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

        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")

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
