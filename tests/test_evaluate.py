"""`bpa-gym evaluate` / bpa_gym.evaluation: the Q1 table's numbers, paired tests, cache, resumption."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from scipy.stats import binomtest

from bpa_gym.cli import main
from bpa_gym.errors import ConfigError, ReceiverError
from bpa_gym.evaluation import conditions_for, evaluate, mcnemar_exact
from bpa_gym.receivers.scripted import ScriptedReceiver
from bpa_gym.signals import MATH_SIGNALS

ENV = "BayesPersuasion-GSM8K-v0"
N = 12


class PinnedScripted(ScriptedReceiver):
    """A scripted Receiver with an identity, so the response cache applies (as in test_response_cache.py)."""

    def __init__(self, answer_fn, *, model: str, **kw):
        super().__init__(answer_fn, name=model, **kw)
        self.identity = {"class": "PinnedScripted", "model": model, "generation": {"temperature": 0.0}}


@pytest.fixture(scope="module")
def items(shared_data_dir):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    return GSM8KTask(data_dir=shared_data_dir).load("test")[:N]


def rule_a(index: int, signal: str) -> bool:
    """Receiver A is right on every third item, and whenever the signal says 'step'."""
    return index % 3 == 0 or "step" in signal.lower()


def rule_b(index: int, signal: str) -> bool:
    """Receiver B is right on even items without a signal, and whenever the signal mentions units."""
    return (index % 2 == 0 and not signal) or "unit" in signal.lower()


def scripted(items, rule, model, *, fail_after: int | None = None, log: list | None = None):
    """A Receiver answering item i right iff ``rule(i, signal)``; it raises on its ``fail_after``-th call."""
    by_question = {it.question: (i, it.gold) for i, it in enumerate(items)}
    calls = {"n": 0}

    def answer(messages):
        content = messages[-1]["content"]
        question = max((q for q in by_question if q in content), key=len)
        i, gold = by_question[question]
        found = re.search(r"\n\nHint: (.*?)\n\nSolve it", content, re.S)  # the GSM8K template's signal block
        signal = found.group(1) if found else ""
        if log is not None:
            log.append(content)
        return f"The answer is {gold}." if rule(i, signal) else "The answer is -1."

    receiver = PinnedScripted(answer, model=model)
    if fail_after is not None:
        inner = receiver.generate

        def generate(prompts):
            calls["n"] += 1
            if calls["n"] == fail_after:
                raise KeyboardInterrupt("killed")
            return inner(prompts)

        receiver.generate = generate
    return receiver


def prior_signals(items, seed):
    """The prior's draws, computed here from their definition: uniform index from rng([seed, sha256(id)])."""
    out = []
    for it in items:
        h = int.from_bytes(hashlib.sha256(it.id.encode()).digest()[:8], "little")
        out.append(MATH_SIGNALS[int(np.random.default_rng([seed, h]).integers(len(MATH_SIGNALS)))])
    return out


def expected_cell(rule, signals, baseline_signals):
    per = [rule(i, s) for i, s in enumerate(signals)]
    base = [rule(i, s) for i, s in enumerate(baseline_signals)]
    k = sum(per)
    ci = binomtest(k, len(per)).proportion_ci(confidence_level=0.95, method="wilson")
    b = sum(p and not q for p, q in zip(per, base))
    c = sum(q and not p for p, q in zip(per, base))
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return per, k / len(per), (ci.low, ci.high), (b, c), p


def run(items, shared_data_dir, receivers, **kw):
    kw.setdefault("advisors", ["index:1"])
    return evaluate(ENV, receivers, n=N, data_dir=str(shared_data_dir), progress=False, **kw)


