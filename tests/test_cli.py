"""The bpa-gym command line: envs, signals, eval, oracle-table, and its error messages."""

from __future__ import annotations

import json
import math
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


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval from its closed form (independent of bpa_gym.stats and scipy)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("signal", [0, 2])
def test_eval_on_identity_env(capsys, tmp_path, signal):
    # The Identity env's rule-based Receiver repeats the advised strategy, so signal s is right exactly on the
    # items whose topic's answer key is s: the expected count follows from the task, not from the CLI.
    from bpa_gym.envs.identity import IdentityTask

    task = IdentityTask(num_signals=4, seed=0)
    expected = sum(task.answer_key[it.meta["topic"]] == signal for it in task.load("train")[:40])
    assert 0 < expected < 40  # a non-trivial count
    out_json = tmp_path / "sub" / "r.json"
    assert main(["eval", "--env", "BayesPersuasion-Identity-v0", "--signal", str(signal), "--n", "40",
                 "--batch-size", "7", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    assert result["n"] == 40 and result["correct"] == expected
    assert result["accuracy"] == expected / 40
    assert result["signal"] == f"Strategy {'ABCD'[signal]}" and result["signal_label"] == f"signal {signal}"
    lo, hi = _wilson(expected, 40)
    assert result["ci95"] == pytest.approx([lo, hi], abs=1e-12)
    assert f"accuracy   {expected / 40:.3f}  ({expected}/40, 95% Wilson CI [{lo:.3f}, {hi:.3f}])" in text


def test_eval_counts_receiver_batches_and_no_signal(capsys, tmp_path, shared_data_dir, monkeypatch):
    """--signal none sends no advice; --batch-size splits the N items into Receiver calls of that size."""
    import gymnasium as gym

    from bpa_gym.receivers import ScriptedReceiver
    from bpa_gym.tasks.gsm8k import GSM8KTask

    items = GSM8KTask(data_dir=shared_data_dir).load("test")[:5]
    golds = {it.question: it.gold for it in items}
    right = {items[0].question, items[3].question}  # the scripted Receiver knows these two

    def answer(messages):
        content = messages[-1]["content"]
        assert "Advice" not in content  # no signal means no advice block
        q = next(q for q in golds if q in content)
        return f"The answer is {golds[q]}." if q in right else "I am not sure."

    receiver = ScriptedReceiver(answer, name="scripted-cli")
    real_make = gym.make
    monkeypatch.setattr(gym, "make", lambda *a, **k: real_make(*a, **{**k, "receiver": receiver}))
    out_json = tmp_path / "r.json"
    assert main(["eval", "--n", "5", "--batch-size", "2", "--data-dir", str(shared_data_dir),
                 "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert receiver.calls == [2, 2, 1]
    assert (result["correct"], result["n"], result["parse_rate"]) == (2, 5, 2 / 5)
    assert result["receiver"] == "scripted-cli" and result["signal"] == "" and result["signal_label"] == "no signal"
    assert result["ci95"] == pytest.approx(list(_wilson(2, 5)), abs=1e-12)


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
    assert "signal index 99 is outside 0..3" in capsys.readouterr().err
    assert main(["eval", "--receiver", "nonsense-spec", "--data-dir", str(tmp_path)]) == 2


BAD_ARGUMENTS = [
    (["eval", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got 0"),
    (["eval", "--batch-size", "2.5"], "argument --batch-size: must be an integer >= 1, got '2.5'"),
    (["eval", "--n", "-3"], "argument --n: must be an integer >= 1, got -3"),
    (["eval", "--n", "0"], "argument --n: must be an integer >= 1, got 0"),
    (["eval", "--n", "x"], "argument --n: must be an integer >= 1, got 'x'"),
    (["eval", "--max-new-tokens", "0"], "argument --max-new-tokens: must be an integer >= 1, got 0"),
    (["eval", "--signal", "abc"], "argument --signal: must be a signal index >= 0"),
    (["eval", "--signal", "-1"], "argument --signal: must be a signal index >= 0"),
    (["eval", "--signal", "1", "--signal-text", "hi"], "argument --signal-text: not allowed with argument --signal"),
    (["eval", "--json", "."], "argument --json: '.' is a directory; give a file path"),
    (["oracle-table", "--out", "t.npz", "--batch-size", "-1"], "argument --batch-size: must be an integer >= 1"),
    (["oracle-table", "--out", "t.npz", "--subset-size", "0"], "argument --subset-size: must be an integer >= 1"),
    (["oracle-table"], "the following arguments are required: --out"),
    (["plot-regret", "logs", "--out", ""], "argument --out: must be a file path"),
    (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv, message", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_exit_2_with_one_message_style(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"bpa-gym: error: {message}" in err and "Traceback" not in err


def test_console_script_bad_argument_has_no_traceback():
    exe = shutil.which("bpa-gym")
    cmd = [exe] if exe else [sys.executable, "-m", "bpa_gym.cli"]
    proc = subprocess.run(cmd + ["eval", "--batch-size", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("bpa-gym: error: argument --batch-size: must be an integer >= 1, got 0")


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
