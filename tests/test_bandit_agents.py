"""Bandit Advisors on discrete signals: SB3 with a GPT-2 policy and the classical learners, one runner."""

from __future__ import annotations

import json

import pytest

from agents import example_agent, sb3_bandit


def _args(**kw):
    defaults = dict(total_steps=2000, eval_steps=128, seed=0, max_length=16)
    defaults.update(kw)
    return sb3_bandit.Args(**defaults)


@pytest.mark.parametrize("algo", ["ucb1", "thompson", "linucb"])
def test_classical_bandits_reach_the_identity_optimum(algo, gpt2_dir):
    summary = sb3_bandit.train(_args(algo=algo, tokenizer=str(gpt2_dir)))
    assert summary["eval_mean_reward"] >= 0.9
    regret = summary["final_regret"]
    assert regret is not None and regret["t"] == 2000 and regret["ratio"] < 1.0


def test_sb3_ppo_gpt2_policy_reaches_the_identity_optimum(gpt2_dir, tmp_path):
    """SB3 PPO (gamma=0) on token ids through a frozen random-init GPT-2 extractor; random play earns 1/4."""
    summary = sb3_bandit.main(["--algo", "ppo", "--tokenizer", str(gpt2_dir), "--total-steps", "2000",
                               "--eval-steps", "128", "--max-length", "16", "--log-dir", str(tmp_path / "tb"),
                               "--out", str(tmp_path / "s.json")])
    assert summary["eval_mean_reward"] >= 0.9
    assert json.loads((tmp_path / "s.json").read_text())["eval_mean_reward"] == summary["eval_mean_reward"]
    assert any((tmp_path / "tb").iterdir())  # regret curves for TensorBoard


def test_example_agent_learns():
    regret = example_agent.run(steps=1500, seed=0)
    assert regret["t"] == 1500 and regret["ratio"] < 1.0


def test_help_lists_documented_fields(capsys):
    with pytest.raises(SystemExit):
        sb3_bandit.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "--trainable-extractor" in out and "fine-tune the GPT-2 extractor" in out


@pytest.mark.slow
def test_sb3_smoke_against_smollm2(shared_data_dir, gpt2_dir):
    """A few PPO steps end to end: GSM8K items, GPT-2 policy, real SmolLM2 answers."""
    summary = sb3_bandit.train(sb3_bandit.Args(
        algo="ppo", env="BayesPersuasion-GSM8K-v0", receiver="smollm2", receiver_max_new_tokens=32, data_dir=str(shared_data_dir),
        subset_size=4, total_steps=8, n_steps=4, batch_size=4, eval_steps=2, max_length=128,
        tokenizer=str(gpt2_dir)))
    assert 0.0 <= summary["eval_mean_reward"] <= 1.0 and summary["final_regret"] is None
