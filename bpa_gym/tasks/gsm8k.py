"""GSM8K: grade-school math word problems with a numeric final answer.

The scorer reads free-form Receiver output.  :func:`extract_answer` looks for
an explicit final-answer marker first and falls back to the last number:

* Markers: ``#### N`` (GSM8K solutions), ``\\boxed{N}``, "the answer is N",
  "the final answer is N", "Answer: N", "Final Answer: N" (case-insensitive,
  markdown bold allowed) and "A: N" at the start of a line.  A marker counts
  only when a number follows it directly (after ``:``, ``$``, "approximately",
  ``x =`` and the like); "The answer is 3 + 4 = 7" reads as 7.
* When several markers count, the **last** one wins ("Answer: 12 ... wait ...
  The answer is 14" is 14); numbers after it are ignored ("The answer is 18.
  (3 more than 15)" is 18).
* No marker: the last number in the text.
* A base model that runs on into a new "Question:" / "Q:" after having
  written a number is cut there, so the invented follow-up is never read.
* Numbers: thousands commas, currency (``$ \\$ € £``), units and words after
  the number, trailing zeros, percent, negatives, ``a/b``, mixed ``1 1/2``,
  ``\\frac{a}{b}``, ``\\text{...}``, ``.5`` and ``1e3``.

Not supported, on purpose: number words ("eighteen"), decimal commas ("2,5"),
space-separated thousands ("1 234") — each is ambiguous with a list or with
something else a model writes, and GSM8K answers are digits.
"""

from __future__ import annotations

import math
import os
import re
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

from bpa_gym.errors import ConfigError, DataNotFoundError
from bpa_gym.prompts import PromptTemplate
from bpa_gym.tasks.data import DATA_DIR_ENV, read_jsonl, resolve_data_dir
from bpa_gym.types import Item, Score

# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------

_NUM_TEMPLATE = r"""
    (?<![^\W_])(?<![\\/])                 # not glued to a letter, digit, backslash or slash
    (?P<neg>[-\u2212](?=[$€£¥₹]|\.?\d))?     # minus sign, no space ("- 5" is a bullet)
    (?P<cur>[$€£¥₹]\s?)?
    (?P<neg2>[-\u2212](?=\.?\d))?            # "$-5"
    (?:
        {mixed}
        (?P<fn>\d+)/(?P<fd>\d+)(?![\d/]|\.\d)                         # fraction 3/4
      | (?P<num>\d{{1,3}}(?:,\d{{3}})+(?!\d)(?:\.\d+)?             # 1,234.5
               |\d+(?:\.\d+)?                                     # 1234.5
               |(?<!\.)\.\d+)                                     # .5
        (?P<exp>[eE][-+]?\d+(?!\w|\.\d))?                           # 1e3
    )
"""
_MIXED = r"(?P<whole>\d+)[ \t]+(?P<mn>\d+)/(?P<md>\d+)(?![\d/]|\.\d) |"  # 1 1/2
_NUM_RE = re.compile(_NUM_TEMPLATE.format(mixed=_MIXED), re.VERBOSE)
# The same without the mixed-number branch, for "12 15/3" (improper: not a mixed number).
_NUM_NO_MIXED_RE = re.compile(_NUM_TEMPLATE.format(mixed="(?P<whole>(?!))(?P<mn>)(?P<md>) |"), re.VERBOSE)


def _to_fraction(m: re.Match[str]) -> Fraction | None:
    """The exact value of a :data:`_NUM_RE` match (None for a zero denominator)."""
    g = m.groupdict()
    if g["whole"] is not None:
        value = int(g["whole"]) + Fraction(int(g["mn"]), int(g["md"]))
    elif g["fn"] is not None:
        if int(g["fd"]) == 0:
            return None
        value = Fraction(int(g["fn"]), int(g["fd"]))
    else:
        value = Fraction(g["num"].replace(",", "") + (g["exp"] or ""))
    if g["neg"] or g["neg2"]:
        value = -value
    return value


