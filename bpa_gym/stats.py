"""Small statistics helpers used by evaluation and benchmarks."""

from __future__ import annotations

import math

from bpa_gym.errors import ConfigError


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Example:
        >>> lo, hi = wilson_interval(8, 10)
        >>> round(lo, 3), round(hi, 3)
        (0.49, 0.943)
        >>> wilson_interval(0, 10)[0]
        0.0
    """
    if n <= 0:
        raise ConfigError(f"wilson_interval needs n >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ConfigError(f"successes must be in 0..{n}, got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
