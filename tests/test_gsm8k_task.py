"""GSM8KTask: loading the shared offline data, the data-dir rules, the hub fallback, scoring."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bpa_gym.errors import ConfigError, DataNotFoundError
from bpa_gym.prompts import PromptTemplate
from bpa_gym.tasks import Task, make_task
from bpa_gym.tasks.data import read_jsonl, resolve_data_dir
from bpa_gym.tasks.gsm8k import GSM8KTask, extract_answer, normalize_number
from bpa_gym.types import Item, Score

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "gsm8k" / "test.jsonl").is_file(),
    reason=f"offline GSM8K data not found at {SHARED_DATA}/gsm8k (the project's shared data folder)",
)


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without $BPA_DATA_DIR so the caller's environment cannot leak in."""
    monkeypatch.delenv("BPA_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def task() -> GSM8KTask:
    if not (SHARED_DATA / "gsm8k").is_dir():
        pytest.skip(f"offline GSM8K data not found at {SHARED_DATA}/gsm8k")
    return GSM8KTask(data_dir=SHARED_DATA)


# --------------------------------------------------------------------------- loading


@needs_data
@pytest.mark.parametrize("split,count", [("test", 1319), ("train", 7473), ("test_socratic", 1319)])
def test_split_sizes_and_ids(task: GSM8KTask, split: str, count: int) -> None:
    items = task.load(split)
    assert len(items) == count
    assert [it.id for it in items[:3]] == [f"gsm8k/{split}/{i}" for i in range(3)]
    assert len({it.id for it in items}) == count


@needs_data
@pytest.mark.parametrize("split", ["test", "train", "test_socratic"])
def test_gold_is_clean_and_never_leaks(task: GSM8KTask, split: str) -> None:
    for item in task.load(split):
        assert item.gold == normalize_number(item.gold), item.id  # already normalised
        assert "," not in item.gold
        assert "####" not in item.question, item.id  # the solution is not in the question
        assert item.meta["solution"] not in item.question
        assert extract_answer(item.meta["solution"]) == item.gold, item.id


@needs_data
def test_first_test_item(task: GSM8KTask) -> None:
    item = task.load("test")[0]
    assert item.question.startswith("Janet")
    assert item.gold == "18"
    assert "#### 18" in item.meta["solution"]


@needs_data
def test_gold_with_thousands_separator_is_normalised(task: GSM8KTask) -> None:
    golds = {it.gold for it in task.load("test")}
    assert "1450000" in golds  # '#### 1,450,000' in the file


@needs_data
def test_splits_are_cached_per_instance(task: GSM8KTask) -> None:
    a = task.load("test")
    b = task.load("test")
    assert a == b and a is not b  # a fresh list over the same cached items
    assert a[0] is b[0]


@needs_data
def test_socratic_solution_differs_from_main(task: GSM8KTask) -> None:
    main, socratic = task.load("test")[0], task.load("test_socratic")[0]
    assert main.question == socratic.question and main.gold == socratic.gold
    assert main.meta["solution"] != socratic.meta["solution"]


def test_unknown_split_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown GSM8K split 'validation'.*test_socratic"):
        GSM8KTask(data_dir=tmp_path).load("validation")


# --------------------------------------------------------------------------- data dir


@needs_data
def test_env_var_names_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPA_DATA_DIR", str(SHARED_DATA))
    task = GSM8KTask()
    assert task.data_dir == SHARED_DATA
    assert len(task.load("test")) == 1319


def test_argument_wins_over_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BPA_DATA_DIR", "/no/such/env/dir")
    assert resolve_data_dir(tmp_path) == tmp_path


def test_no_dir_anywhere_means_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("BPA_DATA_DIR", "  ")
    assert resolve_data_dir(None) is None


def test_missing_dir_from_argument(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataNotFoundError) as err:
        GSM8KTask(data_dir=missing)
    msg = str(err.value)
    assert str(missing) in msg and "data_dir argument" in msg and "gsm8k/" in msg and "shared" in msg


def test_missing_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("BPA_DATA_DIR", str(missing))
    with pytest.raises(DataNotFoundError, match=r"from \$BPA_DATA_DIR"):
        GSM8KTask()


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DataNotFoundError, match="not a folder"):
        resolve_data_dir(f)


def test_missing_split_file_lists_the_expected_layout(tmp_path: Path) -> None:
    task = GSM8KTask(data_dir=tmp_path)
    with pytest.raises(DataNotFoundError) as err:
        task.load("test")
    msg = str(err.value)
    for name in ("gsm8k/train.jsonl", "gsm8k/test.jsonl", "gsm8k/test_socratic.jsonl", str(tmp_path)):
        assert name in msg


def test_local_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text(
        '{"question": "1+1?", "answer": "1+1=<<1+1=2>>2\\n#### 2"}\n'
        '{"question": "Big?", "answer": "#### 1,200"}\n'
    )
    items = GSM8KTask(data_dir=tmp_path).load("train")
    assert items == [
        Item("gsm8k/train/0", "1+1?", "2", {"solution": "1+1=<<1+1=2>>2\n#### 2"}),
        Item("gsm8k/train/1", "Big?", "1200", {"solution": "#### 1,200"}),
    ]


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    path = tmp_path / "gsm8k" / "test.jsonl"
    path.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q", "answer": \n')
    with pytest.raises(DataNotFoundError, match=rf"{path}:2: malformed JSON"):
        GSM8KTask(data_dir=tmp_path).load("test")


