"""A Receiver backed by a local Hugging Face ``transformers`` causal language model.

:class:`HFReceiver` loads any causal LM by hub id or local folder (or takes an
already-built model object), renders chat prompts with the tokenizer's chat
template, and answers them in left-padded batches with ``model.generate``.
Greedy decoding is the default, so rewards are deterministic.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Literal, Sequence

import torch
from pydantic import Field

from bpa_gym.common.torch_utils import resolve_device, resolve_dtype
from bpa_gym.common.validation import Arguments, Bool, PositiveInt, Str, check
from bpa_gym.errors import ConfigError, ModelNotFoundError, ReceiverError
from bpa_gym.receivers import validate_prompts
from bpa_gym.receivers.base import GenerationConfig, neutralise_prompt
from bpa_gym.types import ChatPrompt, Generation, Message

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


#: How many torch threads an HFReceiver uses while it generates (see ``HFReceiver``'s ``num_threads``).
ThreadCount = Annotated[PositiveInt | Literal["auto"] | None,
                        Field(description="an integer >= 1, 'auto' or None")]
#: How an HFReceiver decodes a batch (see ``HFReceiver``'s ``engine``).
Engine = Annotated[Literal["generate", "continuous"], Field(description="'generate' or 'continuous'")]
ENGINES: tuple[str, ...] = ("generate", "continuous")
#: The torch thread count ``num_threads="auto"`` uses on a CPU (see ``benchmarks/hf_receiver.py``).
AUTO_CPU_THREADS = 1


class _HFArgs(Arguments):
    generation: GenerationConfig | None = None
    batch_size: PositiveInt = 16
    chat_template: Str | None = "auto"
    trust_remote_code: Bool = False
    name: Str | None = None
    num_threads: ThreadCount = "auto"
    neutralise_control_tokens: Bool = True
    engine: Engine = "generate"


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(n)``, then restore the previous count; ``None`` changes nothing.

    torch's intra-op thread count is process-wide, so a library should only
    change it for the span of its own work.  Threads started inside the body
    (the continuous-batching engine's worker) use ``n`` too.

    Example:
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _make_finite_logits_guard(name: str) -> Any:
    """A LogitsProcessor that raises ReceiverError when a step's scores hold NaN or +inf, or no finite value.

    ``-inf`` is what top-p and other processors write for excluded tokens, so it is allowed; a row with
    no finite score at all cannot be decoded.  A corrupted model (NaN weights) is stopped on the first
    step instead of decoding garbage that would be scored as a wrong answer.
    """
    from transformers import LogitsProcessor

    class FiniteLogitsGuard(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            bad = torch.isnan(scores).any(dim=-1) | torch.isposinf(scores).any(dim=-1)
            bad |= ~torch.isfinite(scores).any(dim=-1)
            if bool(bad.any()):
                rows = bad.nonzero().flatten().tolist()
                raise ReceiverError(
                    f"{name} produced non-finite logits (NaN or inf) for {len(rows)} of {scores.shape[0]} "
                    f"prompts at generated token {input_ids.shape[1]}; the model weights are likely corrupted "
                    "(or the dtype overflows: try dtype='float32'). Its answers are not scored."
                )
            return scores

    return FiniteLogitsGuard()


#: Tokens per page of the continuous engine's paged KV cache.
CONTINUOUS_PAGE_SIZE = 64
#: The logger of transformers' continuous batching (it prints its own tracebacks).
CONTINUOUS_LOGGER = "ContinuousBatchingLogger"


class _FiniteLogitsHook:
    """A forward hook for the continuous engine: raises ReceiverError on NaN/+inf logits (and remembers why).

    ``generate_batch`` takes no logits processors of ours, so the check sits on
    the model's output instead; it sees every logits row the engine computes.
    The engine catches the exception in its worker thread and fails the
    requests; :meth:`HFReceiver.generate` then raises the remembered message.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.message: str | None = None

    def __call__(self, module: Any, args: Any, output: Any) -> None:
        logits = getattr(output, "logits", None)
        if logits is None:
            return
        scores = logits.detach().reshape(-1, logits.shape[-1])
        bad = torch.isnan(scores).any(dim=-1) | torch.isposinf(scores).any(dim=-1)
        bad |= ~torch.isfinite(scores).any(dim=-1)
        if bool(bad.any()):
            self.message = (
                f"{self.name} produced non-finite logits (NaN or inf) in {int(bad.sum())} of {scores.shape[0]} "
                "rows of a continuous-batching step; the model weights are likely corrupted (or the dtype "
                "overflows: try dtype='float32'). Its answers are not scored."
            )
            raise ReceiverError(self.message)


