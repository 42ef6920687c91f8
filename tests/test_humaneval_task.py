"""HumanEval task: loading, reading code from any answer form, sandboxed pass@1 scoring."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpa_gym.errors import ConfigError, DataNotFoundError, SandboxError
from bpa_gym.sandbox import ExecutionResult, bwrap_unavailable_reason
from bpa_gym.tasks import make_task
from bpa_gym.tasks.humaneval import MAX_RESPONSE_CHARS, HumanEvalTask, execution_verdict, read_program
from bpa_gym.types import Item

NO_BWRAP = bwrap_unavailable_reason()

PROMPT = ('from typing import List\n\n\ndef add(xs: List[int]) -> int:\n'
          '    """Sum of xs.\n    >>> add([1, 2])\n    3\n    """\n')
ITEM = Item("humaneval/test/0", PROMPT, "    return sum(xs)\n",
            {"task_id": "HumanEval/0", "prompt": PROMPT, "entry_point": "add",
             "test": "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"})


class StubSandbox:
    """Records programs and answers with a fixed verdict (no processes)."""

    def __init__(self, status: str = "passed", detail: str = "") -> None:
        self.status, self.detail, self.programs = status, detail, []

    def run_many(self, programs):
        self.programs += list(programs)
        return [ExecutionResult(self.status, self.detail, "", "", False, 0, 0.0) for _ in programs]


@pytest.fixture(scope="module")
def task(shared_data_dir) -> HumanEvalTask:
    if NO_BWRAP is not None:
        pytest.skip(f"bubblewrap unavailable: {NO_BWRAP}")
    return HumanEvalTask(data_dir=shared_data_dir)


# ------------------------------------------------------------------ loading

def test_loads_164_items_from_the_shared_data(shared_data_dir) -> None:
    t = make_task("humaneval", data_dir=shared_data_dir)
    items = t.load("test")
    assert len(items) == 164 and t.name == "humaneval" and t.splits == ("test",)
    assert items[0].id == "humaneval/test/0" and items[0].meta["task_id"] == "HumanEval/0"
    assert items[0].question == items[0].meta["prompt"] and "def has_close_elements" in items[0].question
    assert items[0].gold not in items[0].question  # the canonical body is never shown
    assert {"entry_point", "test", "prompt", "task_id"} <= set(items[163].meta)


def test_data_dir_from_the_environment(shared_data_dir, monkeypatch) -> None:
    monkeypatch.setenv("BPA_DATA_DIR", str(shared_data_dir))
    assert len(HumanEvalTask().load("test")) == 164


def test_missing_and_malformed_data(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="humaneval/HumanEval.jsonl.gz"):
        HumanEvalTask(data_dir=tmp_path).load("test")
    (tmp_path / "humaneval").mkdir()
    with gzip.open(tmp_path / "humaneval" / "HumanEval.jsonl.gz", "wt") as f:
        f.write(json.dumps({"task_id": "x", "prompt": "p", "canonical_solution": "", "test": "t",
                            "entry_point": "not a name"}) + "\n")
    with pytest.raises(DataNotFoundError, match="entry_point 'not a name'"):
        HumanEvalTask(data_dir=tmp_path).load("test")
    with pytest.raises(ConfigError, match="unknown HumanEval split 'train'"):
        HumanEvalTask(data_dir=tmp_path).load("train")
    with pytest.raises(ConfigError, match="sandbox must be"):
        HumanEvalTask(data_dir=tmp_path, sandbox="bwrap")


# ------------------------------------------------------------ reading code

BODY = "    return sum(xs)\n"
FULL = "def add(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"


@pytest.mark.parametrize("response", [
    f"```python\n{FULL}```",                                         # fenced full function
    f"Here you go:\n\n```python\n{FULL}```\n\nIt loops over xs.",    # prose around the block
    f"```\n{BODY}```",                                               # untagged fenced body
    f"```python\nreturn sum(xs)\n```",                               # body without indentation
    f"```python\n{FULL}",                                            # unclosed fence (cut-off answer)
    f"```text\nnot code\n```\n```python\n{FULL}```",                 # a non-Python block first
    PROMPT + BODY,                                                   # prompt + completion
    BODY,                                                            # completion only
    BODY + "\n\nThis returns the sum of the list.",                   # completion + trailing prose
    f"Sure! The function is:\n\n{FULL}\nThis adds every element.",   # raw full function in prose
    f"from typing import List\n\n{FULL}",                            # full function with imports
    (f"```python\n{FULL}```").replace("\n", "\r\n"),                 # CRLF line ends
    "```python\n    def add(xs):\n        return sum(xs)\n```",     # indented block
])
def test_every_answer_form_is_read_and_runs(response: str) -> None:
    reading = read_program(response, PROMPT, "add")
    assert reading.code is not None, reading
    namespace: dict = {}
    exec(compile(reading.code + "\n" + ITEM.meta["test"] + "\ncheck(add)\n", "<t>", "exec"), namespace)  # trusted


@pytest.mark.parametrize("response,reason", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("I am sorry, I cannot write that function.", "no Python code that parses"),
    ("```python\ndef add(xs:\n```", "no Python code that parses"),
])
def test_unreadable_answers(response: str, reason: str) -> None:
    reading = read_program(response, PROMPT, "add")
    assert reading.code is None and reason in reading.reason


def test_scores_map_verdicts_onto_status_and_reason() -> None:
    for status in ("passed", "failed", "timed_out", "crashed"):
        sandbox = StubSandbox(status, "" if status == "passed" else "the detail")
        score = HumanEvalTask(sandbox=sandbox).score(BODY, ITEM)
        assert score.status == "ok" and score.correct == (status == "passed") and score.explicit
        assert execution_verdict(score.reason) == status
        assert score.extracted == PROMPT + BODY
        assert sandbox.programs[0].endswith(ITEM.meta["test"] + "\n\ncheck(add)\n")
    sandbox = StubSandbox()
    score = HumanEvalTask(sandbox=sandbox).score("no code here, sorry", ITEM)
    assert (score.status, score.correct, execution_verdict(score.reason)) == ("unparseable", False, None)
    assert sandbox.programs == []  # nothing ran
    score = HumanEvalTask(sandbox=StubSandbox()).score("no code, " * (MAX_RESPONSE_CHARS // 5), ITEM)
    assert score.status == "truncated" and "MAX_RESPONSE_CHARS" in score.reason


def test_not_a_humaneval_item_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a HumanEval item"):
        HumanEvalTask(sandbox=StubSandbox()).score(BODY, Item("gsm8k/test/0", "q", "18"))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400) | st.builds(lambda a, b: a + "```python\n" + b, st.text(max_size=100),
                                          st.text(alphabet="def add():\n    return xs[]0123 ,`", max_size=200)))
def test_scoring_never_raises_on_any_response(response: str) -> None:
    score = HumanEvalTask(sandbox=StubSandbox("failed", "x")).score(response, ITEM)
    assert score.status in ("ok", "unparseable", "truncated")
    assert (score.status == "ok") == (score.extracted is not None)


# -------------------------------------------------- the real sandbox, all items

def test_canonical_solutions_pass_164_of_164(task: HumanEvalTask) -> None:
    items = task.load("test")
    scores = task.score_many([it.meta["prompt"] + it.gold for it in items], items)
    failures = [(it.id, s.reason) for it, s in zip(items, scores) if not s.correct]
    assert failures == [] and len(scores) == 164


def test_prompts_alone_fail_164_of_164(task: HumanEvalTask) -> None:
    items = task.load("test")
    scores = task.score_many([it.meta["prompt"] for it in items], items)
    assert sum(s.correct for s in scores) == 0
    assert all(s.status == "ok" and execution_verdict(s.reason) in ("failed", "crashed") for s in scores)


def test_canonical_solutions_as_fenced_full_functions(task: HumanEvalTask) -> None:
    items = task.load("test")[:20]
    answers = [f"Here is my solution:\n\n```python\n{it.meta['prompt']}{it.gold}```\nDone." for it in items]
    assert all(s.correct for s in task.score_many(answers, items))


def test_real_verdicts(task: HumanEvalTask) -> None:
    item = task.load("test")[0]
    hang = "    while True:\n        pass\n"
    exit_early = "    import sys\n    sys.exit(0)\n"
    scores = task.score_many(["    return True\n", exit_early, hang], [item] * 3)
    assert [execution_verdict(s.reason) for s in scores] == ["failed", "crashed", "timed_out"]
    assert not any(s.correct for s in scores)


def test_a_broken_sandbox_raises(shared_data_dir) -> None:
    class Broken:
        def run_many(self, programs):
            raise SandboxError("bwrap: setting up uid map: Permission denied")

    t = HumanEvalTask(data_dir=shared_data_dir, sandbox=Broken())
    with pytest.raises(SandboxError, match="uid map"):
        t.score(BODY, t.load("test")[0])
