"""The bpa-gym command line: envs, signals, eval, oracle-table, and its error messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bpa_gym.cli import main
from bpa_gym.oracle_table import OracleTable


def test_console_script_lists_envs():
    exe = shutil.which("bpa-gym")
    cmd = [exe, "envs"] if exe else [sys.executable, "-m", "bpa_gym.cli", "envs"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "BayesPersuasion-GSM8K-v0" in out and "BayesPersuasion-Identity-v0" in out


def test_signals_lists_library(capsys, shared_data_dir):
    assert main(["signals", "--data-dir", str(shared_data_dir)]) == 0
    out = capsys.readouterr().out
    assert "  0  (no signal)" in out and "  9  Finish with a final line" in out


@pytest.mark.parametrize("command", ["signals", "eval"])
def test_unknown_env_is_a_clear_error(capsys, command):
    assert main([command, "--env", "Nope-v0"]) == 2
    err = capsys.readouterr().err
    assert "unknown env 'Nope-v0'" in err and "BayesPersuasion-GSM8K-v0" in err and "bpa-gym envs" in err


def test_signals_needs_no_data(capsys, monkeypatch):
    # The library follows from the env spec: listing it loads neither data nor a model.
    monkeypatch.delenv("BPA_DATA_DIR", raising=False)
    assert main(["signals", "--env", "BayesPersuasion-GSM8K-v0"]) == 0
    assert "  1  Work step by step" in capsys.readouterr().out
    assert main(["signals", "--env", "BayesPersuasion-Identity-v0"]) == 0
    assert "  0  Strategy A" in capsys.readouterr().out
    assert main(["signals", "--env", "bpa_gym:BayesPersuasion-Identity-v0"]) == 0  # gym.make's module prefix
    assert "  0  Strategy A" in capsys.readouterr().out
    assert main(["signals", "--env", "BayesPersuasion-Prosecutor-v0"]) == 0
    assert "not a text signal library" in capsys.readouterr().out


def test_eval_on_identity_env(capsys, tmp_path):
    # The Identity env's rule-based Receiver: no model needed; signal 0 is right for some topics only.
    out_json = tmp_path / "r.json"
    assert main(["eval", "--env", "BayesPersuasion-Identity-v0", "--signal", "0", "--n", "64",
                 "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    assert result["n"] == 64 and 0 < result["accuracy"] < 1
    lo, hi = result["ci95"]
    assert lo < result["accuracy"] < hi
    assert "95% Wilson CI" in text


def test_oracle_table_command(tmp_path, capsys):
    out = tmp_path / "t.npz"
    assert main(["oracle-table", "--env", "BayesPersuasion-Identity-v0", "--out", str(out)]) == 0
    table = OracleTable.load(out)
    # Exactly one right strategy per item: the per-item oracle is perfect, each row sums to 1.
    assert table.rewards.shape == (64, 4) and np.all(table.rewards.sum(axis=1) == 1)
    assert "per-item best 1.000" in capsys.readouterr().out


def test_errors_are_clear(capsys, tmp_path):
    assert main(["eval", "--data-dir", str(tmp_path / "missing"), "--n", "1"]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "data_dir" in err and "gsm8k" in err
    assert main(["eval", "--env", "BayesPersuasion-Identity-v0", "--signal", "99"]) == 2
    assert "outside" in capsys.readouterr().err
    assert main(["eval", "--receiver", "nonsense-spec", "--data-dir", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["eval", "--n", "x"])


@pytest.mark.slow
def test_eval_smollm2_end_to_end(shared_data_dir, tmp_path):
    """The README's main job, shortened: a real SmolLM2 answers two GSM8K items."""
    out = tmp_path / "e.json"
    assert main(["eval", "--receiver", "smollm2", "--signal", "9", "--n", "2", "--max-new-tokens", "48",
                 "--data-dir", str(shared_data_dir), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["receiver"] == "smollm2" and result["n"] == 2 and result["seconds_per_item"] > 0


def test_plot_regret_command(tmp_path, capsys):
    import gymnasium as gym

    from bpa_gym.wrappers import RegretWrapper

    for seed in range(2):
        env = RegretWrapper(gym.make("BayesPersuasion-Prosecutor-v0", action="scheme"),
                            log_dir=tmp_path / "runs" / f"seed{seed}", log_every=10)
        env.reset(seed=seed)
        for _ in range(50):
            env.step(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))  # full information: regret 0.3/step
            env.reset()
        assert abs(env.regret_info()["cumulative"] - 50 * 0.3) < 1e-9
        env.close()
    out = tmp_path / "regret.png"
    assert main(["plot-regret", str(tmp_path / "runs"), "--out", str(out), "--loglog"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out
