"""The one categorical sampler used across bpa_gym and its agents."""

from __future__ import annotations

import bisect

import numpy as np


def sample_categorical(probs, rng: np.random.Generator, size: int | None = None) -> np.ndarray | int:
    """Draw indices from one categorical distribution, or one index per row.

    Uses inverse-CDF sampling with the last cumulative value pinned to 1, so
    round-off in ``probs`` can never yield an out-of-range index.

    Args:
        probs: Shape ``(K,)`` (one distribution) or ``(B, K)`` (one per row);
            nonnegative, each summing to 1 up to round-off.  A Python list of
            ``float`` with ``size=None`` takes a plain-Python path (faster for one
            draw) that gives the same index and consumes the same random number.
        rng: A ``numpy.random.Generator``.
        size: With a 1-D ``probs``, the number of draws (``None``: one ``int``).
            Must be ``None`` for 2-D ``probs`` (one draw per row).

    Returns:
        An ``int`` (1-D ``probs``, ``size=None``) or an integer array.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> sample_categorical([0.0, 1.0], rng)
        1
        >>> sample_categorical([[1.0, 0.0], [0.0, 1.0]], rng).tolist()
        [0, 1]
    """
    if size is None and type(probs) is list:  # fast path for one draw (a per-step env): plain Python
        total, cum = 0.0, []
        for x in probs:
            if type(x) is not float:
                break
            total += x  # np.cumsum's order: the same sums, bit for bit
            cum.append(total)
        else:
            if cum and total == total:  # no NaN (numpy orders NaN differently)
                cum[-1] = 1.0
                # bisect_right is np.searchsorted(side="right")'s binary search, step for step
                return min(bisect.bisect_right(cum, rng.random()), len(cum) - 1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        cum = np.cumsum(p)
        cum[-1] = 1.0
        u = rng.random(size if size is not None else 1)
        idx = np.searchsorted(cum, u, side="right").clip(0, p.size - 1)
        return int(idx[0]) if size is None else idx
    if p.ndim != 2 or size is not None:
        raise ValueError(f"probs must be (K,) or (B, K) with size=None for 2-D, got shape {p.shape}, size={size}")
    cum = np.cumsum(p, axis=1)
    cum[:, -1] = 1.0
    u = rng.random(p.shape[0])
    return (u[:, None] >= cum).sum(axis=1).clip(0, p.shape[1] - 1)


__all__ = ["sample_categorical"]
