"""A Receiver wrapper that answers from a :class:`~bpa_gym.response_cache.ResponseCache` first.

:class:`CachingReceiver` looks every prompt of a batch up in the cache, sends
only the misses to the wrapped Receiver (in one batch), stores the new
successful answers in one transaction, and returns all answers in order.  A
rerun of the same experiment therefore replays the identical responses (and
rewards) without calling the Receiver.

Which Receivers are cached: only those that declare an ``identity`` (the
built-in HF, SmolLM2 and OpenAI-compatible Receivers do), because the key must
pin the model and its settings.  Greedy Receivers are cached by default (their
answers are a function of the prompt); a sampling Receiver only with
``allow_sampling=True``, and then each distinct prompt is sampled once and
replayed ever after (the cache turns sampling into one fixed draw per prompt,
seed included in the key).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from bpa_gym.errors import ConfigError, ReceiverError
from bpa_gym.receivers.base import Receiver, receiver_identity
from bpa_gym.response_cache import ResponseCache, cache_disabled_by_env
from bpa_gym.types import ChatPrompt, Generation


def is_greedy(receiver: Any) -> bool:
    """Whether ``receiver`` decodes greedily (its ``generation.temperature`` is 0)."""
    gen = getattr(receiver, "generation", None)
    if gen is not None and hasattr(gen, "greedy"):
        return bool(gen.greedy)
    ident = getattr(receiver, "identity", None) or {}
    temperature = (ident.get("generation") or {}).get("temperature")
    return temperature == 0 or temperature == 0.0


class CachingReceiver:
    """Answer from the response cache first; ask the wrapped Receiver only for misses.

    Args:
        receiver: The Receiver to wrap; it must have an ``identity``.
        cache: A :class:`ResponseCache`, a database path, or ``None`` for the
            default path (``$BPA_CACHE_DIR/responses.sqlite`` or the user cache).
        allow_sampling: Cache a sampling Receiver too (see the module docs).

    Attributes:
        hits: Prompts answered from the cache so far.
        misses: Prompts sent to the wrapped Receiver so far.

    Raises:
        ConfigError: the Receiver has no identity, or samples and
            ``allow_sampling`` is False.

    Example:
        >>> import tempfile, pathlib
        >>> from bpa_gym.receivers.scripted import ScriptedReceiver
        >>> class Pinned(ScriptedReceiver):  # a test double with an identity
        ...     identity = {"class": "Pinned", "model": "2+2 oracle", "generation": {"temperature": 0.0}}
        >>> inner = Pinned(lambda messages: "4")
        >>> r = CachingReceiver(inner, pathlib.Path(tempfile.mkdtemp()) / "c.sqlite")
        >>> p = [{"role": "user", "content": "2+2?"}]
        >>> [g.text for g in r.generate([p, p])], r.hits, r.misses
        (['4', '4'], 0, 2)
        >>> [g.text for g in r.generate([p])], r.hits, inner.calls
        (['4'], 1, [2])
    """

    def __init__(self, receiver: Receiver, cache: ResponseCache | str | os.PathLike[str] | None = None, *,
                 allow_sampling: bool = False) -> None:
        if not callable(getattr(receiver, "generate", None)):
            raise ConfigError(f"CachingReceiver needs a Receiver (with generate(prompts)), got {receiver!r}")
        if getattr(receiver, "identity", None) is None:
            raise ConfigError(
                f"receiver {getattr(receiver, 'name', receiver)!r} has no `identity`, so its answers cannot be "
                "cached safely (the key must pin the model and its settings); give it an identity property or "
                "turn the cache off (cache=False)"
            )
        if not isinstance(allow_sampling, bool):
            raise ConfigError(f"allow_sampling must be True or False, got {allow_sampling!r}")
        if not allow_sampling and not is_greedy(receiver):
            raise ConfigError(
                f"receiver {receiver.name!r} samples (temperature > 0): its answers are cached only with "
                "allow_sampling=True (each distinct prompt is then sampled once and replayed); or use cache=False"
            )
        self.receiver = receiver
        self.cache = cache if isinstance(cache, ResponseCache) else ResponseCache(cache)
        self.name = receiver.name
        self.hits = 0
        self.misses = 0

    @property
    def identity(self) -> dict[str, Any]:
        """The wrapped Receiver's identity (the cache is transparent)."""
        return receiver_identity(self.receiver)

    def __getattr__(self, name: str) -> Any:  # tokenizer, generation, close, ... of the wrapped Receiver
        if name == "receiver":
            raise AttributeError(name)
        return getattr(self.receiver, name)

    def __repr__(self) -> str:
        return f"CachingReceiver({self.receiver!r}, cache={self.cache!r})"

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[Generation]:
        """Answer every prompt: cached answers first, one batch to the Receiver for the rest."""
        if not prompts:
            return []
        identity = self.identity
        found = self.cache.get_many(identity, prompts)
        missing = [i for i, g in enumerate(found) if g is None]
        if missing:
            asked = [prompts[i] for i in missing]
            answers = self.receiver.generate(asked)
            if len(answers) != len(asked):
                raise ReceiverError(
                    f"receiver {self.name} returned {len(answers)} generations for {len(asked)} prompts"
                )
            self.cache.put_many(identity, asked, answers)
            for i, g in zip(missing, answers):
                found[i] = g
        self.hits += len(prompts) - len(missing)
        self.misses += len(missing)
        return [g for g in found if g is not None]


#: What ``cache=`` accepts (see :func:`with_response_cache`).
CacheOption = Any


def with_response_cache(receiver: Receiver, cache: CacheOption = "auto") -> Receiver:
    """``receiver`` wrapped in a :class:`CachingReceiver` as ``cache`` asks.

    Args:
        receiver: Any Receiver.
        cache: ``"auto"`` (the default of the envs): cache a greedy Receiver
            that has an ``identity`` (the built-in HF, SmolLM2 and
            OpenAI-compatible ones) in the default database
            (``$BPA_RESPONSE_CACHE``, else ``$BPA_CACHE_DIR/responses.sqlite``,
            else the user cache folder), unless ``BPA_RESPONSE_CACHE=off``;
            other Receivers are returned as they are.  ``False`` or ``None``:
            no cache.  ``True``: cache in the default database, sampling
            Receivers too.  A path or a :class:`ResponseCache`: cache there,
            sampling Receivers too.

    Returns:
        The Receiver to use (``receiver`` itself or its caching wrapper).

    Raises:
        ConfigError: ``cache`` is not one of the above, or caching was asked
            for a Receiver without an identity.

    Example:
        >>> from bpa_gym.receivers.scripted import ScriptedReceiver
        >>> r = ScriptedReceiver(lambda m: "1")
        >>> with_response_cache(r) is r  # no identity: never cached implicitly
        True
    """
    if isinstance(receiver, CachingReceiver) or cache is False or cache is None:
        return receiver
    if isinstance(cache, str) and cache == "auto":
        if cache_disabled_by_env() or getattr(receiver, "identity", None) is None or not is_greedy(receiver):
            return receiver
        return CachingReceiver(receiver)
    if cache is True:
        return CachingReceiver(receiver, allow_sampling=True)
    if isinstance(cache, (str, os.PathLike, ResponseCache)):
        return CachingReceiver(receiver, cache, allow_sampling=True)
    raise ConfigError(
        f"cache must be 'auto', True, False, a database path or a ResponseCache, got {type(cache).__name__}: "
        f"{cache!r}"
    )


__all__ = ["CachingReceiver", "is_greedy", "with_response_cache"]