class _DropAfterGuard(logging.Filter):
    """Drops transformers' error logs once our own guard has stopped the engine (we raise a clear error)."""

    def __init__(self, guard: _FiniteLogitsHook) -> None:
        super().__init__()
        self.guard = guard

    def filter(self, record: logging.LogRecord) -> bool:
        return self.guard.message is None


def _sha256_files(paths: Sequence[Path]) -> str:
    """One sha256 over the names and bytes of ``paths`` (streamed in 1 MiB blocks)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _sha256_state_dict(model: Any) -> str:
    """One sha256 over a model's parameter and buffer names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\0".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

def _not_found(model_id: str, cause: BaseException) -> ModelNotFoundError:
    from huggingface_hub import constants

    offline = " (HF_HUB_OFFLINE is set, so nothing is downloaded)" if constants.HF_HUB_OFFLINE else ""
    return ModelNotFoundError(
        f"could not load the model {model_id!r}{offline}: {cause}. "
        "Fix: check the model id or local folder path; or go online / pre-download it with "
        f"`hf download {model_id}` (offline mode must be off for downloads: set HF_HUB_OFFLINE=0); "
        "or use the offline default receiver 'smollm2'."
    )


def _load_pretrained(loader: Any, model_id: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(model_id)``, turning "cannot find it" failures into ModelNotFoundError."""
    from huggingface_hub.errors import HFValidationError

    try:
        return loader.from_pretrained(model_id, **kwargs)
    except (OSError, HFValidationError) as e:
        raise _not_found(model_id, e) from e


class HFReceiver:
    """A local ``transformers`` causal LM as the Receiver.

    Prompts are rendered with the tokenizer's chat template
    (``add_generation_prompt=True``) when it has one, otherwise as plain
    ``"role: content"`` lines ending in ``"assistant:"``.  They are sorted by
    length, split into left-padded batches of ``batch_size``, generated, and
    returned in the original order.

    Args:
        model: A hub id (``"HuggingFaceTB/SmolLM2-135M-Instruct"``), a local
            model folder, or an already-built ``PreTrainedModel``.
        tokenizer: A tokenizer object or id/path; defaults to ``model``'s own.
            Required when ``model`` is an object.  It is configured for
            generation in place: left padding, and ``pad_token`` set to the EOS
            token when it has none.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.  For a model object,
            ``"auto"`` keeps the device it is on.
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), ``"float32"``,
            ``"bfloat16"``, ``"float16"`` or a ``torch.dtype``.  For a model
            object, ``"auto"`` keeps its dtype.  ``"bfloat16"`` on a CPU is an
            opt-in, never the default: it halves the weights' memory and can be
            faster on CPUs with native bfloat16 (AVX512-BF16, AMX), but on an
            AVX2 CPU it was slower (SmolLM2, 16 GSM8K prompts, 256 tokens:
            2.15x the CPU time of float32), and greedy answers differ from
            float32's (13 of 16 texts, 9 of 16 extracted answers), so oracle
            tables and caches built in float32 do not carry over (``identity``
            records the dtype).  Measure with ``benchmarks/hf_receiver.py``.
        generation: Decoding settings (greedy by default).
        batch_size: Largest number of prompts per ``model.generate`` call.
        chat_template: ``"auto"`` uses the tokenizer's template when it has one;
            ``None`` always uses the plain ``"role: content"`` format; any other
            string is used as the Jinja chat template.
        trust_remote_code: Passed to ``from_pretrained`` when loading by id.
        max_new_tokens: Shortcut that overrides ``generation.max_new_tokens``.
        temperature: Shortcut that overrides ``generation.temperature``.
        top_p: Shortcut that overrides ``generation.top_p``.
        seed: Shortcut that overrides ``generation.seed``.
        name: Overrides the default name ``"hf:<id>"``.
        num_threads: torch's intra-op thread count while this Receiver
            generates: ``"auto"`` (default) is 1 on a CPU and torch's own
            setting on CUDA; an integer is that count; ``None`` leaves torch's
            setting alone.  torch's count is process-wide, so it is set only
            for the span of each :meth:`generate` call and restored afterwards
            (also on errors); building the Receiver changes nothing.  Why 1:
            measured with ``benchmarks/hf_receiver.py`` (SmolLM2, 8 GSM8K
            prompts, 32 tokens, a 2-core machine busy with other jobs), 1
            thread took 0.21x the CPU time and 0.23x the wall time of torch's
            default of 2 (per-round ratios 0.15-0.39), because every
            multi-threaded op waits for its slowest, descheduled thread.  On an
            idle multi-core machine more threads may win wall time: pass
            ``num_threads=None`` (or a count) and rerun the benchmark there.
        neutralise_control_tokens: Break the tokenizer's special and added
            tokens inside message contents (default True; see :meth:`render`),
            so signals and items are plain text and cannot forge chat turns.
        engine: How a batch is decoded.  ``"generate"`` (default):
            ``model.generate`` on left-padded batches of ``batch_size``; a
            batch decodes until its longest row ends.  ``"continuous"``:
            transformers' continuous batching (``model.generate_batch``, a
            paged KV cache sized for this call): all prompts go in one call, at
            most ``batch_size`` rows at once, and a row that hits EOS frees its
            slot for the next prompt.  transformers switches an ``eager``
            model to paged attention for the call and restores it afterwards
            (``sdpa`` is used as is).  The context check is the same; the
            non-finite-logits check runs as a forward hook on the model (the
            engine takes no custom logits processors).  Greedy float32 answers
            equal ``"generate"``'s (SmolLM2: 16 of 16 GSM8K prompts); sampling
            with a ``seed`` is reproducible but draws other samples.  Speed on
            a 2-core AVX2 CPU (SmolLM2, 16 GSM8K prompts, 256 tokens, rows
            ending after 6 to 256 tokens): the same CPU time as
            ``"generate"`` at ``batch_size=8`` (1.00x) and 1.11x at 16; the
            paged-attention bookkeeping eats the saved decode work there.  It
            is meant for GPUs (flash/paged attention kernels).  Not for models
            without ``generate_batch``.

    Raises:
        ModelNotFoundError: The model or tokenizer cannot be found (wrong id, or
            not downloaded while offline).
        ConfigError: An argument is invalid.

    With sampling (``temperature > 0``) and a ``seed``, every ``generate`` call
    reseeds a private copy of the torch RNG, so the same prompts with the same
    ``batch_size`` give the same outputs; the global RNG is left untouched.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | PreTrainedModel,
        *,
        tokenizer: str | os.PathLike[str] | PreTrainedTokenizerBase | None = None,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        generation: GenerationConfig | None = None,
        batch_size: int = 16,
        chat_template: str | None = "auto",
        trust_remote_code: bool = False,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        name: str | None = None,
        num_threads: int | Literal["auto"] | None = "auto",
        neutralise_control_tokens: bool = True,
        engine: Literal["generate", "continuous"] = "generate",
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        args = check(_HFArgs, type(self).__name__, generation=generation, batch_size=batch_size,
                     chat_template=chat_template, trust_remote_code=trust_remote_code, name=name,
                     num_threads=num_threads, neutralise_control_tokens=neutralise_control_tokens, engine=engine)
        self.num_threads: int | Literal["auto"] | None = args.num_threads
        self.engine: Literal["generate", "continuous"] = args.engine
        self.generation = GenerationConfig.merged(args.generation, max_new_tokens=max_new_tokens,
                                                  temperature=temperature, top_p=top_p, seed=seed)
        self.batch_size = args.batch_size
        self.neutralise_control_tokens = args.neutralise_control_tokens
        self._weights_sha256: str | None = None
        self._model_files: list[Path] | None = None

        if isinstance(model, (str, os.PathLike)):
            model_id = os.fspath(model)
            if not model_id:
                raise ConfigError("model must be a hub id or a local folder, got an empty string")
            self.device = resolve_device(device)
            self.dtype = resolve_dtype(dtype, self.device)
            if tokenizer is None:
                tokenizer = model_id
            loaded = _load_pretrained(
                AutoModelForCausalLM, model_id, dtype=self.dtype, trust_remote_code=trust_remote_code
            )
            self.model = loaded.to(self.device)
            folder = Path(model_id)
            if folder.is_dir():
                self._model_files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        elif callable(getattr(model, "generate", None)) and hasattr(model, "config"):
            if tokenizer is None:
                raise ConfigError(
                    f"HFReceiver got a model object ({type(model).__name__}) but no tokenizer; "
                    "pass tokenizer=<tokenizer object or id/path>"
                )
            model_id = getattr(model.config, "_name_or_path", "") or type(model).__name__
            current = next(model.parameters()).device
            self.device = current if isinstance(device, str) and device == "auto" else resolve_device(device)
            self.dtype = (next(model.parameters()).dtype if isinstance(dtype, str) and dtype == "auto"
                          else resolve_dtype(dtype, self.device))
            self.model = model.to(device=self.device, dtype=self.dtype)
        else:
            raise ConfigError(
                f"model must be a hub id, a local folder or a transformers PreTrainedModel, got {type(model).__name__}"
            )
        self.model.eval()
        if self.engine == "continuous" and not callable(getattr(self.model, "generate_batch", None)):
            raise ConfigError(
                f"engine='continuous' needs transformers' continuous batching (model.generate_batch, "
                f"transformers >= 5), which {type(self.model).__name__} lacks; use engine='generate'"
            )
        self.model_id = model_id
        self.name = args.name or f"hf:{model_id}"

        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = _load_pretrained(AutoTokenizer, os.fspath(tokenizer), trust_remote_code=trust_remote_code)
        self.tokenizer = tokenizer
        self._setup_tokenizer(args.chat_template)
        #: The tokenizer's special and added tokens: broken in message contents (see ``render``).
        self.control_tokens: tuple[str, ...] = tuple(sorted(
            set(getattr(tokenizer, "all_special_tokens", []) or []) | set(tokenizer.get_added_vocab())
        ))
        #: Longest prompt plus completion the model takes (its position embeddings), or None if unknown.
        self.context_length: int | None = self._context_length()

    def _setup_tokenizer(self, chat_template: str | None) -> None:
        tok = self.tokenizer
        # The template is kept here and passed to apply_chat_template: the tokenizer object is not changed.
        self.chat_template: str | None
        if chat_template is None:
            self.chat_template = None
        elif chat_template == "auto":
            self.chat_template = getattr(tok, "chat_template", None) or None
        else:
            self.chat_template = chat_template
        self.use_chat_template = self.chat_template is not None
        tok.padding_side = "left"
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise ConfigError(
                    f"the tokenizer of {self.model_id} has neither a pad token nor an EOS token; "
                    "set tokenizer.pad_token before building the HFReceiver"
                )
            tok.pad_token = tok.eos_token
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if tok.eos_token_id is not None:
            eos_ids.add(tok.eos_token_id)
        if not eos_ids:
            raise ConfigError(
                f"{self.model_id} defines no EOS token, so generation could not stop; "
                "set model.generation_config.eos_token_id or tokenizer.eos_token"
            )
        self.eos_token_ids: list[int] = sorted(eos_ids)

    def _context_length(self) -> int | None:
        config = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def weights_sha256(self) -> str:
        """A sha256 of the weights: of the local weight files, else of the model's tensors (computed once)."""
        if self._weights_sha256 is None:
            if self._model_files:
                self._weights_sha256 = _sha256_files(self._model_files)
            else:
                self._weights_sha256 = _sha256_state_dict(self.model)
        return self._weights_sha256

    @property
    def identity(self) -> dict[str, Any]:
        """What determines the answers (JSON-serialisable): model, revision or weights checksum, dtype,
        chat template, generation settings.

        A hub model is pinned by its revision (the config's ``_commit_hash``);
        a local folder or a model object by a sha256 of its weights, computed
        on first access (about 1 s per 300 MB).
        """
        revision = getattr(self.model.config, "_commit_hash", None)
        template = self.chat_template
        ident: dict[str, Any] = {
            "class": type(self).__qualname__,
            "model": self.model_id,
            "revision": revision,
            "dtype": str(self.dtype).removeprefix("torch."),
            "chat_template_sha256": hashlib.sha256(str(template).encode()).hexdigest() if template else None,
            "generation": self.generation.as_dict(),
            "neutralise_control_tokens": self.neutralise_control_tokens,
        }
        if self.engine != "generate":  # greedy answers agree with "generate" in float32, but not bit for bit by design
            ident["engine"] = self.engine
        if revision is None:
            ident["weights_sha256"] = self.weights_sha256()
        return ident

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r}, dtype={self.dtype}, "
            f"batch_size={self.batch_size}, engine={self.engine!r}, num_threads={self.num_threads!r}, "
            f"generation={self.generation})"
        )

    def render(self, prompt: ChatPrompt) -> str:
        """The text the model sees for ``prompt`` (chat template or plain format).

        Message contents are plain text: every occurrence of one of the
        tokenizer's special or added tokens (``<|im_end|>``, ``<|endoftext|>``,
        ...) in a content is broken by a zero-width space after its first
        character, so it is tokenised as ordinary text and cannot forge chat
        turns; the template's own tokens are untouched.  Pass
        ``neutralise_control_tokens=False`` to turn this off.
        """
        if self.neutralise_control_tokens:
            messages: list[Message] = neutralise_prompt(prompt, self.control_tokens)  # type: ignore[assignment]
        else:
            messages = [dict(m) for m in prompt]  # type: ignore[misc]
        if self.use_chat_template:
            text = self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template,
                                                      add_generation_prompt=True, tokenize=False)
            return str(text)
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        lines.append("assistant:")
        return "\n".join(lines)

    def _encode(self, prompt: ChatPrompt) -> list[int]:
        # A chat template writes its own special tokens (BOS etc.); the plain format relies on the tokenizer's.
        encoded = self.tokenizer(self.render(prompt), add_special_tokens=not self.use_chat_template)
        return list(encoded["input_ids"])

    def _hf_generation_config(self) -> Any:
        from transformers import GenerationConfig as HFGenerationConfig

        g = self.generation
        kwargs: dict[str, Any] = dict(
            max_new_tokens=g.max_new_tokens,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if g.greedy:
            kwargs.update(do_sample=False)
        else:
            # top_k=0 switches off transformers' default top-k of 50: only temperature and top_p apply.
            kwargs.update(do_sample=True, temperature=g.temperature, top_p=g.top_p, top_k=0)
        return HFGenerationConfig(**kwargs)

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[Generation]:
        """Answer every prompt, at most ``batch_size`` at a time.

        Args:
            prompts: Chat prompts (lists of ``{"role", "content"}`` messages).

        Returns:
            One :class:`~bpa_gym.types.Generation` per prompt, in order.  Its
            ``completion_tokens`` counts the generated tokens up to and
            including the first EOS token (padding after it is not counted),
            and ``text`` is their decoding without special tokens.

            ``finish_reason`` is ``"length"`` when the row generated
            ``max_new_tokens`` tokens without EOS, else ``"stop"``.
            ``latency_s`` is the wall time of the ``model.generate`` call (or
            of the whole continuous-batching run) divided evenly over its prompts.

        Raises:
            ReceiverError: The device ran out of memory; a prompt plus
                ``max_new_tokens`` does not fit the model's context; the
                model produced non-finite logits (corrupted weights); or the
                continuous-batching engine failed a request.
        """
        validate_prompts(prompts, self.name)
        if not prompts:
            return []
        encoded = [self._encode(p) for p in prompts]
        self._check_context(encoded)
        # Longest first: similar lengths share a batch (less padding), and an OOM shows on the first batch.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
        config = self._hf_generation_config()
        results: dict[int, Generation] = {}
        with torch_threads(self.threads_while_generating()), \
                torch.random.fork_rng(devices=self._rng_devices(), enabled=self.generation.seed is not None):
            if self.generation.seed is not None:
                torch.manual_seed(self.generation.seed)
            if self.engine == "continuous":
                results = dict(zip(order, self._generate_continuous([encoded[i] for i in order], config)))
            else:
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    for i, gen in zip(chunk, self._generate_batch([encoded[i] for i in chunk], config)):
                        results[i] = gen
        return [results[i] for i in range(len(prompts))]

    def threads_while_generating(self) -> int | None:
        """The torch thread count :meth:`generate` sets (and restores afterwards); ``None``: torch's, untouched."""
        if self.num_threads == "auto":
            return AUTO_CPU_THREADS if self.device.type == "cpu" else None
        return self.num_threads

    def _check_context(self, encoded: list[list[int]]) -> None:
        limit = self.context_length
        if limit is None:
            return
        room = limit - self.generation.max_new_tokens
        too_long = [(i, len(ids)) for i, ids in enumerate(encoded) if len(ids) > room]
        if too_long:
            i, n = max(too_long, key=lambda t: t[1])
            raise ReceiverError(
                f"{len(too_long)} prompt(s) do not fit {self.name}'s context: prompt {i} is {n} tokens, and "
                f"{n} + max_new_tokens {self.generation.max_new_tokens} > the model's {limit} positions "
                f"(max_position_embeddings), so at most {max(room, 0)} prompt tokens fit. Fix: shorten the "
                "signal (max_signal_length) or item, or lower max_new_tokens; prompts are never truncated silently."
            )

    def _rng_devices(self) -> list[int]:
        if self.device.type == "cuda":
            return [self.device.index if self.device.index is not None else torch.cuda.current_device()]
        return []

    def _to_generation(self, prompt_ids: list[int], row: list[int], max_new_tokens: int,
                       latency: float) -> Generation:
        """One decoded row: cut after the first EOS, its finish reason, its token counts."""
        eos = set(self.eos_token_ids)
        n = next((k + 1 for k, tok in enumerate(row) if tok in eos), None)
        stopped = n is not None or len(row) < max_new_tokens
        n = len(row) if n is None else n
        text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
        return Generation(text=text, prompt_tokens=len(prompt_ids), completion_tokens=n, latency_s=latency,
                          finish_reason="stop" if stopped else "length")

    def _generate_batch(self, batch: list[list[int]], config: Any) -> list[Generation]:
        padded = self.tokenizer.pad({"input_ids": batch}, padding=True, padding_side="left", return_tensors="pt")
        input_ids = padded["input_ids"].to(self.device)
        attention_mask = padded["attention_mask"].to(self.device)
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                    logits_processor=[_make_finite_logits_guard(self.name)],
                )
        except torch.cuda.OutOfMemoryError as e:
            raise ReceiverError(
                f"{self.name} ran out of GPU memory on a batch of {len(batch)} prompts; "
                "lower batch_size or max_new_tokens, or use a smaller dtype"
            ) from e
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        latency = (time.perf_counter() - t0) / len(batch)
        new_tokens = out[:, input_ids.shape[1] :].tolist()
        return [self._to_generation(ids, row, config.max_new_tokens, latency) for ids, row in zip(batch, new_tokens)]

    def _continuous_batching_config(self, encoded: list[list[int]]) -> Any:
        """A paged KV cache sized for this call: ``batch_size`` of the longest rows at once, nothing more.

        Left to itself, transformers sizes the cache from free memory (on a CPU
        host: many GB, and ~15 s of allocation per call).
        """
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        rows = min(self.batch_size, len(encoded))
        max_new = self.generation.max_new_tokens
        pages = sorted((math.ceil((len(ids) + max_new) / CONTINUOUS_PAGE_SIZE) for ids in encoded), reverse=True)
        prompt_tokens = sorted((len(ids) for ids in encoded), reverse=True)
        return ContinuousBatchingConfig(
            page_size=CONTINUOUS_PAGE_SIZE,
            num_blocks=sum(pages[:rows]) + 1,
            max_batch_tokens=sum(prompt_tokens[:rows]) + rows,
            max_requests_per_batch=rows,
            # Prefix sharing would reuse KV blocks computed in another batch composition: exactness first.
            allow_block_sharing=False,
        )

    def _generate_continuous(self, encoded: list[list[int]], config: Any) -> list[Generation]:
        """All prompts through ``model.generate_batch`` (continuous batching); results in ``encoded``'s order."""
        guard = _FiniteLogitsHook(self.name)
        handle = self.model.register_forward_hook(guard)
        log_filter = _DropAfterGuard(guard)
        cb_logger = logging.getLogger(CONTINUOUS_LOGGER)
        cb_logger.addFilter(log_filter)
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                outputs = self.model.generate_batch(
                    inputs=encoded, generation_config=config,
                    continuous_batching_config=self._continuous_batching_config(encoded),
                    warmup=self.device.type == "cuda", progress_bar=False,
                )
        except torch.cuda.OutOfMemoryError as e:
            raise ReceiverError(
                f"{self.name} ran out of GPU memory in continuous batching ({len(encoded)} prompts, at most "
                f"{self.batch_size} at once); lower batch_size or max_new_tokens, or use a smaller dtype"
            ) from e
        finally:
            handle.remove()
            cb_logger.removeFilter(log_filter)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        latency = (time.perf_counter() - t0) / len(encoded)
        if guard.message is not None:
            raise ReceiverError(guard.message)
        results = list(outputs.values())
        failed = [r for r in results if r.error is not None or not r.is_finished()]
        if len(results) != len(encoded) or failed:
            why = failed[0].error if failed else f"{len(encoded) - len(results)} results missing"
            raise ReceiverError(
                f"{self.name}: the continuous-batching engine failed {max(len(failed), len(encoded) - len(results))} "
                f"of {len(encoded)} requests ({why}); no answer of this call is scored. engine='generate' avoids it."
            )
        generations = []
        for ids, result in zip(encoded, results):
            if list(result.prompt_ids) != list(ids):  # results come back in input order; make sure
                raise ReceiverError(f"{self.name}: the continuous-batching engine returned results out of order")
            generations.append(self._to_generation(ids, list(result.generated_tokens),
                                                   config.max_new_tokens, latency))
        return generations
