"""Advisors for evaluation: who writes the signal each item gets.

An Advisor maps information items to signal texts: ``advisor.signals(items) -> list[str]``
(one signal per item, in order).  :func:`load_advisor` builds one from a spec
string, which is how ``bpa-gym evaluate --advisor SPEC`` names them:

======================  ==================================================================
spec                    Advisor
======================  ==================================================================
``none``                :class:`NoSignal`: the empty signal (the Receiver sees no advice)
``prior``               the state-independent prior: ``prior:library`` when the env has a
                        signal library (discrete mode), else ``prior:lm``
``prior:library``       :class:`LibraryPrior`: a signal drawn uniformly from the library
                        (index 0, silence, included), seeded per (seed, item id)
``prior:lm``            an *untrained* LM Advisor (:func:`random_lm_advisor`): a random-init
                        model (GPT-2 small's config by default) sampling from the Advisor
                        prompt with the real tokenizer, seeded
``index:K``             :class:`FixedSignal`: library signal ``K`` for every item
``PATH.json``           a discrete-signal policy file (:class:`DiscretePolicy`, format below)
``PATH/checkpoint.pt``  a PPO Advisor written by ``agents/ppo_text.py`` (also its run folder)
``PATH/``               a Hugging Face model folder, e.g. ``agents/trl_grpo.py``'s
                        ``<run>/final`` or ``<run>/checkpoint-N``
======================  ==================================================================

Discrete-signal policy file (JSON)::

    {"format": "bpa-gym-discrete-advisor/v1",
     "signal_library": ["", "Let's think step by step.", ...],   # optional: refused if it differs
     "signal_index": 3,                                           # every item ...
     "signal_index_by_item": {"gsm8k/test/0": 5, ...}}            # ... or per item id (signal_index: the rest)

LM Advisors (:class:`LMAdvisor`) render ``template.format(question=...,
item_id=...)``, keep the last ``max_prompt_tokens`` prompt tokens, and sample
``max_new_tokens`` tokens from the tempered full softmax (``top_k=0``,
``top_p=1``) as their trainers did, under a seeded torch RNG: the same items
and seed give the same signals.  A PPO checkpoint is read with
``torch.load(weights_only=True)`` (a file holding anything but tensors and
plain Python types is refused and nothing in it runs) and generates with its
own training settings (template, temperature, signal length, stop at newline,
then stripped); a TRL folder generates as ``GRPOTrainer`` sampled (stop at EOS,
the completion text as it is) with the template given (default
:data:`bpa_gym.integrations.trl.DEFAULT_TEMPLATE`).

This module holds no Gymnasium code; torch and transformers load only when an
LM Advisor is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from bpa_gym.common.validation import Arguments, Bool, NonNegativeInt, PositiveFloat, PositiveInt, check
from bpa_gym.errors import ConfigError
from bpa_gym.types import Item

__all__ = [
    "DISCRETE_POLICY_FORMAT",
    "PPO_TINY_GPT2",
    "Advisor",
    "AdvisorOptions",
    "advisor_kind",
    "DiscretePolicy",
    "FixedSignal",
    "LMAdvisor",
    "LibraryPrior",
    "NoSignal",
    "load_advisor",
    "load_hf_advisor",
    "load_ppo_advisor",
    "random_lm_advisor",
]

#: The ``format`` tag of a discrete-signal policy file.
DISCRETE_POLICY_FORMAT = "bpa-gym-discrete-advisor/v1"

#: ``agents/ppo_text.py``'s ``random:tiny`` preset (``TINY_GPT2`` there; a test keeps the two equal).
PPO_TINY_GPT2: dict[str, int] = dict(n_layer=2, n_head=2, n_embd=64, n_positions=512)

#: The Advisor prompt of ``agents/ppo_text.py`` and ``agents/trl_grpo.py`` (their default).
DEFAULT_ADVISOR_TEMPLATE = "Question: {question}\nAdvice:"


@runtime_checkable
class Advisor(Protocol):
    """Anything with a ``name`` and ``signals(items) -> list[str]`` (one signal text per item)."""

    name: str

    def signals(self, items: Sequence[Item]) -> list[str]: ...


def _check_items(items: Any, owner: str) -> list[Item]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ConfigError(f"{owner}.signals() takes a sequence of bpa_gym.types.Item, got {type(items).__name__}")
    bad = [type(it).__name__ for it in items if not isinstance(it, Item)][:3]
    if bad:
        raise ConfigError(f"{owner}.signals() takes bpa_gym.types.Item objects; got {bad}")
    return list(items)


def _item_seed(seed: int, item_id: str) -> list[int]:
    """Entropy for one item's draw: the seed and a stable hash of its id (independent of order and batching)."""
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return [int(seed), int.from_bytes(digest[:8], "little")]


