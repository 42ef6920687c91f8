"""Small statistics helpers used by evaluation and benchmarks."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bpa_gym.common.validation import Arguments, NonNegativeInt, PositiveInt, Probability, check
from bpa_gym.errors import ConfigError


class _WilsonArgs(Arguments):
    successes: NonNegativeInt
    n: PositiveInt
    confidence_level: Annotated[Probability, Field(gt=0, lt=1, description="a number strictly between 0 and 1")] = 0.95


def wilson_interval(successes: int, n: int, confidence_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    A thin wrapper around ``scipy.stats.binomtest(successes, n).proportion_ci(method="wilson")``.

    Args:
        successes: Number of successes, in ``0..n``.
        n: Number of trials (>= 1).
        confidence_level: Coverage of the interval, in (0, 1).

    Returns:
        ``(low, high)``, within [0, 1].

    Raises:
        ConfigError: bad counts or confidence level.

    Example:
        >>> lo, hi = wilson_interval(8, 10)
        >>> round(lo, 3), round(hi, 3)
        (0.49, 0.943)
        >>> wilson_interval(0, 10)[0], wilson_interval(10, 10)[1]
        (0.0, 1.0)
    """
    args = check(_WilsonArgs, "wilson_interval", successes=successes, n=n, confidence_level=confidence_level)
    if args.successes > args.n:
        raise ConfigError(f"wilson_interval: successes must be in 0..n = 0..{args.n}, got {args.successes}")
    from scipy.stats import binomtest

    ci = binomtest(args.successes, args.n).proportion_ci(confidence_level=args.confidence_level, method="wilson")
    return float(ci.low), float(ci.high)


__all__ = ["wilson_interval"]
