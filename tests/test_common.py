"""bpa_gym.common: argument checking, atomic writes, file locks, the categorical sampler, seeding."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpa_gym.common import atomic_path, atomic_write, file_lock, sample_categorical, seed_everything
from bpa_gym.common.validation import (
    Arguments, Bool, NonNegativeInt, PositiveFloat, PositiveFloatOrInf, PositiveInt, Probability, Seed, check,
    check_value,
)
from bpa_gym.errors import ConfigError


class Demo(Arguments):
    n: PositiveInt = 1
    k: NonNegativeInt = 0
    seed: Seed = None
    timeout_s: PositiveFloatOrInf = 5.0
    t: PositiveFloat = 1.0
    p: Probability = 0.5
    flag: Bool = False


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"n": 2.5}, "n = 2.5: must be an integer >= 1"),
        ({"n": True}, "n = True: must be an integer >= 1 (got a bool"),
        ({"n": "64"}, "n = '64': must be an integer >= 1 (got a string"),
        ({"n": 0}, "n = 0: must be an integer >= 1"),
        ({"k": -1}, "k = -1: must be an integer >= 0"),
        ({"seed": -1}, "seed = -1: must be an integer >= 0 or None"),
        ({"seed": 1.5}, "seed = 1.5: must be an integer >= 0 or None"),
        ({"seed": "abc"}, "seed = 'abc': must be an integer >= 0 or None"),
        ({"seed": float("nan")}, "seed = nan: must be an integer >= 0 or None"),
        ({"t": float("nan")}, "t = nan: must be a finite number > 0 (got nan)"),
        ({"t": float("inf")}, "t = inf: must be a finite number > 0 (got an infinite value)"),
        ({"t": "5"}, "t = '5': must be a finite number > 0 (got a string"),
        ({"timeout_s": float("nan")}, "timeout_s = nan: must be a number > 0 (inf for no limit) (got nan)"),
        ({"p": 1.5}, "p = 1.5: must be a number in [0, 1]"),
        ({"flag": 1}, "flag = 1: must be True or False"),
        ({"bogus": 3}, "bogus = 3: unknown argument; known: flag, k, n, p, seed, t, timeout_s"),
    ],
)
def test_bad_arguments_get_one_clear_message(kwargs, needle):
    with pytest.raises(ConfigError) as ei:
        check(Demo, "Demo", **kwargs)
    msg = str(ei.value)
    assert msg.startswith("Demo: invalid argument")
    assert needle in msg


def test_every_bad_argument_is_listed_once():
    with pytest.raises(ConfigError) as ei:
        check(Demo, "Demo", n=0, t=-1.0, seed=-3)
    lines = str(ei.value).splitlines()
    assert lines[0] == "Demo: invalid arguments"
    assert [ln.split(" = ")[0].strip(" -") for ln in lines[1:]] == ["n", "seed", "t"]


def test_good_arguments_are_kept_and_numpy_scalars_become_python():
    a = check(Demo, "Demo", n=np.int64(3), seed=np.uint32(7), timeout_s=math.inf, t=np.float32(0.5),
              flag=np.bool_(True))
    assert (a.n, a.seed, a.timeout_s, a.t, a.flag) == (3, 7, math.inf, 0.5, True)
    assert type(a.n) is int and type(a.seed) is int and type(a.flag) is bool


def test_check_value_single():
    assert check_value(Seed, None, "seed") is None
    with pytest.raises(ConfigError, match=r"reset\(\): invalid argument\n  - seed = -1"):
        check_value(Seed, -1, "seed", "reset()")


@given(st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5), st.none(),
                 st.booleans(), st.lists(st.integers(), max_size=2)))
@settings(max_examples=300, deadline=None)
def test_positive_int_accepts_exactly_the_positive_integers(value):
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if ok:
        assert check(Demo, "Demo", n=value).n == value
    else:
        with pytest.raises(ConfigError, match="Demo: invalid argument"):
            check(Demo, "Demo", n=value)


# --------------------------------------------------------------------------- files


def test_atomic_write_failure_leaves_old_content_and_no_temp(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]


def test_atomic_path_replaces_a_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_bytes(b"old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_bytes(b"new")
    assert sorted(x.name for x in target.iterdir()) == ["new.bin"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["model"]


def test_atomic_write_killed_writer_leaves_no_half_file(tmp_path):
    """A real process SIGKILLed mid-write: the target keeps its old content."""
    p = tmp_path / "f.bin"
    p.write_bytes(b"old")
    code = textwrap.dedent(f"""
        import os, sys, time
        from bpa_gym.common import atomic_write
        with atomic_write({str(p)!r}) as fh:
            fh.write(b"x" * 1000)
            fh.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert p.read_bytes() == b"old"


def _locked_increment(path: str, lock: str, n: int) -> None:
    for _ in range(n):
        with file_lock(lock):
            v = int(open(path).read())
            with open(path, "w") as fh:
                fh.write(str(v + 1))


def test_file_lock_serialises_processes(tmp_path):
    counter = tmp_path / "n"
    counter.write_text("0")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_locked_increment, args=(str(counter), str(tmp_path / "n.lock"), 50)) for _ in range(3)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(60)
        assert pr.exitcode == 0
    assert int(counter.read_text()) == 150


# --------------------------------------------------------------------------- sampling and seeding


def test_sample_categorical_matches_probabilities():
    rng = np.random.default_rng(0)
    p = np.array([0.1, 0.0, 0.6, 0.3])
    draws = sample_categorical(p, rng, size=200_000)
    freq = np.bincount(draws, minlength=4) / draws.size
    assert freq[1] == 0.0
    assert np.abs(freq - p).max() < 0.005
    rows = sample_categorical(np.tile(p, (100_000, 1)), rng)
    assert np.abs(np.bincount(rows, minlength=4) / rows.size - p).max() < 0.006


@given(st.lists(st.floats(0, 1), min_size=1, max_size=8).filter(lambda v: sum(v) > 0), st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_sample_categorical_never_out_of_range_or_on_zero_mass(weights, seed):
    p = np.array(weights) / sum(weights)
    draws = sample_categorical(p, np.random.default_rng(seed), size=64)
    assert draws.min() >= 0 and draws.max() < p.size
    assert (p[draws] > 0).all()


def test_seed_everything_reproduces_and_validates():
    import random

    import torch

    seed_everything(5)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    for bad in (-1, 1.5, "3", 2**32, None):
        with pytest.raises(ConfigError, match="seed"):
            seed_everything(bad)


def test_resolve_device_is_public():
    from bpa_gym.common import resolve_device

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("gpu7")
