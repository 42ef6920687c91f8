"""Smoke test of benchmarks/paper_table.py: the whole pipeline (train, export, evaluate, table, JSON) on the Identity env.

The real run (SmolLM2 in-process and through vLLM) is a benchmark, not a test.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import bpa_gym  # noqa: F401  (registers the envs)

from bpa_gym.advisors import DISCRETE_POLICY_FORMAT

ROOT = Path(__file__).resolve().parents[1]
IDENTITY = "BayesPersuasion-Identity-v0"


def _load():
    spec = importlib.util.spec_from_file_location("paper_table", ROOT / "benchmarks" / "paper_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper_table")
    results = _load().main(["--quick", "--no-vllm", "--receiver", "default", "--gsm8k-env", IDENTITY,
                            "--humaneval-env", IDENTITY, "--out", str(out), "--no-progress", "--cache", "off"])
    return out, results


def test_table_rows_and_json_keys(run):
    out, results = run
    assert {"config", "training", "policies", "evaluations", "times_s", "table_md", "receiver_labels"} <= set(results)
    assert results["config"]["n"] == {"gsm8k": 4, "humaneval": 2}
    assert results["config"]["train_plays"] == {"gsm8k": 8, "humaneval": 8}
    assert results["config"]["max_new_tokens"] == {"gsm8k": 32, "humaneval": 48}
    rows = [line for line in results["table_md"].splitlines()[2:] if line.startswith("|")]
    conditions = [[c.strip() for c in r.split("|")[1:-1]][3] for r in rows]
    assert conditions == ["none", "prior", "trained"] * 2
    assert all("(test, n=4)" in r for r in rows[:3]) and all("(test, n=2)" in r for r in rows[3:])
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["table_md"] == results["table_md"]
    assert (out / "table.md").read_text().startswith(results["table_md"])
    for task in ("gsm8k", "humaneval"):
        ev = on_disk["evaluations"][task]
        assert [c["condition"] for c in ev["cells"]][:2] == ["none", "prior"] and len(ev["cells"]) == 3
        assert set(on_disk["times_s"]) >= {f"{task}_train", f"{task}_evaluate", "total"}


def test_trained_policy_is_the_best_arm_and_is_what_was_evaluated(run):
    out, results = run
    for task in ("gsm8k", "humaneval"):
        tr = results["training"][task]
        assert sum(tr["counts"]) == tr["plays"] == 8
        assert tr["best_mean"] == max(m for m, c in zip(tr["means"], tr["counts"]) if c)
        policy = json.loads((out / f"{task}_policy.json").read_text())
        assert policy["format"] == DISCRETE_POLICY_FORMAT and policy["signal_index"] == tr["best_index"]
        history = json.loads((out / f"{task}_training_history.json").read_text())
        assert len(history) == 8 and sum(h["reward"] for h in history) == sum(
            m * c for m, c in zip(tr["means"], tr["counts"]))
        # the Identity Receiver is right iff the signal is the item's topic's key, so the trained cell's
        # per-item correctness is exactly "the exported index is that item's key"
        env = gym.make(IDENTITY, split="test").unwrapped
        expected = [env.task.answer_key[it.meta["topic"]] == tr["best_index"] for it in env.items[:4 if task == "gsm8k" else 2]]
        assert results["evaluations"][task]["cells"][2]["per_item"] == expected
    # GSM8K's bandit trains on the train split; HumanEval's on eval-split items after the evaluated ones
    assert results["training"]["gsm8k"]["split"] == "train"
    hist = json.loads((out / "humaneval_training_history.json").read_text())
    evaluated = set(results["evaluations"]["humaneval"]["item_ids"])
    assert not evaluated & {h["item"] for h in hist}


def test_zero_training_budget_gives_none_and_prior_only(tmp_path):
    results = _load().main(["--quick", "--no-vllm", "--receiver", "default", "--gsm8k-env", IDENTITY,
                            "--humaneval-env", IDENTITY, "--out", str(tmp_path), "--no-progress", "--cache", "off",
                            "--train-plays", "0", "--humaneval-train-plays", "0"])
    assert results["training"] == {} and results["policies"] == {}
    assert [c["condition"] for c in results["evaluations"]["gsm8k"]["cells"]] == ["none", "prior"]
    assert "no trained Advisor" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize("flag", [["--n-gsm8k", "0"], ["--train-plays", "-1"], ["--ucb-c", "nan"]])
def test_bad_flags_exit_2(flag):
    with pytest.raises(SystemExit) as exc:
        _load().parse_args(flag)
    assert exc.value.code == 2
