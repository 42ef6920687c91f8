"""plot_regret (behind `bpa-gym plot-regret`): bad arguments are clear ConfigErrors; the image is written atomically."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401  (registers envs)
from bpa_gym.errors import ConfigError
from bpa_gym.plotting import plot_regret
from bpa_gym.wrappers import RegretWrapper


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    env = RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0", action="scheme"), log_dir=root / "run", log_every=5)
    env.reset(seed=0)
    for _ in range(20):
        env.step(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
        env.reset()
    env.close()
    return root / "run"


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": "abc"}, "labels must be a list of strings"),
    ({"labels": ["a", "b"]}, "got 2 labels for 1 log dirs"),
    ({"labels": [1]}, "labels.0 = 1: got int, not a string"),
    ({"loglog": "yes"}, "loglog = 'yes': must be True or False"),
    ({"title": 3}, "title = 3"),
    ({"out_png": 5}, "out_png must be a path, got int"),
    ({"out_png": "x.nosuchformat"}, "cannot write a '.nosuchformat' image"),
    ({"log_dirs": 7}, "log_dirs must be a path or a list of paths"),
    ({"log_dirs": []}, "at least one log dir"),
])
def test_bad_arguments_are_clear(logs, tmp_path, kwargs, match):
    call = {"log_dirs": logs, "out_png": tmp_path / "r.png", **kwargs}
    with pytest.raises(ConfigError, match=match):
        plot_regret(**call)
    assert list(tmp_path.iterdir()) == []  # nothing (not even a temp file) is left behind


def test_writes_the_requested_format_in_one_piece(logs, tmp_path):
    png = plot_regret(logs, tmp_path / "sub" / "r.png", loglog=True, labels=["full info"], title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot_regret([logs], tmp_path / "r.svg")
    assert b"<svg" in svg.read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.svg", "sub"]