def _numbers(text: str, pos: int = 0) -> Iterator[tuple[re.Match[str], Fraction]]:
    """Every number in ``text`` from ``pos`` on, with its exact value."""
    while True:
        m = _NUM_RE.search(text, pos)
        if m is None:
            return
        if m.group("whole") is not None and int(m.group("mn")) >= int(m.group("md")):
            m = _NUM_NO_MIXED_RE.match(text, m.start())
            assert m is not None
        pos = max(m.end(), pos + 1)
        value = _to_fraction(m)
        if value is not None:
            yield m, value


def _format(value: Fraction) -> str:
    """Canonical text of a number: no trailing zeros, exact when it terminates."""
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:  # terminating decimal: exact
        with localcontext() as ctx:
            ctx.prec = 60
            text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
        return text.rstrip("0").rstrip(".")
    return repr(float(value))


# --------------------------------------------------------------------------
# Text clean-up (LaTeX, markdown, GSM8K calculator annotations)
# --------------------------------------------------------------------------

_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_LATEX_FRAC_SHORT = re.compile(r"\\[dt]?frac(\d)(\d)(?!\d)")  # \frac12
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def _clean(text: str) -> str:
    """Undo the LaTeX / markdown wrapping that hides numbers."""
    text = _CALCULATOR.sub("", text)
    text = text.replace("**", "").replace("\\$", "$").replace("\\%", "%").replace("{,}", ",")
    text = re.sub(r"(?<=\d)\\[,!;: ](?=\d{3}(?!\d))", ",", text)  # 1\,234
    for _ in range(3):  # \text{\textbf{...}}
        text = _LATEX_WRAPPERS.sub(r"\1", text)
    text = _LATEX_FRAC.sub(r"\1/\2", text)
    text = _LATEX_FRAC_SHORT.sub(r"\1/\2", text)
    text = re.sub(r"\\(?:left|right)(?=[()\[\]])", "", text)
    return text


def _boxed_contents(text: str) -> Iterator[tuple[int, str]]:
    """(position, content) of every ``\\boxed{...}`` / ``\\fbox{...}``, braces matched."""
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            yield m.start(), text[m.end() : i - 1]


# What may stand between a marker and its number.
_LEAD_RE = re.compile(
    r"""(?:
        [\s:=*_$()\[\]{}~≈>\\]
      | \b(?:approximately|approx\b\.?|about|around|roughly|exactly|just|only|equals?|equal\s+to
            |a\s+total\s+of|total\s+of|therefore|thus|so|then|that)\b
      | \b[A-Za-z]\w{0,15}\s*=              # "x = 5", "total = 5"
    )*""",
    re.VERBOSE | re.IGNORECASE,
)
# "3 + 4 = 7", "9 * $2 = $18": an arithmetic tail after the first number.
_EXPR_TAIL_RE = re.compile(r"(?:\s*[-+*/×÷x^]\s*\(?\s*[$€£]?\d[\d,.]*\s*\)?)+\s*=\s*\$?")


def _number_at_start(text: str) -> Fraction | None:
    """The number ``text`` starts with (after filler), resolving ``a op b = c`` to c."""
    lead = _LEAD_RE.match(text)
    pos = lead.end() if lead else 0
    m = _NUM_RE.match(text, pos)
    if m is None:
        return None
    if m.group("whole") is not None and int(m.group("mn")) >= int(m.group("md")):
        m = _NUM_NO_MIXED_RE.match(text, pos)
        assert m is not None
    value = _to_fraction(m)
    for _ in range(10):  # follow "= ..." chains: 2 + 3 = 5 + 1 = 6
        tail = _EXPR_TAIL_RE.match(text, m.end())
        if tail is None:
            break
        nxt = _NUM_RE.match(text, tail.end())
        if nxt is None:
            break
        m, value = nxt, _to_fraction(nxt)
    return value