# ----------------------------------------------------------------------------- signal-free and discrete
@dataclass
class NoSignal:
    """The no-signal condition: every item gets ``""`` (the Receiver sees no advice).

    Example:
        >>> NoSignal().signals([Item("a", "1+1?", "2")])
        ['']
    """

    name: str = "none"
    description: str = "no signal"

    def signals(self, items: Sequence[Item]) -> list[str]:
        return [""] * len(_check_items(items, "NoSignal"))


class LibraryPrior:
    """The state-independent prior in discrete mode: each item's signal drawn uniformly from the library.

    The draw for an item depends only on ``(seed, item.id)``, so it is the
    same whatever the other items, their order or the batching.

    Args:
        library: The signal texts (index 0 is usually silence; it is drawn too).
        seed: Seed of the draws.

    Example:
        >>> prior = LibraryPrior(["", "a", "b", "c"], seed=0)
        >>> items = [Item(f"q/{i}", "?", "1") for i in range(3)]
        >>> prior.signals(items) == prior.signals(items) == LibraryPrior(["", "a", "b", "c"], 0).signals(items)
        True
        >>> prior.signals(items[1:2]) == prior.signals(items)[1:2]
        True
    """

    def __init__(self, library: Sequence[str], seed: int = 0, name: str = "prior") -> None:
        self.library = _library(library, "LibraryPrior")
        self.seed = check(_SeedArgs, "LibraryPrior", seed=seed).seed
        self.name = name
        self.description = f"uniform over the {len(self.library)}-signal library (seed {self.seed})"

    def indices(self, items: Sequence[Item]) -> list[int]:
        """The library index drawn for each item."""
        items = _check_items(items, "LibraryPrior")
        return [int(np.random.default_rng(_item_seed(self.seed, it.id)).integers(len(self.library)))
                for it in items]

    def signals(self, items: Sequence[Item]) -> list[str]:
        return [self.library[i] for i in self.indices(items)]


class _SeedArgs(Arguments):
    seed: NonNegativeInt = 0


def _library(library: Any, owner: str) -> tuple[str, ...]:
    if library is None:
        raise ConfigError(f"{owner} needs the env's signal library, but this env takes free-text signals; use "
                          "'prior:lm' for the text-mode prior or a trained LM Advisor")
    texts = getattr(library, "signals", library)  # a bpa_gym.signals.SignalLibrary, or a plain sequence
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence) or not texts \
            or not all(isinstance(s, str) for s in texts):
        raise ConfigError(f"{owner}: the signal library must be a non-empty list of strings, got {library!r:.80}")
    return tuple(texts)


class FixedSignal:
    """One library signal for every item (``index:K``).

    Example:
        >>> FixedSignal(["", "a", "b"], 2).signals([Item("x", "?", "1")] * 2)
        ['b', 'b']
    """

    def __init__(self, library: Sequence[str], index: int, name: str | None = None) -> None:
        self.library = _library(library, "FixedSignal")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.library):
            raise ConfigError(f"signal index must be an integer in 0..{len(self.library) - 1} (the env's library; "
                              f"`bpa-gym signals` lists it), got {index!r}")
        self.index = int(index)
        self.name = name or f"index:{self.index}"
        self.description = f"library signal {self.index}: {self.library[self.index] or '(no signal)'}"

    def signals(self, items: Sequence[Item]) -> list[str]:
        return [self.library[self.index]] * len(_check_items(items, "FixedSignal"))


