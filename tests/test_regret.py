"""RegretWrapper: pseudo-regret values, bound, oracle protocol, TensorBoard logs, plot."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import bpa_gym  # noqa: F401
from bpa_gym.envs.tabular import TabularPersuasionEnv
from bpa_gym.errors import OracleUnavailableError
from bpa_gym.oracles import ExactLPOracle, RegretOracle
from bpa_gym.persuasion import TabularGame
from bpa_gym.plotting import load_regret_group, plot_regret
from bpa_gym.wrappers.regret import TB_TAGS, RegretWrapper, regret_bound


def _play(env, scheme, n, seed=0):
    env.reset(seed=seed)
    info = {}
    for _ in range(n):
        _, _, term, trunc, info = env.step(scheme)
        if term or trunc:
            env.reset()
    return info["regret"]


def test_optimal_scheme_has_zero_regret_exactly():
    env = RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0"))
    reg = _play(env, env.unwrapped.game.optimum.scheme, 500)
    assert reg["cumulative"] == 0.0 and reg["instant"] == 0.0
    assert env.oracle_name == "exact LP optimum"


@pytest.mark.parametrize("seed", range(8))
def test_optimal_scheme_after_float32_round_off_keeps_its_value(seed):
    game = TabularGame.prosecutor() if seed == 0 else TabularGame.random(seed, 2 + seed % 4, 2 + seed % 3)
    env = RegretWrapper(TabularPersuasionEnv(game=game))
    scheme32 = game.optimum.scheme.astype(np.float32)
    reg = _play(env, scheme32, 50)
    # no best response flips (that would cost O(1) per step): only float32 noise remains
    assert abs(reg["instant"]) < 1e-6
    assert abs(reg["cumulative"]) < 50 * 1e-6


def test_pinned_regret_of_suboptimal_schemes():
    env = RegretWrapper(TabularPersuasionEnv(game="prosecutor"))
    no_info = np.array([[1.0, 0.0], [1.0, 0.0]])  # always "acquit": value 0
    reg = _play(env, no_info, 10)
    assert reg["instant"] == pytest.approx(0.6, abs=1e-12)
    assert reg["cumulative"] == pytest.approx(6.0, abs=1e-9)
    env = RegretWrapper(TabularPersuasionEnv(game="prosecutor"))
    full_info = np.eye(2)  # value 0.3
    reg = _play(env, full_info, 10)
    assert reg["instant"] == pytest.approx(0.3, abs=1e-12)
    assert reg["cumulative"] == pytest.approx(3.0, abs=1e-9)
    assert reg["t"] == 10


def test_bound_formula_and_ratio():
    assert regret_bound(1, 2) == pytest.approx(2 ** 1.5 * math.sqrt(1 * math.log(2)))  # log(max(T, 2))
    assert regret_bound(1000, 3, 0.5) == pytest.approx(0.5 * 3 ** 1.5 * math.sqrt(1000 * math.log(1000)))
    env = RegretWrapper(TabularPersuasionEnv(game_seed=1, n_states=3, n_actions=3), bound_constant=2.0)
    reg = _play(env, np.eye(3), 7)
    assert env.num_signals == 3
    assert reg["bound"] == pytest.approx(2.0 * 3 ** 1.5 * math.sqrt(7 * math.log(7)))
    assert reg["ratio"] == pytest.approx(reg["cumulative"] / reg["bound"])
    reg1 = _play(RegretWrapper(TabularPersuasionEnv(game="prosecutor")), np.eye(2), 1)
    assert reg1["bound"] > 0 and math.isfinite(reg1["ratio"])


def test_signal_mode_regret_uses_state_conditional_optimum():
    game = TabularGame.prosecutor()
    env = RegretWrapper(TabularPersuasionEnv(game=game, action="signal"))
    obs, _ = env.reset(seed=0)
    total, v_state = 0.0, game.optimum.state_values  # V*(innocent) = 3/7, V*(guilty) = 1
    for _ in range(300):
        _, r, _, _, info = env.step(1)  # always "convict"
        assert info["regret"]["instant"] == pytest.approx(v_state[info["state"]] - r)
        total += v_state[info["state"]] - r
        env.reset()
    assert info["regret"]["cumulative"] == pytest.approx(total)
    assert total / 300 > 0.5  # lying loses nearly the whole optimum 0.6


class _NoOracleEnv(gym.Env):
    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 0.0, True, False, {}


class _BrokenOracleEnv(_NoOracleEnv):
    def regret_oracle(self):
        raise RuntimeError("no table for this task")


def test_oracle_unavailable_errors():
    with pytest.raises(OracleUnavailableError, match="no regret oracle.*BayesPersuasion-Tabular-v0"):
        RegretWrapper(_NoOracleEnv())
    with pytest.raises(OracleUnavailableError, match="no table for this task"):
        RegretWrapper(_BrokenOracleEnv())


def test_custom_oracle_protocol():
    class Constant:
        name = "constant"
        num_signals = 2

        def instant_regret(self, action, info):
            return 0.25

        def describe(self):
            return "always 0.25"

    assert isinstance(Constant(), RegretOracle)
    assert isinstance(ExactLPOracle(TabularGame.prosecutor()), RegretOracle)
    env = RegretWrapper(_NoOracleEnv(), oracle=Constant())
    env.reset()
    _, _, _, _, info = env.step(0)
    assert info["regret"]["cumulative"] == 0.25 and env.oracle_name == "constant"
    assert "V* = 0.6" in ExactLPOracle(TabularGame.prosecutor()).describe()


def _write_run(log_dir, scheme, n, seed):
    env = RegretWrapper(TabularPersuasionEnv(game="prosecutor"), log_dir=log_dir, log_every=50)
    _play(env, scheme, n, seed)
    env.close()


def test_tensorboard_logs_and_plot(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for seed in range(3):
        _write_run(tmp_path / "full_info" / f"seed{seed}", np.eye(2), 230, seed)
    _write_run(tmp_path / "no_info_single", np.array([[1.0, 0.0], [1.0, 0.0]]), 230, 0)
    acc = EventAccumulator(str(tmp_path / "full_info" / "seed0"))
    acc.Reload()
    assert set(TB_TAGS) <= set(acc.Tags()["scalars"])
    steps = [e.step for e in acc.Scalars("regret/cumulative")]
    assert steps == [1, 2, 4, 8, 16, 32, 50, 64, 100, 128, 150, 200, 230]  # powers of 2, every 50, last on close
    cum = {e.step: e.value for e in acc.Scalars("regret/cumulative")}
    assert cum[230] == pytest.approx(0.3 * 230, rel=1e-6)
    group = load_regret_group(tmp_path / "full_info")
    assert int(group["n_seeds"]) == 3
    np.testing.assert_allclose(group["mean"], 0.3 * group["steps"], rtol=1e-5)
    np.testing.assert_allclose(group["std"], 0.0, atol=1e-4)
    out = plot_regret([tmp_path / "full_info", tmp_path / "no_info_single"], tmp_path / "plots" / "r.png", loglog=True)
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_regret_missing_dir(tmp_path):
    from bpa_gym.errors import DataNotFoundError

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no TensorBoard event files"):
        plot_regret([tmp_path / "empty"], tmp_path / "x.png")


def test_reset_regret_clears_the_instant_regret():
    env = RegretWrapper(TabularPersuasionEnv(game="prosecutor"))
    reg = _play(env, np.eye(2), 3)
    assert reg["instant"] == pytest.approx(0.3)
    env.reset_regret()
    assert env.regret_info() == {"t": 0, "instant": 0.0, "cumulative": 0.0, "bound": regret_bound(1, 2),
                                 "ratio": 0.0}


@pytest.mark.parametrize("kwargs, match", [
    ({"bound_constant": float("nan")}, "bound_constant = nan"),
    ({"bound_constant": 0}, "bound_constant = 0"),
    ({"log_every": 2.5}, "log_every = 2.5"),
    ({"log_every": True}, "log_every = True"),
    ({"log_dir": 123}, "log_dir must be a path"),
])
def test_bad_wrapper_arguments(kwargs, match):
    from bpa_gym.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        RegretWrapper(TabularPersuasionEnv(game="prosecutor"), **kwargs)


def test_tensorboard_logs_are_read_by_the_cli(tmp_path):
    from bpa_gym.cli import main

    _write_run(tmp_path / "run", np.eye(2), 64, 0)
    main(["plot-regret", str(tmp_path / "run"), "--out", str(tmp_path / "r.png"), "--loglog"])
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