def normalize_number(s: str) -> str | None:
    """The canonical text of the number ``s`` starts with, or ``None``.

    Leading filler (``$``, ``:``, markdown, ``\\boxed{``, "approximately", ...)
    is skipped and anything after the number (units, words, a period) is
    ignored.

    Args:
        s: An answer such as ``"$1,234.50"``, ``"18 eggs"`` or ``"\\frac{3}{4}"``.

    Returns:
        The number without thousands separators or trailing zeros, exact when
        it is a terminating decimal (``"0.75"``), else Python's float text.

    Example:
        >>> [normalize_number(s) for s in ["1,234", "$18.00", "2.50", "25%", "-7", "3/4"]]
        ['1234', '18', '2.5', '25', '-7', '0.75']
        >>> normalize_number("1 1/2"), normalize_number(r"\\frac{1}{8}"), normalize_number("18 eggs.")
        ('1.5', '0.125', '18')
        >>> normalize_number("no number here") is None
        True
    """
    if not isinstance(s, str):
        raise ConfigError(f"normalize_number expects a string, got {type(s).__name__}")
    text = _clean(s)
    boxed = next(_boxed_contents(text), None)
    if boxed is not None and not text[: boxed[0]].strip(" $\\(["):
        text = boxed[1]
    value = _number_at_start(text)
    return None if value is None else _format(value)


# --------------------------------------------------------------------------
# Answer extraction
# --------------------------------------------------------------------------

_MARKER_RE = re.compile(
    r"""
      \#{4,}                                                     # GSM8K: #### 18
    | \b(?:final\s+)?answer\b(?:\s+to\s+[^.\n:]{1,80}?)?\s*
        (?:(?:is|was|would\s+be|will\s+be|should\s+be)\b|[:=])   # the (final) answer is / Answer:
    | \bfinal\s+answer\b                                         # Final Answer (heading)
    | (?-i:^[ \t>#*_-]*A[ \t]*:)                                 # A: 7 (line start, capital A)
    """,
    re.VERBOSE | re.IGNORECASE | re.MULTILINE,
)

# A base model inventing the next exercise: "Question: ...", "Q2:", "Problem:".
_NEW_QUESTION_RE = re.compile(
    r"^[ \t>#*_]*(?:question|problem|exercise|(?-i:Q))[ \t]*\d*[ \t]*[:.)]", re.IGNORECASE | re.MULTILINE
)


def _truncate_runaway(text: str) -> str:
    """Cut at the first new-question header that follows some number."""
    for m in _NEW_QUESTION_RE.finditer(text):
        if re.search(r"\d", text[: m.start()]):
            return text[: m.start()]
    return text


def _marked_answers(text: str) -> list[tuple[int, Fraction]]:
    """(position, value) of every explicit marker that is followed by a number."""
    found: list[tuple[int, Fraction]] = []
    for m in _MARKER_RE.finditer(text):
        value = _number_at_start(text[m.end() :])
        if value is not None:
            found.append((m.start(), value))
    for pos, content in _boxed_contents(text):
        value = _number_at_start(content)
        if value is not None:
            found.append((pos, value))
    return sorted(found, key=lambda pv: pv[0])


def extract_answer(text: str) -> str | None:
    """The final numeric answer in a response, normalised, or ``None``.

    The last explicit marker that is followed by a number wins; without one,
    the last number in the text.  ``None`` means *unparseable* (no number at
    all), which is different from a wrong answer.

    Args:
        text: A Receiver response or a GSM8K solution.

    Returns:
        The answer as :func:`normalize_number` writes it, or ``None``.

    Example:
        >>> extract_answer("9 * 2 = 18 dollars. The answer is 18.")
        '18'
        >>> extract_answer("**Answer:** $1,234.50")
        '1234.5'
        >>> extract_answer("The answer is 18. (3 more than 15)")
        '18'
        >>> extract_answer(r"so the total is $\\boxed{\\frac{3}{4}}$ cups")
        '0.75'
        >>> extract_answer("She has 3 apples, then 5.")
        '5'
        >>> extract_answer("I don't know.") is None
        True
    """
    if not isinstance(text, str):
        raise ConfigError(f"extract_answer expects a string, got {type(text).__name__}")
    text = _truncate_runaway(_clean(text))
    marked = _marked_answers(text)
    if marked:
        return _format(marked[-1][1])
    last = None
    for _, value in _numbers(text):
        last = value
    return None if last is None else _format(last)


