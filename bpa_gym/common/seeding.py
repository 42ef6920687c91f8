"""Seeding Python's, numpy's and (when installed) torch's global RNGs together."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed ``random``, ``numpy.random`` and torch (CPU and CUDA) with ``seed``.

    Args:
        seed: An integer in ``[0, 2**32)``.

    Raises:
        ConfigError: ``seed`` is not such an integer.
    """
    from bpa_gym.common.validation import Seed, check_value

    seed = check_value(Seed, seed, "seed")
    if seed is None or seed >= 2**32:
        from bpa_gym.errors import ConfigError

        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)


__all__ = ["seed_everything"]
