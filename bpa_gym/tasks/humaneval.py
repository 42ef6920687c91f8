"""HumanEval: the Receiver writes a Python function; reward = every test passes (pass@1).

Items come from ``<data_dir>/humaneval/HumanEval.jsonl.gz`` (OpenAI's file, as
in the project's shared data) when a data directory is set (argument, else
``$BPA_DATA_DIR``), else from the Hugging Face hub (``openai/openai_humaneval``;
needs ``bpa-gym[hub]`` and a network).  The only split is ``test`` (164
problems).  An item's ``question`` is the problem's prompt (imports, signature
and docstring), its ``gold`` the canonical body, and ``meta`` holds
``task_id``, ``prompt``, ``entry_point`` and ``test``.

**Reading the code** (:func:`read_program`).  A Receiver may answer with a
markdown code block or raw text, with the whole function (re-stating the
signature, possibly with imports and helpers) or only its body (a completion
of the prompt), with or without the prompt echoed, and with prose around it.
The first reading that parses as Python wins, in this order: each
``python`` / untagged fenced block (an unclosed last fence counts: a cut-off
answer), then the raw text.  A block that defines the entry point is placed
after the prompt (so the prompt's imports and helper functions are there, and
the answer's definition replaces the prompt's stub); any other block continues
the prompt as the function's body (indented if it was not).  Leading prose
before the first ``import`` / ``def`` line is dropped, and trailing prose is
cut at a top-level line boundary until the code parses.

**Scoring** (:meth:`HumanEvalTask.score`): the program (code + the item's
tests + ``check(entry_point)``) runs in a :class:`~bpa_gym.sandbox.Sandbox`.
The :class:`~bpa_gym.types.Score` says what happened:

==================  ==============  =========================================
``status``          ``reason``      meaning
==================  ==============  =========================================
``ok`` (reward 1)   ``passed``      every test passed
``ok``              ``failed: ..``  a test assertion failed (the traceback)
``ok``              ``timed_out..`` the wall-clock or CPU-time limit was hit
``ok``              ``crashed: ..`` any other exception, ``sys.exit``, a signal,
                                    a resource limit (memory, file size)
``unparseable``     why             no Python code could be read
``truncated``       why             the response was cut (length limit, or
                                    longer than :data:`MAX_RESPONSE_CHARS`)
                                    before any code that parses
==================  ==============  =========================================

So in a step's ``info``, ``parse_status`` is ``ok`` whenever the code ran, and
``parse_reason`` starts with the execution verdict (``passed``, ``failed``,
``timed_out`` or ``crashed``), followed by ``": "`` and the detail;
:func:`execution_verdict` reads it.  ``extracted_answer`` holds the program
that ran (without the tests).  A sandbox that cannot run the code raises
:class:`~bpa_gym.errors.SandboxError`: it is never a reward of 0.
"""

from __future__ import annotations

import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bpa_gym.errors import ConfigError, DataNotFoundError
from bpa_gym.prompts import PromptTemplate
from bpa_gym.sandbox import VERDICTS, Sandbox
from bpa_gym.tasks.data import DATA_DIR_ENV, iter_jsonl, resolve_data_dir
from bpa_gym.types import Item, Score

#: Responses longer than this many characters are read up to here only (``truncated`` if no code parses).
MAX_RESPONSE_CHARS = 50_000
#: Most top-level line boundaries tried when cutting trailing prose off an answer.
MAX_TRIM_ATTEMPTS = 100

_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
_FENCE_RE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "pycon", "ipython"}
_CODE_START_RE = re.compile(r"^(?:from\s+\S+\s+import\b|import\s+\w|def\s+\w|async\s+def\s+\w|class\s+\w|@\w)",
                            re.MULTILINE)


@dataclass(frozen=True)
class ProgramReading:
    """What :func:`read_program` read from a response.

    Attributes:
        code: The program (prompt context + the answer's code), or ``None``.
        how: Which reading produced it (``"fenced block 1"``, ``"raw text"``),
            or ``None``.
        reason: Why there is no code (``None`` when there is).
        cut: Whether the response was longer than :data:`MAX_RESPONSE_CHARS`.
    """

    code: str | None
    how: str | None
    reason: str | None
    cut: bool = False