def _same_number(a: str, b: str) -> bool:
    x, y = Fraction(a), Fraction(b)
    return x == y or math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9)


def is_correct(response: str, gold: str) -> bool:
    """Whether the answer extracted from ``response`` equals ``gold`` numerically.

    Both sides are normalised the same way (``"1,200"`` equals ``"1200.00"``);
    the comparison is exact for rationals, with a 1e-9 relative tolerance
    otherwise.  An unparseable response is not correct.

    Args:
        response: A Receiver response.
        gold: The reference answer (e.g. ``"18"`` or ``"1,450,000"``).

    Raises:
        ConfigError: ``gold`` holds no number.

    Example:
        >>> is_correct("So she makes $1,200.00 a week.", "1200")
        True
        >>> is_correct("The answer is 17.", "18"), is_correct("no idea", "18")
        (False, False)
    """
    gold_n = normalize_number(gold)
    if gold_n is None:
        raise ConfigError(f"gold answer {gold!r} holds no number; GSM8K golds are numbers like '18'")
    got = extract_answer(response)
    return got is not None and _same_number(got, gold_n)


def gold_from_solution(answer_field: str) -> str:
    """The normalised final answer of a GSM8K ``answer`` field (the text after ``####``).

    Args:
        answer_field: A GSM8K solution ending in ``#### N``.

    Raises:
        ConfigError: There is no ``####`` line or no number after it.

    Example:
        >>> gold_from_solution("She makes 9 * 2 = $<<9*2=18>>18.\\n#### 18")
        '18'
        >>> gold_from_solution("...\\n#### 1,450,000")
        '1450000'
    """
    if not isinstance(answer_field, str) or "####" not in answer_field:
        raise ConfigError(
            f"not a GSM8K solution (no '#### N' final line): {str(answer_field)[-80:]!r}; "
            "pass the dataset's 'answer' field"
        )
    tail = answer_field.rsplit("####", 1)[1].strip()
    gold = normalize_number(tail)
    if gold is None:
        raise ConfigError(f"GSM8K solution has no number after '####': {tail[:80]!r}")
    return gold


# --------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------

#: split -> (hub config, hub split)
_HUB_SPLITS: dict[str, tuple[str, str]] = {
    "train": ("main", "train"),
    "test": ("main", "test"),
    "test_socratic": ("socratic", "test"),
}


