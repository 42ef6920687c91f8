"""Device and dtype resolution for torch code (Receivers, agents, benchmarks)."""

from __future__ import annotations

import torch

from bpa_gym.errors import ConfigError

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device for ``device``; ``"auto"`` is CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ConfigError(
            f"device must be a string or torch.device, got {type(device).__name__} {device!r}; "
            "use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device {device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if resolved.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ConfigError(f"device {device!r} cannot run a model; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return resolved


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """The torch dtype for ``dtype``; ``"auto"`` is bfloat16 on CUDA and float32 elsewhere.

    Example:
        >>> resolve_dtype("bf16", torch.device("cpu"))
        torch.bfloat16
    """
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ConfigError(f"dtype {dtype} is not a floating-point dtype; use float32, bfloat16 or float16")
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):
        raise ConfigError(
            f"dtype {dtype!r} is not supported; use 'auto', 'float32', 'bfloat16' or 'float16'"
        ) from None


__all__ = ["resolve_device", "resolve_dtype"]