def _parses(source: str) -> str | None:
    """``None`` when ``source`` compiles as Python, else the syntax error (never raises).

    A full compile, not only a parse, so ``return`` outside a function is caught; nothing runs (CPython folds
    only constants of bounded size).
    """
    try:
        compile(source, "<answer>", "exec", dont_inherit=True)
        return None
    except SyntaxError as e:
        return f"{type(e).__name__}: {e.msg} (line {e.lineno})"
    except (ValueError, RecursionError, MemoryError, OverflowError) as e:
        return f"{type(e).__name__}: {str(e)[:100]}"


def _trimmed(head: str, body: str) -> tuple[str | None, str | None]:
    """``head + body``, or it with trailing lines of ``body`` cut at top-level boundaries, that parses."""
    error = _parses(head + body)
    if error is None:
        return head + body, None
    lines = body.splitlines(keepends=True)
    # Cut before a line at column 0 (a top-level boundary): trailing prose starts at one.
    cuts = [i for i in range(len(lines) - 1, 0, -1) if lines[i][:1] not in ("", " ", "\t", "\n", "\r")]
    for i in cuts[:MAX_TRIM_ATTEMPTS]:
        candidate = "".join(lines[:i])
        if candidate.strip() and _parses(head + candidate) is None:
            return head + candidate, None
    return None, error