class DiscretePolicy:
    """A discrete-signal policy: a library index per item id (and/or one for every other item).

    Args:
        library: The env's signal library.
        signal_index_by_item: ``{item_id: index}``.
        signal_index: The index of every item not in ``signal_index_by_item``
            (``None``: such an item is an error).
        name: The condition's name.

    Example:
        >>> p = DiscretePolicy(["", "a", "b"], {"q/1": 2}, signal_index=1)
        >>> p.signals([Item("q/0", "?", "1"), Item("q/1", "?", "1")])
        ['a', 'b']
    """

    def __init__(self, library: Sequence[str], signal_index_by_item: dict[str, int] | None = None,
                 signal_index: int | None = None, name: str = "discrete-policy") -> None:
        self.library = _library(library, "DiscretePolicy")
        by_item = dict(signal_index_by_item or {})
        bad = {k: v for k, v in by_item.items() if not isinstance(k, str) or isinstance(v, bool)
               or not isinstance(v, int) or not 0 <= v < len(self.library)}
        if bad:
            raise ConfigError(f"{name}: signal_index_by_item must map item ids to integers in "
                              f"0..{len(self.library) - 1}; bad entries: {dict(list(bad.items())[:3])!r}")
        if signal_index is not None:
            FixedSignal(self.library, signal_index)  # the same range check
        if not by_item and signal_index is None:
            raise ConfigError(f"{name}: give signal_index (every item) and/or signal_index_by_item")
        self.by_item, self.default, self.name = by_item, signal_index, name
        self.description = (f"discrete policy ({len(by_item)} items mapped"
                            + (f", others signal {signal_index})" if signal_index is not None else ")"))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], library: Sequence[str] | None,
                  name: str | None = None) -> "DiscretePolicy":
        """Read a policy file (see the module docstring for the format)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the discrete-signal policy {path}: {exc}") from None
        known = {"format", "signal_library", "signal_index", "signal_index_by_item"}
        if not isinstance(data, dict) or data.get("format") != DISCRETE_POLICY_FORMAT or set(data) - known:
            raise ConfigError(f"{path} is not a discrete-signal policy: expected a JSON object with "
                              f"\"format\": {DISCRETE_POLICY_FORMAT!r} and keys among {sorted(known)}")
        library = _library(library, f"discrete-signal policy {path.name}")
        saved = data.get("signal_library")
        if saved is not None and tuple(saved) != library:
            raise ConfigError(f"{path} was made for another signal library ({len(saved)} signals) than this "
                              f"env's ({len(library)}); evaluate it on the env it was trained on")
        return cls(library, data.get("signal_index_by_item"), data.get("signal_index"), name or str(path))

    def signals(self, items: Sequence[Item]) -> list[str]:
        out = []
        for it in _check_items(items, "DiscretePolicy"):
            index = self.by_item.get(it.id, self.default)
            if index is None:
                raise ConfigError(f"{self.name}: no signal for item {it.id!r} (not in signal_index_by_item and no "
                                  "signal_index)")
            out.append(self.library[index])
        return out


# ----------------------------------------------------------------------------- LM Advisors
class AdvisorOptions(Arguments):
    """Settings of the LM Advisors :func:`load_advisor` builds.

    Attributes:
        seed: Seed of every sampled signal (and of ``prior:*``).
        tokenizer: Tokenizer folder / hub id (default: the checkpoint's own; the
            GPT-2 tokenizer for ``prior:lm``).
        prior_lm: The untrained model of ``prior:lm``: ``random:<config folder>``
            (default: ``random:`` + the tokenizer folder, i.e. GPT-2 small's
            config with random weights) or ``random:tiny``.
        template: The Advisor prompt of TRL folders and ``prior:lm``.
        max_new_tokens: Signal length in tokens for TRL folders and ``prior:lm``
            (a PPO checkpoint uses its own ``max_signal_tokens``).
        temperature: Sampling temperature for TRL folders and ``prior:lm``.
        max_signal_chars: Cut every signal to this many characters (the env's
            ``max_signal_length`` in text mode).
        batch_size: Prompts per ``generate`` call.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
    """

    seed: NonNegativeInt = 0
    tokenizer: str | None = None
    prior_lm: str | None = None
    template: str = DEFAULT_ADVISOR_TEMPLATE
    max_new_tokens: PositiveInt = 32
    temperature: PositiveFloat = 1.0
    max_signal_chars: PositiveInt | None = None
    batch_size: PositiveInt = 16
    device: str = "cpu"


class _LMArgs(Arguments):
    template: str
    max_new_tokens: PositiveInt
    temperature: PositiveFloat
    max_prompt_tokens: PositiveInt = 256
    stop_at_newline: Bool = False
    strip: Bool = False
    seed: NonNegativeInt = 0
    batch_size: PositiveInt = 16
    max_signal_chars: PositiveInt | None = None


class LMAdvisor:
    """A causal LM that writes a signal for each item from its prompt (sampled, seeded).

    Args:
        model: A ``transformers`` causal LM (eval mode is set).
        tokenizer: Its tokenizer (pad = EOS when it has none; left padding is used).
        template: The Advisor prompt; ``{question}`` required, ``{item_id}`` available.
        max_new_tokens: Longest signal, in tokens.
        temperature: Sampling temperature (> 0); the full softmax (``top_k=0, top_p=1``).
        max_prompt_tokens: Keep the last N prompt tokens.
        stop_at_newline: Stop at the first token containing a newline and cut the
            text there (``agents/ppo_text.py``'s default); else stop at EOS only.
        strip: Strip whitespace from the signal (``ppo_text`` does; TRL does not).
        seed: Seeds the sampling: ``signals(items)`` is a function of the items.
        batch_size: Prompts per ``generate``.
        max_signal_chars: Cut each signal to this many characters.
        name: The condition's name.
        description: One line for tables (what was loaded).
    """

    def __init__(self, model: Any, tokenizer: Any, *, template: str = DEFAULT_ADVISOR_TEMPLATE,
                 max_new_tokens: int = 32, temperature: float = 1.0, max_prompt_tokens: int = 256,
                 stop_at_newline: bool = False, strip: bool = False, seed: int = 0, batch_size: int = 16,
                 max_signal_chars: int | None = None, name: str = "lm-advisor", description: str = "") -> None:
        a = check(_LMArgs, "LMAdvisor", template=template, max_new_tokens=max_new_tokens, temperature=temperature,
                  max_prompt_tokens=max_prompt_tokens, stop_at_newline=stop_at_newline, strip=strip, seed=seed,
                  batch_size=batch_size, max_signal_chars=max_signal_chars)
        from bpa_gym.integrations.trl import _check_template

        _check_template(a.template)
        self.model = model.eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.args = a
        self.name = name
        self.description = description or f"LM Advisor {type(model).__name__}"
        ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        if a.stop_at_newline:
            texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
            ids |= {i for i, t in enumerate(texts) if "\n" in t}
        if not ids:
            raise ConfigError("LMAdvisor: the tokenizer has no EOS token and stop_at_newline is off")
        self.stop_ids = sorted(ids)

    def prompts(self, items: Sequence[Item]) -> list[str]:
        """The Advisor prompt of each item."""
        return [self.args.template.format(question=it.question, item_id=it.id) for it in items]

    def signals(self, items: Sequence[Item]) -> list[str]:
        import torch
        from transformers import GenerationConfig

        items = _check_items(items, self.name)
        if not items:
            return []
        a, tok = self.args, self.tokenizer
        device = next(self.model.parameters()).device
        config = GenerationConfig(do_sample=True, temperature=a.temperature, top_k=0, top_p=1.0,
                                  max_new_tokens=a.max_new_tokens, eos_token_id=list(self.stop_ids),
                                  pad_token_id=tok.pad_token_id)
        stop = torch.tensor(self.stop_ids, device=device)
        out: list[str] = []
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(a.seed)
            for lo in range(0, len(items), a.batch_size):
                prompts = self.prompts(items[lo:lo + a.batch_size])
                encoded = [tok(p, add_special_tokens=False)["input_ids"][-a.max_prompt_tokens:] for p in prompts]
                padded = tok.pad({"input_ids": encoded}, padding=True, padding_side="left", return_tensors="pt")
                query = padded["input_ids"].to(device)
                generated = self.model.generate(input_ids=query, attention_mask=padded["attention_mask"].to(device),
                                                generation_config=config)
                for row in generated[:, query.shape[1]:]:
                    hit = torch.isin(row, stop).nonzero()
                    kept = row[: int(hit[0]) + 1] if len(hit) else row
                    text = tok.decode(kept.tolist(), skip_special_tokens=True)
                    if a.stop_at_newline:
                        text = text.split("\n", 1)[0]
                    if a.strip:
                        text = text.strip()
                    out.append(text[: a.max_signal_chars] if a.max_signal_chars else text)
        return out


def _load_tokenizer(source: str, what: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the tokenizer of {what} from {source!r}: {str(exc).splitlines()[0]}. Pass "
                          "the tokenizer folder (e.g. --advisor-tokenizer ../shared/models/gpt2)") from None
    if len(tok) == 0:
        raise ConfigError(f"the tokenizer loaded from {source!r} is empty")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _config_for(spec: str, tokenizer: Any, what: str) -> Any:
    """The model config of a policy spec: ``random:tiny``, ``random:<config folder>``, or a folder / hub id."""
    from transformers import AutoConfig, GPT2Config

    source = spec.split(":", 1)[1] if spec.startswith("random:") else spec
    if source == "tiny":
        return GPT2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id,
                          eos_token_id=tokenizer.eos_token_id, **PPO_TINY_GPT2)
    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the model config of {what} from {source!r}: {str(exc).splitlines()[0]}") \
            from None


def _device(device: str) -> Any:
    from bpa_gym.common import resolve_device

    return resolve_device(device)


def random_lm_advisor(config: str, tokenizer: str, *, seed: int = 0, name: str = "prior",
                      **lm_kwargs: Any) -> LMAdvisor:
    """An untrained LM Advisor: random weights (seeded) from a config, sampling with the real tokenizer.

    Args:
        config: ``random:tiny`` (ppo_text's tiny GPT-2), ``random:<config
            folder>`` or ``<config folder>`` (e.g. ``../shared/models/gpt2``:
            GPT-2 small, random weights).
        tokenizer: The tokenizer folder or hub id.
        seed: Seeds the weights and the sampling.
        name: The condition's name.
        **lm_kwargs: :class:`LMAdvisor` settings (``template``,
            ``max_new_tokens``, ``temperature``, ``device``, ...).
    """
    import torch
    from transformers import AutoModelForCausalLM

    tok = _load_tokenizer(tokenizer, "the prior Advisor")
    cfg = _config_for(config, tok, "the prior Advisor")
    device = _device(lm_kwargs.pop("device", "cpu"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg)
    lm_kwargs.setdefault("stop_at_newline", True)
    lm_kwargs.setdefault("strip", True)
    return LMAdvisor(model.to(device), tok, seed=seed, name=name,
                     description=f"untrained {cfg.model_type} ({config}, random init seed {seed})", **lm_kwargs)


def _safe_load(path: Path) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. |\n\n|$)", str(exc), re.S)
        reason = " ".join((found.group(1) if found else str(exc).splitlines()[0]).split())
        raise ConfigError(f"refusing to load {path}: it holds something other than tensors and plain Python types "
                          f"({reason}); nothing in it was run") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from None


def load_ppo_advisor(path: str | os.PathLike[str], *, tokenizer: str | None = None, seed: int = 0,
                     batch_size: int = 16, max_signal_chars: int | None = None, device: str = "cpu",
                     name: str | None = None) -> LMAdvisor:
    """The Advisor of an ``agents/ppo_text.py`` checkpoint (``checkpoint.pt`` or its run folder).

    The network is rebuilt from the checkpoint's ``args["policy"]``
    (``random:tiny``, ``random:<config folder>`` or a model folder / hub id)
    and loaded strictly from ``checkpoint["policy"]`` (the value head is
    dropped); it generates with the checkpoint's template, temperature,
    ``max_signal_tokens``, ``max_prompt_tokens`` and ``stop_at_newline``, and
    strips the text, as training did.

    Args:
        path: ``checkpoint.pt`` or the folder holding it.
        tokenizer: Override the checkpoint's ``args["tokenizer"]`` (a relative
            path there is relative to where training ran).
        seed: Seeds the sampling.
        batch_size, max_signal_chars, device, name: See :class:`LMAdvisor`.
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    file = path / "checkpoint.pt" if path.is_dir() else path
    ckpt = _safe_load(file)
    if not isinstance(ckpt, dict) or not {"policy", "args"} <= ckpt.keys() or not isinstance(ckpt["args"], dict):
        raise ConfigError(f"{file} is not an agents/ppo_text.py checkpoint (it needs 'policy' and 'args')")
    args = ckpt["args"]
    policy = str(args.get("policy", ""))
    tok_source = tokenizer or args.get("tokenizer") or (None if policy.startswith("random:") else policy)
    if tok_source is None:
        raise ConfigError(f"{file} names no tokenizer; pass one (--advisor-tokenizer)")
    tok = _load_tokenizer(str(tok_source), f"PPO checkpoint {file}")
    cfg = _config_for(policy, tok, f"PPO checkpoint {file}")
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForCausalLM.from_config(cfg)
    lm_state = {k[len("lm."):]: v for k, v in ckpt["policy"].items() if k.startswith("lm.")}
    try:
        model.load_state_dict(lm_state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{file}: the saved policy does not fit the network of {policy!r}: "
                          f"{str(exc).splitlines()[0]}") from None
    it = ckpt.get("iteration")
    return LMAdvisor(
        model.to(_device(device)), tok, template=args.get("prompt_template", DEFAULT_ADVISOR_TEMPLATE),
        max_new_tokens=int(args.get("max_signal_tokens", 32)), temperature=float(args.get("temperature", 1.0)),
        max_prompt_tokens=int(args.get("max_prompt_tokens", 256)),
        stop_at_newline=bool(args.get("stop_at_newline", True)), strip=True, seed=seed, batch_size=batch_size,
        max_signal_chars=max_signal_chars, name=name or str(path),
        description=f"PPO Advisor ({policy}, iteration {it}, trained against {args.get('receiver')})")


def load_hf_advisor(folder: str | os.PathLike[str], *, tokenizer: str | None = None,
                    template: str = DEFAULT_ADVISOR_TEMPLATE, max_new_tokens: int = 32, temperature: float = 1.0,
                    seed: int = 0, batch_size: int = 16, max_signal_chars: int | None = None, device: str = "cpu",
                    name: str | None = None) -> LMAdvisor:
    """The Advisor saved as a Hugging Face model folder (``agents/trl_grpo.py``'s ``final`` or ``checkpoint-N``).

    It samples as ``GRPOTrainer`` did: stop at EOS, the decoded completion as
    the signal (not stripped).  The tokenizer is the folder's own unless given.
    """
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    tok = _load_tokenizer(tokenizer or str(folder), f"the Advisor in {folder}")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the Advisor model from {folder}: {str(exc).splitlines()[0]}") from None
    return LMAdvisor(model.to(_device(device)), tok, template=template, max_new_tokens=max_new_tokens,
                     temperature=temperature, stop_at_newline=False, strip=False, seed=seed, batch_size=batch_size,
                     max_signal_chars=max_signal_chars, name=name or str(folder),
                     description=f"HF Advisor {folder.name} ({model.config.model_type})")


def load_advisor(spec: str | Advisor, *, signal_library: Sequence[str] | None = None,
                 options: AdvisorOptions | dict[str, Any] | None = None) -> Advisor:
    """The Advisor a spec string names (see the module docstring's table); an Advisor object is returned as is.

    Args:
        spec: ``none``, ``prior``, ``prior:library``, ``prior:lm``, ``index:K``,
            a policy ``.json``, a PPO ``checkpoint.pt`` (or its folder), or a
            Hugging Face model folder.
        signal_library: The env's library (``None`` in text mode).
        options: :class:`AdvisorOptions` (or a dict of them).

    Raises:
        ConfigError: An unknown spec, a missing path, a file of the wrong kind.

    Example:
        >>> load_advisor("index:1", signal_library=["", "Check units."]).signals([Item("a", "?", "1")])
        ['Check units.']
        >>> load_advisor("prior", signal_library=["", "x"]).description
        'uniform over the 2-signal library (seed 0)'
    """
    kind = advisor_kind(spec)
    if kind == "object":
        return spec  # type: ignore[return-value]
    opts = options if isinstance(options, AdvisorOptions) else check(AdvisorOptions, "Advisor options",
                                                                     **(options or {}))
    key = spec.strip()
    lower = key.lower()
    if lower == "none":
        return NoSignal()
    if lower == "prior":
        lower = "prior:library" if signal_library is not None else "prior:lm"
    if lower == "prior:library":
        return LibraryPrior(_library(signal_library, "prior:library"), opts.seed, name=key)
    if lower == "prior:lm":
        tok = opts.tokenizer or "gpt2"
        return random_lm_advisor(opts.prior_lm or f"random:{tok}", tok, seed=opts.seed, name=key,
                                 template=opts.template, max_new_tokens=opts.max_new_tokens,
                                 temperature=opts.temperature, batch_size=opts.batch_size,
                                 max_signal_chars=opts.max_signal_chars, device=opts.device)
    if lower.startswith("index:"):
        try:
            index = int(key.split(":", 1)[1], 10)
        except ValueError:
            raise ConfigError(f"advisor {spec!r}: index:K needs an integer K (a library index)") from None
        return FixedSignal(_library(signal_library, spec), index)
    path = Path(key).expanduser()
    if kind == "policy-json":
        return DiscretePolicy.from_file(path, signal_library, name=key)
    if kind == "ppo":
        return load_ppo_advisor(path, tokenizer=opts.tokenizer, seed=opts.seed, batch_size=opts.batch_size,
                                max_signal_chars=opts.max_signal_chars, device=opts.device, name=key)
    return load_hf_advisor(path, tokenizer=opts.tokenizer, template=opts.template,
                           max_new_tokens=opts.max_new_tokens, temperature=opts.temperature, seed=opts.seed,
                           batch_size=opts.batch_size, max_signal_chars=opts.max_signal_chars,
                           device=opts.device, name=key)


def advisor_kind(spec: Any) -> str:
    """What an Advisor spec names, checked without loading anything (so a bad spec fails before a long run).

    Returns:
        ``"object"`` (an Advisor object), ``"none"``, ``"prior"``,
        ``"prior:library"``, ``"prior:lm"``, ``"index"``, ``"policy-json"``,
        ``"ppo"`` or ``"hf"``.

    Raises:
        ConfigError: Not an Advisor, an unknown keyword, a missing path, a path of no known kind.

    Example:
        >>> advisor_kind("prior"), advisor_kind("index:3")
        ('prior', 'index')
    """
    if not isinstance(spec, str):
        if isinstance(spec, Advisor):
            return "object"
        raise ConfigError(f"an Advisor must be a spec string or have name and signals(items), got {spec!r:.80}")
    key = spec.strip()
    lower = key.lower()
    if lower in ("none", "prior", "prior:library", "prior:lm"):
        return lower
    if lower.startswith("index:"):
        if not re.fullmatch(r"\d+", key.split(":", 1)[1].strip()):
            raise ConfigError(f"advisor {spec!r}: index:K needs an integer K >= 0 (a library index; "
                              "`bpa-gym signals` lists them)")
        return "index"
    path = Path(key).expanduser()
    if not key or not path.exists():
        raise ConfigError(f"unknown advisor {spec!r}: not one of none, prior, prior:library, prior:lm, index:K, and "
                          "no such file or folder (a policy .json, a ppo_text checkpoint.pt or run folder, or a "
                          "Hugging Face model folder)")
    if path.is_file() and path.suffix == ".json":
        return "policy-json"
    if (path.is_file() and path.suffix in (".pt", ".pth")) or (path / "checkpoint.pt").is_file():
        return "ppo"
    if path.is_dir() and (path / "config.json").is_file():
        return "hf"
    raise ConfigError(f"advisor {spec!r} is neither a policy .json, a ppo_text checkpoint.pt (or a folder holding "
                      "one), nor a Hugging Face model folder (with config.json)")