def test_record_without_answer_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(DataNotFoundError, match=r"test.jsonl:1: record lacks required keys \['answer'\]"):
        GSM8KTask(data_dir=tmp_path).load("test")


def test_solution_without_final_line(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "just text"}\n')
    with pytest.raises(DataNotFoundError, match=r"test.jsonl:1: GSM8K record is malformed"):
        GSM8KTask(data_dir=tmp_path).load("test")


def test_read_jsonl_gz(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataNotFoundError, match=r"x.jsonl.gz:2: expected a JSON object"):
        read_jsonl(path)


@pytest.mark.skipif(
    not (SHARED_DATA / "humaneval" / "HumanEval.jsonl.gz").is_file(), reason="HumanEval data not in shared data"
)
def test_read_jsonl_reads_the_shared_humaneval_file() -> None:
    rows = read_jsonl(SHARED_DATA / "humaneval" / "HumanEval.jsonl.gz", required_keys=("task_id", "prompt"))
    assert len(rows) == 164


# --------------------------------------------------------------------------- hub fallback


def test_hub_offline_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    """With HF_HUB_OFFLINE=1 and an empty cache the hub path raises DataNotFoundError quickly.

    Runs in a fresh interpreter: huggingface_hub reads HF_HUB_OFFLINE at import
    time, so setting it inside this process after ``datasets`` was imported
    would not take effect.
    """
    pytest.importorskip("datasets")
    script = textwrap.dedent(
        """
        from bpa_gym.errors import DataNotFoundError
        from bpa_gym.tasks.gsm8k import GSM8KTask
        try:
            GSM8KTask().load("test_socratic")
        except DataNotFoundError as e:
            print("DataNotFoundError:", e)
        else:
            print("LOADED")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "BPA_DATA_DIR"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_DATASETS_CACHE", None)
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "DataNotFoundError:" in out, out
    assert "openai/gsm8k" in out and "data_dir=" in out and "BPA_DATA_DIR" in out and "bpa-gym[hub]" in out


def test_hub_without_datasets_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(DataNotFoundError, match=r"'datasets' package is not installed.*bpa-gym\[hub\]"):
        GSM8KTask().load("test")


def test_hub_error_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    def boom(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=boom))
    with pytest.raises(DataNotFoundError, match=r"openai/gsm8k \(socratic, test\).*no network"):
        GSM8KTask().load("test_socratic")


def test_hub_rows_become_items(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    calls = []

    def fake_load(name, config, split):
        calls.append((name, config, split))
        return [{"question": "2+2?", "answer": "#### 4"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load))
    task = GSM8KTask()
    assert task.load("train") == [Item("gsm8k/train/0", "2+2?", "4", {"solution": "#### 4"})]
    task.load("train")
    assert calls == [("openai/gsm8k", "main", "train")]  # cached


# --------------------------------------------------------------------------- scoring and protocol


def test_score_statuses() -> None:
    task = GSM8KTask()  # no data dir: the hub is only touched by load()
    item = Item("gsm8k/test/0", "question", "18")
    assert task.score("9 * 2 = 18. The answer is 18.", item) == Score(True, "18", "ok")
    assert task.score("The answer is $18.00", item) == Score(True, "18", "ok")
    assert task.score("The answer is 17.", item) == Score(False, "17", "ok")
    assert task.score("I cannot solve this.", item) == Score(False, None, "unparseable", "no number in the response",
                                                             explicit=False)
    assert task.score("", item).status == "unparseable"
    assert task.score("So 9 * 2 = 18", item) == Score(True, "18", "ok", explicit=False)  # last-number fallback
    assert task.score("The answer is 1,450,000", Item("x", "q", "1,450,000")).correct


@needs_data
def test_score_reference_solutions_are_correct(task: GSM8KTask) -> None:
    for item in task.load("test"):
        assert task.score(item.meta["solution"], item).correct, item.id


def test_task_protocol_and_registry(tmp_path: Path) -> None:
    task = make_task("gsm8k", data_dir=tmp_path)
    assert isinstance(task, GSM8KTask) and isinstance(task, Task)
    assert task.name == "gsm8k" and task.splits == ("train", "test", "test_socratic")


def test_default_template() -> None:
    template = GSM8KTask().default_template()
    assert isinstance(template, PromptTemplate)
    item = Item("gsm8k/test/0", "What is 2+2?", "4")
    with_signal = template.render(item, "Add the numbers.")
    without = template.render(item, "")
    assert with_signal[0]["role"] == "system" and "math" in with_signal[0]["content"].lower()
    user = with_signal[-1]["content"]
    assert "What is 2+2?" in user and "Add the numbers." in user and "The answer is N." in user
    assert "Add the numbers." not in without[-1]["content"]
    assert item.gold not in user.replace("2+2", "")
    assert len(user) < 400  # small Receivers need short prompts