def test_exact_numbers_for_two_receivers(items, shared_data_dir, tmp_path):
    a, b = scripted(items, rule_a, "A"), scripted(items, rule_b, "B")
    ev = run(items, shared_data_dir, [a, b], seed=3, cache=tmp_path / "c.sqlite")
    assert [(c.receiver, c.condition) for c in ev.cells] == [
        (r, cond) for r in ("A", "B") for cond in ("none", "prior", "index:1")]
    assert ev.item_ids == [it.id for it in items] and ev.metric == "accuracy"
    assert "step" in MATH_SIGNALS[1].lower()  # index:1 is the "step by step" signal: A gains, B loses
    signals = {"none": [""] * N, "prior": prior_signals(items, 3), "index:1": [MATH_SIGNALS[1]] * N}
    for name, rule in (("A", rule_a), ("B", rule_b)):
        for cond, sigs in signals.items():
            per, acc, ci, disc, p = expected_cell(rule, sigs, signals["none"])
            cell = ev.cell(name, cond)
            assert cell.per_item == per
            assert cell.accuracy == acc and cell.correct == sum(per) and cell.n == N
            assert cell.ci95 == pytest.approx(ci, abs=1e-12)
            assert cell.parse_rate == 1.0
            if cond == "none":
                assert (cell.lift, cell.discordant, cell.p_value) == (None, None, None)
            else:
                assert cell.lift == pytest.approx(acc - sum(rule(i, "") for i in range(N)) / N)
                assert cell.discordant == disc
                assert cell.p_value == pytest.approx(p, rel=1e-12)
    # the paired test on A with the step-by-step signal: 8 items gained, none lost
    assert ev.cell("A", "index:1").discordant == (8, 0)
    assert ev.cell("A", "index:1").p_value == pytest.approx(2 * 0.5 ** 8)
    table = ev.to_markdown()
    assert "| A | index:1 | 1.000 (12/12) |" in table and "| +0.667 | 8/0 | 0.00781 |" in table


def test_rerun_calls_no_receiver(items, shared_data_dir, tmp_path):
    db = tmp_path / "c.sqlite"
    first = run(items, shared_data_dir, [scripted(items, rule_a, "A"), scripted(items, rule_b, "B")], cache=db)
    a, b = scripted(items, rule_a, "A"), scripted(items, rule_b, "B")
    again = run(items, shared_data_dir, [a, b], cache=db)  # no out_dir: the cache alone answers
    assert a.calls == [] and b.calls == []
    assert again.to_dict() == first.to_dict()


def test_killed_run_resumes_to_the_same_table(items, shared_data_dir, tmp_path):
    reference = run(items, shared_data_dir, [scripted(items, rule_a, "A"), scripted(items, rule_b, "B")],
                    cache=tmp_path / "ref.sqlite", batch_size=4)
    db, out = tmp_path / "c.sqlite", tmp_path / "out"
    asked_before: list[str] = []
    # 3 batches of 4 items per condition: the 5th call is the 2nd batch of the 2nd condition (prior)
    killer = scripted(items, rule_a, "A", fail_after=5, log=asked_before)
    with pytest.raises(KeyboardInterrupt):
        run(items, shared_data_dir, [killer, scripted(items, rule_b, "B")], cache=db, batch_size=4, out_dir=out)
    assert len(list((out / "cells").glob("*.json"))) == 1  # (A, none) was finished and written
    asked_after: list[str] = []
    a, b = scripted(items, rule_a, "A", log=asked_after), scripted(items, rule_b, "B")
    resumed = run(items, shared_data_dir, [a, b], cache=db, batch_size=4, out_dir=out)
    assert not set(asked_before) & set(asked_after)  # nothing answered before is asked again
    assert len(asked_after) == len(set(asked_after))
    assert resumed.to_dict() == reference.to_dict()
    assert resumed.to_markdown() == reference.to_markdown()
    # the run is complete now: a third run asks nothing, even with the cache off (the cells are on disk)
    a2, b2 = scripted(items, rule_a, "A"), scripted(items, rule_b, "B")
    assert run(items, shared_data_dir, [a2, b2], cache=False, batch_size=4, out_dir=out).cells == reference.cells
    assert a2.calls == [] and b2.calls == []


def test_prior_draws_are_seeded(items, shared_data_dir, tmp_path):
    out1, out2, out3 = tmp_path / "s1", tmp_path / "s1b", tmp_path / "s2"
    for out, seed in ((out1, 1), (out2, 1), (out3, 2)):
        run(items, shared_data_dir, [scripted(items, rule_a, "A")], seed=seed, cache=False, out_dir=out,
            advisors=[])
    read = lambda out: json.loads(next((out / "signals").glob("prior-*.json")).read_text())["signals"]  # noqa: E731
    assert read(out1) == read(out2) == prior_signals(items, 1)
    assert read(out3) == prior_signals(items, 2) != read(out1)


def test_a_receiver_failure_raises_never_scores_zero(items, shared_data_dir):
    bad = PinnedScripted(lambda m: "x", model="F", fail_on=lambda m: True)
    with pytest.raises(ReceiverError):
        run(items, shared_data_dir, [bad], cache=False)


