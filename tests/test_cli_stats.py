"""bpa_gym.stats.wilson_interval (the interval `bpa-gym eval` prints): scipy's Wilson interval, checked arguments."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpa_gym.errors import ConfigError
from bpa_gym.stats import wilson_interval


def closed_form(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 10**5), frac=st.floats(0, 1), level=st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_matches_the_closed_form(n, frac, level):
    from scipy.stats import norm

    k = round(frac * n)
    lo, hi = wilson_interval(k, n, level)
    ref_lo, ref_hi = closed_form(k, n, float(norm.ppf(0.5 + level / 2)))
    assert lo == pytest.approx(ref_lo, abs=1e-9) and hi == pytest.approx(ref_hi, abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_edges_are_exact():
    assert wilson_interval(0, 7)[0] == 0.0 and wilson_interval(7, 7)[1] == 1.0


@pytest.mark.parametrize("args, match", [
    ((3, 2), r"successes must be in 0..n = 0..2, got 3"),
    ((-1, 2), "successes = -1: must be an integer >= 0"),
    ((1, 0), "n = 0: must be an integer >= 1"),
    ((1.5, 3), "successes = 1.5"),
    ((True, 3), "successes = True"),
    ((1, 3, 1.0), "confidence_level = 1.0: must be a number strictly between 0 and 1"),
    ((1, 3, float("nan")), "confidence_level = nan"),
])
def test_bad_arguments(args, match):
    with pytest.raises(ConfigError, match=match):
        wilson_interval(*args)