def _defines(source: str, entry_point: str) -> bool:
    pattern = rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\("
    return re.search(pattern, source, re.MULTILINE) is not None


def _readings(snippet: str, prompt: str, entry_point: str) -> tuple[str | None, str | None]:
    """The program one snippet (a fenced block or the raw text) stands for."""
    if not snippet.strip():
        return None, "empty"
    if _defines(snippet, entry_point):  # the whole function
        code = textwrap.dedent(snippet)
        echo = prompt.strip()[:200]
        if echo and code.lstrip().startswith(echo):  # the prompt, echoed, and its completion
            return _trimmed("", code.lstrip())
        start = _CODE_START_RE.search(code)
        code = code[start.start():] if start else code
        program, error = _trimmed(prompt.rstrip() + "\n\n\n", code)  # the prompt's imports and helpers first
        return (program, None) if program is not None else _trimmed("", code)
    # A completion of the prompt: the function's body.
    body = snippet
    program, error = _trimmed(prompt, body)
    if program is not None:
        return program, None
    indented = textwrap.indent(textwrap.dedent(body), "    ")
    program, _ = _trimmed(prompt.rstrip("\n") + "\n", indented)
    return (program, None) if program is not None else (None, error)


def read_program(response: str, prompt: str, entry_point: str) -> ProgramReading:
    """The Python program a response stands for (see the module docstring); never raises on a response.

    Args:
        response: The Receiver's text.
        prompt: The item's prompt (imports, signature, docstring).
        entry_point: The function the tests call.

    Example:
        >>> prompt = "def add(a, b):\\n    'Add two numbers.'\\n"
        >>> print(read_program("```python\\ndef add(a, b):\\n    return a + b\\n```\\nDone.", prompt, "add").code)
        def add(a, b):
            'Add two numbers.'
        <BLANKLINE>
        <BLANKLINE>
        def add(a, b):
            return a + b
        <BLANKLINE>
        >>> read_program("    return a + b\\n\\nThis adds them.", prompt, "add").code.endswith("return a + b\\n\\n")
        True
        >>> read_program("I cannot help with that.", prompt, "add").reason
        'no Python code that parses: SyntaxError: invalid syntax (line 3)'
    """
    if not isinstance(response, str):
        return ProgramReading(None, None, f"the response is {type(response).__name__}, not text")
    cut = len(response) > MAX_RESPONSE_CHARS
    text = response[:MAX_RESPONSE_CHARS].replace("\r\n", "\n").replace("\x00", "")
    if not text.strip():
        return ProgramReading(None, None, "the response is empty", cut)
    first_error = None
    blocks = [m for m in _FENCE_RE.finditer(text) if m.group(1).lower() in _PYTHON_TAGS]
    for n, block in enumerate(blocks, start=1):
        program, error = _readings(block.group(2), prompt, entry_point)
        if program is not None:
            return ProgramReading(program, f"fenced block {n}", None, cut)
        first_error = first_error or error
    program, error = _readings(text, prompt, entry_point)
    if program is not None:
        return ProgramReading(program, "raw text", None, cut)
    return ProgramReading(None, None, f"no Python code that parses: {first_error or error}", cut)


def execution_verdict(reason: str | None) -> str | None:
    """The execution verdict a HumanEval ``parse_reason`` starts with, or ``None`` (the code did not run).

    Example:
        >>> execution_verdict("failed: AssertionError"), execution_verdict("passed"), execution_verdict(None)
        ('failed', 'passed', None)
    """
    if not isinstance(reason, str):
        return None
    head = reason.split(":", 1)[0].strip()
    return head if head in VERDICTS else None


def program_with_tests(code: str, item: Item) -> str:
    """The program the sandbox runs: ``code``, the item's tests and ``check(entry_point)``."""
    return f"{code}\n\n{item.meta['test']}\n\ncheck({item.meta['entry_point']})\n"


class HumanEvalTask:
    """HumanEval as a :class:`~bpa_gym.tasks.base.Task`: items, sandboxed scorer, prompt.

    Args:
        data_dir: Folder holding ``humaneval/HumanEval.jsonl.gz`` as in the
            project's shared data; ``None``: ``$BPA_DATA_DIR``, then the hub.
        sandbox: Where code runs; default: a :class:`~bpa_gym.sandbox.Sandbox`
            with default limits, built on first use (it raises
            :class:`~bpa_gym.errors.SandboxError` when bubblewrap is missing;
            pass ``Sandbox(allow_unsandboxed=True)`` to accept rlimit-only mode).

    Example:
        >>> task = HumanEvalTask(data_dir="../shared/data")  # doctest: +SKIP
        >>> item = task.load("test")[0]  # doctest: +SKIP
        >>> task.score(item.meta["prompt"] + item.gold, item)  # doctest: +SKIP
        Score(correct=True, extracted='from typing import List...', status='ok', reason='passed', explicit=True)
    """

    name = "humaneval"
    splits: tuple[str, ...] = ("test",)

    def __init__(self, data_dir: str | os.PathLike | None = None, *, sandbox: Sandbox | None = None) -> None:
        if sandbox is not None and not callable(getattr(sandbox, "run_many", None)):
            raise ConfigError(f"sandbox must be a bpa_gym.sandbox.Sandbox (or have run_many), got "
                              f"{type(sandbox).__name__}")
        self._data_dir: Path | None = resolve_data_dir(data_dir)
        self._cache: dict[str, list[Item]] = {}
        self._sandbox = sandbox

    @property
    def data_dir(self) -> Path | None:
        """The local data directory in use, or ``None`` (Hugging Face hub)."""
        return self._data_dir

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox that runs the code (built on first use)."""
        if self._sandbox is None:
            self._sandbox = Sandbox()
        return self._sandbox

    # ------------------------------------------------------------------ items
    def load(self, split: str) -> list[Item]:
        """All 164 items of ``split`` (``"test"``) in dataset order (cached after the first call).

        Raises:
            ConfigError: ``split`` is not one of :attr:`splits`.
            DataNotFoundError: The local file is missing or malformed, or the
                hub cannot be reached.
        """
        if split not in self.splits:
            raise ConfigError(f"unknown HumanEval split {split!r}; choose one of {list(self.splits)}")
        if split not in self._cache:
            rows = self._read_local() if self._data_dir is not None else self._read_hub()
            self._cache[split] = [self._to_item(split, i, where, row) for i, (where, row) in enumerate(rows)]
        return list(self._cache[split])

    def _read_local(self) -> list[tuple[str, dict[str, Any]]]:
        assert self._data_dir is not None
        path = self._data_dir / "humaneval" / "HumanEval.jsonl.gz"
        if not path.is_file():
            raise DataNotFoundError(
                f"HumanEval not found: {str(path)!r} does not exist. The data directory {str(self._data_dir)!r} "
                "must hold humaneval/HumanEval.jsonl.gz (OpenAI's file: JSON lines with "
                f"{', '.join(_FIELDS)}), as in the project's shared data; fix data_dir= or ${DATA_DIR_ENV}, "
                "or unset both to use the Hugging Face hub")
        rows = [(f"{path}:{lineno}", record) for lineno, record in iter_jsonl(path, _FIELDS)]
        if not rows:
            raise DataNotFoundError(f"HumanEval: {str(path)!r} holds no records (fix or re-download the file)")
        return rows

    def _read_hub(self) -> list[tuple[str, dict[str, Any]]]:  # pragma: no cover - needs a network
        fix = ("pass data_dir= (a folder holding humaneval/HumanEval.jsonl.gz, e.g. the project's shared/data) "
               f"or set ${DATA_DIR_ENV}; or install 'bpa-gym[hub]' and go online")
        try:
            import datasets
        except ImportError as e:
            raise DataNotFoundError(f"no data directory is set and the 'datasets' package is not installed ({e}); "
                                    f"{fix}") from e
        try:
            ds = datasets.load_dataset("openai/openai_humaneval", split="test")
            return [(f"openai/openai_humaneval (test) record {i}", {k: r[k] for k in _FIELDS})
                    for i, r in enumerate(ds)]
        except Exception as e:  # offline, hub error, cache problems: all mean "no data"
            offline = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(v, "0") not in ("", "0")]
            if offline:
                fix += f" ({' and '.join(offline)} set: unset to download)"
            raise DataNotFoundError(f"could not load openai/openai_humaneval from the Hugging Face hub: "
                                    f"{type(e).__name__}: {e}; {fix}") from e

    def _to_item(self, split: str, index: int, where: str, row: dict[str, Any]) -> Item:
        for key in _FIELDS:
            if not isinstance(row[key], str) or (key != "canonical_solution" and not row[key].strip()):
                raise DataNotFoundError(f"{where}: HumanEval record field {key!r} must be text, got "
                                        f"{row[key]!r:.80}; fix or re-download the file")
        if not row["entry_point"].isidentifier():
            raise DataNotFoundError(f"{where}: HumanEval entry_point {row['entry_point']!r} is not a Python name; "
                                    "fix or re-download the file")
        return Item(
            id=f"humaneval/{split}/{index}",
            question=row["prompt"],
            gold=row["canonical_solution"],
            meta={"task_id": row["task_id"], "prompt": row["prompt"], "entry_point": row["entry_point"],
                  "test": row["test"]},
        )

    # ---------------------------------------------------------------- scoring
    def score(self, response: str, item: Item) -> Score:
        """Run the code of one response against the item's tests (see the module docstring).

        Raises:
            ConfigError: ``item`` is not a HumanEval item (no tests in its meta).
            SandboxError: The sandbox could not run the code.
        """
        return self.score_many([response], [item])[0]

    def score_many(self, responses: Sequence[str], items: Sequence[Item]) -> list[Score]:
        """:meth:`score` for many responses, executed in parallel (up to the sandbox's ``max_workers``)."""
        if len(responses) != len(items):
            raise ConfigError(f"score_many got {len(responses)} responses for {len(items)} items; pass one each")
        readings: list[ProgramReading] = []
        for response, item in zip(responses, items):
            meta = item.meta if isinstance(item, Item) else None
            if not meta or not all(isinstance(meta.get(k), str) for k in ("prompt", "test", "entry_point")):
                raise ConfigError(f"item {getattr(item, 'id', item)!r} is not a HumanEval item: its meta needs "
                                  "'prompt', 'test' and 'entry_point' (load items with HumanEvalTask.load)")
            readings.append(read_program(response, meta["prompt"], meta["entry_point"]))
        runnable = [i for i, r in enumerate(readings) if r.code is not None]
        results = self.sandbox.run_many([program_with_tests(readings[i].code, items[i]) for i in runnable])
        scores: list[Score] = []
        by_index = dict(zip(runnable, results))
        for i, reading in enumerate(readings):
            if reading.code is None:
                if reading.cut:
                    scores.append(Score(False, None, "truncated", reason=(
                        f"the response is longer than MAX_RESPONSE_CHARS={MAX_RESPONSE_CHARS} characters and no "
                        f"code before the cut parses ({reading.reason})"), explicit=False))
                else:
                    scores.append(Score(False, None, "unparseable", reason=reading.reason, explicit=False))
                continue
            result = by_index[i]
            reason = result.status if not result.detail else f"{result.status}: {result.detail.strip()}"
            scores.append(Score(result.status == "passed", reading.code, "ok", reason=reason, explicit=True))
        return scores

    def default_template(self) -> PromptTemplate:
        """Asks for the complete function in one Python code block."""
        return PromptTemplate(
            system="You are an expert Python programmer. Write correct, self-contained Python code.",
            user=("Complete the following Python function.\n\n```python\n{question}```{signal_block}\n\n"
                  "Answer with the complete function (signature and body) in one ```python code block."),
            signal_format="\n\nHint: {signal}",
        )

    def __repr__(self) -> str:
        return f"HumanEvalTask(data_dir={str(self._data_dir) if self._data_dir else None!r})"


__all__ = ["MAX_RESPONSE_CHARS", "HumanEvalTask", "ProgramReading", "execution_verdict", "read_program",
           "program_with_tests"]
