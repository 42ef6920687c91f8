"""Shared helpers with one public home (SB3-style ``common/``, split by concern).

* :mod:`bpa_gym.common.validation`: declarative, typed argument checking
  (pydantic) that turns every bad argument into one
  :class:`~bpa_gym.errors.ConfigError` style.
* :mod:`bpa_gym.common.files`: atomic file writes and inter-process file locks.
* :mod:`bpa_gym.common.sampling`: the one categorical sampler.
* :mod:`bpa_gym.common.seeding`: seeding Python, numpy and torch together.
* :mod:`bpa_gym.common.torch_utils`: device and dtype resolution (imports torch).

Everything except :mod:`~bpa_gym.common.torch_utils` is importable without torch.
"""

from __future__ import annotations

from typing import Any

from bpa_gym.common.files import atomic_path, atomic_write, file_lock
from bpa_gym.common.sampling import sample_categorical
from bpa_gym.common.seeding import seed_everything

__all__ = ["atomic_path", "atomic_write", "file_lock", "sample_categorical", "seed_everything", "resolve_device", "resolve_dtype"]


def __getattr__(name: str) -> Any:  # torch helpers load torch only when used
    if name in ("resolve_device", "resolve_dtype"):
        from bpa_gym.common import torch_utils

        return getattr(torch_utils, name)
    raise AttributeError(f"module 'bpa_gym.common' has no attribute {name!r}")