def test_identity_env_and_discrete_policy_file(tmp_path):
    import gymnasium as gym

    import bpa_gym  # noqa: F401

    env = gym.make("BayesPersuasion-Identity-v0").unwrapped
    items = env.items[:16]
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"format": "bpa-gym-discrete-advisor/v1",
                                  "signal_library": list(env.signal_library.signals),
                                  "signal_index_by_item": {it.id: env.task.answer_key[it.meta["topic"]]
                                                           for it in items}}))
    ev = evaluate("BayesPersuasion-Identity-v0", advisors=[str(policy), "index:0"], n=16, progress=False)
    assert ev.cell("default", "none").accuracy == 0.0  # the rule Receiver knows nothing unadvised
    optimal = ev.cell("default", str(policy))
    assert optimal.accuracy == 1.0 and optimal.discordant == (16, 0)
    assert optimal.p_value == pytest.approx(2 * 0.5 ** 16)
    expected = sum(env.task.answer_key[it.meta["topic"]] == 0 for it in items)
    assert ev.cell("default", "index:0").correct == expected


def test_conditions_and_mcnemar_helpers():
    assert conditions_for(["none", "prior", "x.json", "x.json"]) == ["none", "prior", "x.json"]
    b, c, p = mcnemar_exact([True, False, False, True, False], [False, True, True, True, True])
    assert (b, c) == (3, 1) and p == pytest.approx(binomtest(3, 4, 0.5).pvalue)
    with pytest.raises(ConfigError, match="paired"):
        mcnemar_exact([True], [True, False])


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", "--env", "BayesPersuasion-Identity-v0", "--n", "16", "--advisor", "index:2",
                 "--out", str(out), "--cache", "off"]) == 0
    printed = capsys.readouterr().out
    table = (out / "table.md").read_text()
    assert table in printed and table.count("\n") == 2 + 3
    results = json.loads((out / "results.json").read_text())
    assert [c["condition"] for c in results["cells"]] == ["none", "prior", "index:2"]
    assert results["n"] == 16 and results["env"] == "BayesPersuasion-Identity-v0"


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "argument --n: must be an integer >= 1, got 0"),
    (["--advisor", "no/such/ckpt.pt"], "unknown advisor 'no/such/ckpt.pt'"),
    (["--advisor", "index:x"], "index:K needs an integer K >= 0"),
    (["--seed", "-1"], "argument --seed: must be an integer >= 0"),
    (["--advisor-temperature", "nan"], "temperature"),
    (["--env", "Nope-v0"], "unknown env 'Nope-v0'"),
])
def test_cli_bad_arguments_exit_2(capsys, argv, message):
    base = ["evaluate", "--env", "BayesPersuasion-Identity-v0", "--n", "4"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert "bpa-gym: error:" in err and message in err


def test_cli_refuses_output_paths_of_the_wrong_kind(tmp_path, capsys):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    assert main(["evaluate", "--env", "BayesPersuasion-Identity-v0", "--out", str(a_file)]) == 2
    assert "is a file; give a folder path" in capsys.readouterr().err
    assert main(["evaluate", "--env", "BayesPersuasion-Identity-v0", "--cache", str(tmp_path)]) == 2
    assert "is a directory; give a database file path" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_smollm2_gsm8k_table(shared_data_dir, smollm2_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["evaluate", "--env", ENV, "--receiver", "smollm2", "--n", "4", "--max-new-tokens", "48",
            "--data-dir", str(shared_data_dir), "--device", "cpu", "--cache", str(tmp_path / "c.sqlite"),
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    print(printed)
    results = json.loads((out / "results.json").read_text())
    assert [(c["receiver"], c["condition"]) for c in results["cells"]] == [("smollm2", "none"), ("smollm2", "prior")]
    assert all(c["n"] == 4 and 0 <= c["accuracy"] <= 1 for c in results["cells"])
    assert (out / "table.md").read_text() in printed
    # a rerun is answered by the cells on disk and the cache: the same table
    assert main(argv) == 0
    assert (out / "table.md").read_text() in capsys.readouterr().out


def test_finished_cells_are_reused_only_for_the_same_setup(items, shared_data_dir, tmp_path):
    out = tmp_path / "out"
    run(items, shared_data_dir, [scripted(items, rule_a, "A")], seed=1, cache=False, out_dir=out)
    a = scripted(items, rule_a, "A")
    ev = run(items, shared_data_dir, [a], seed=2, cache=False, out_dir=out)  # new prior draws: only that cell reruns
    assert a.calls == [N]
    assert ev.cell("A", "prior").per_item == [rule_a(i, s) for i, s in enumerate(prior_signals(items, 2))]
    other = PinnedScripted(lambda m: "The answer is -1.", model="A")  # same label, another identity
    other.identity = {**other.identity, "model": "A-v2"}
    assert run(items, shared_data_dir, [other], seed=2, cache=False, out_dir=out).cell("A", "none").accuracy == 0
    assert other.calls == [N] * 3