class GSM8KTask:
    """GSM8K as a :class:`~bpa_gym.tasks.base.Task`: items, scorer, prompt.

    Items come from ``<data_dir>/gsm8k/<split>.jsonl`` when a data directory
    is set (argument, else ``$BPA_DATA_DIR``), else from the Hugging Face hub
    (``openai/gsm8k``; needs ``bpa-gym[hub]`` and a network).  Loaded splits
    are cached on the instance.

    Args:
        data_dir: Folder holding ``gsm8k/`` as in the project's shared data.

    Example:
        >>> task = GSM8KTask.__new__(GSM8KTask); task._data_dir, task._cache = None, {}
        >>> item = Item("gsm8k/test/0", "16 - 3 - 4 eggs at $2?", "18")
        >>> task.score("16-3-4=9 and 9*2=18. The answer is 18.", item)
        Score(correct=True, extracted='18', status='ok')
        >>> task.score("I am not sure.", item)
        Score(correct=False, extracted=None, status='unparseable')
    """

    name = "gsm8k"
    splits: tuple[str, ...] = ("train", "test", "test_socratic")

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self._data_dir: Path | None = resolve_data_dir(data_dir)
        self._cache: dict[str, list[Item]] = {}

    @property
    def data_dir(self) -> Path | None:
        """The local data directory in use, or ``None`` (Hugging Face hub)."""
        return self._data_dir

    def load(self, split: str) -> list[Item]:
        """All items of ``split`` in dataset order (cached after the first call).

        Raises:
            ConfigError: ``split`` is not one of :attr:`splits`.
            DataNotFoundError: The local file is missing or malformed, or the
                hub cannot be reached.
        """
        if split not in self.splits:
            raise ConfigError(f"unknown GSM8K split {split!r}; choose one of {list(self.splits)}")
        if split not in self._cache:
            rows = self._read_local(split) if self._data_dir is not None else self._read_hub(split)
            self._cache[split] = [self._to_item(split, i, row) for i, row in enumerate(rows)]
        return list(self._cache[split])

    def _read_local(self, split: str) -> list[dict[str, Any]]:
        assert self._data_dir is not None
        path = self._data_dir / "gsm8k" / f"{split}.jsonl"
        if not path.is_file():
            expected = ", ".join(f"gsm8k/{s}.jsonl" for s in self.splits)
            raise DataNotFoundError(
                f"GSM8K split {split!r} not found: {str(path)!r} does not exist. The data directory "
                f"{str(self._data_dir)!r} must hold {expected} (JSON lines with 'question' and "
                f"'answer'), as in the project's shared data; fix data_dir= or ${DATA_DIR_ENV}, "
                "or unset both to use the Hugging Face hub"
            )
        return read_jsonl(path, required_keys=("question", "answer"))

    def _read_hub(self, split: str) -> list[dict[str, Any]]:
        config, hub_split = _HUB_SPLITS[split]
        fix = (
            f"pass data_dir= (a folder holding gsm8k/{split}.jsonl, e.g. the project's shared/data) "
            f"or set ${DATA_DIR_ENV}; or install 'bpa-gym[hub]' and go online"
        )
        try:
            import datasets
        except ImportError as e:
            raise DataNotFoundError(
                f"no data directory is set and the 'datasets' package is not installed ({e}); {fix}"
            ) from e
        try:
            ds = datasets.load_dataset("openai/gsm8k", config, split=hub_split)
            return [{"question": r["question"], "answer": r["answer"]} for r in ds]
        except Exception as e:  # offline, hub error, cache problems: all mean "no data"
            offline = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(v, "0") not in ("", "0")]
            if offline:
                fix += f" ({' and '.join(offline)} set: unset to download)"
            raise DataNotFoundError(
                f"could not load openai/gsm8k ({config}, {hub_split}) from the Hugging Face hub: "
                f"{type(e).__name__}: {e}; {fix}"
            ) from e

    def _to_item(self, split: str, index: int, row: dict[str, Any]) -> Item:
        try:
            gold = gold_from_solution(row["answer"])
        except ConfigError as e:
            raise DataNotFoundError(f"GSM8K {split} record {index} is malformed: {e}") from None
        return Item(
            id=f"gsm8k/{split}/{index}",
            question=row["question"],
            gold=gold,
            meta={"solution": row["answer"]},
        )

    def score(self, response: str, item: Item) -> Score:
        """Judge one response: ``ok`` with correctness, or ``unparseable``."""
        extracted = extract_answer(response)
        if extracted is None:
            return Score(correct=False, extracted=None, status="unparseable")
        gold = normalize_number(item.gold)
        if gold is None:
            raise ConfigError(f"item {item.id!r} has gold {item.gold!r}, which holds no number")
        return Score(correct=_same_number(extracted, gold), extracted=extracted, status="ok")

    def default_template(self) -> PromptTemplate:
        """A short math-tutor prompt asking for a final "The answer is N." line."""
        return PromptTemplate(
            system="You are a careful math tutor. Solve the problem step by step, briefly.",
            user=(
                "Question: {question}{signal_block}\n\n"
                "Solve it, then write the final answer on its own last line as: The answer is N."
            ),
            signal_format="\n\nHint: {signal}",
        )

    def __repr__(self) -> str:
        return f"GSM8KTask(data_dir={str(self._data_dir) if self._data_dir else None!r})"


__all__ = ["GSM8KTask", "extract_answer", "gold_from_solution", "is_correct", "normalize_number"]
