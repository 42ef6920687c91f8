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
* No marker: the last number in the text (an answer read this way is not
  *explicit*: a response cut at the length limit is never scored from it,
  see :class:`~bpa_gym.game.PersuasionGame`).
* A base model that runs on into a new "Question:" / "Q:" after having
  written a number is cut there, so the invented follow-up is never read.
* Numbers: thousands commas, currency (``$ \\$ € £``), units and words after
  the number, trailing zeros, percent, negatives, ``a/b``, mixed ``1 1/2``,
  ``\\frac{a}{b}``, ``\\text{...}``, ``.5`` and ``1e3``.

Any Receiver may return anything, so the scorer is built to stay fast and
never raise on a response:

* It runs in time linear in the response (no nested quantifiers that can
  backtrack, no rescans per marker).  Responses longer than
  :data:`MAX_RESPONSE_CHARS` are cut there, as if the Receiver had been
  stopped at that point (see :func:`read_answer`).
* Numbers are bounded: a number with more than :data:`MAX_NUMBER_DIGITS`
  digits (integer and decimal part; each side of a fraction) or an exponent
  beyond ±\\ :data:`MAX_EXPONENT` is *unreadable*: where it is the answer, the
  response is unparseable, with the reason.
* The number after a marker must start within 100 characters of it, and an
  ``a op b = c`` chain is followed within 500 characters.

Not supported, on purpose: number words ("eighteen"), decimal commas ("2,5"),
space-separated thousands ("1 234") — each is ambiguous with a list or with
something else a model writes, and GSM8K answers are digits.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

from bpa_gym.errors import ConfigError, DataNotFoundError
from bpa_gym.prompts import PromptTemplate
from bpa_gym.tasks.data import DATA_DIR_ENV, iter_jsonl, resolve_data_dir
from bpa_gym.types import Item, Score

#: Responses longer than this many characters are read up to here only.
MAX_RESPONSE_CHARS = 100_000
#: Most digits a number may have (integer + decimal part; each side of a fraction).
MAX_NUMBER_DIGITS = 100
#: Largest exponent magnitude in scientific notation (``1e100``, ``1e-100``).
MAX_EXPONENT = 100

_LEAD_WINDOW = 100  # a marker's number starts within this many characters
_CHAIN_WINDOW = 500  # "a op b = c" after a marker is followed within this many characters

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


class _Unreadable(Exception):
    """A number too large to read (see :data:`MAX_NUMBER_DIGITS`, :data:`MAX_EXPONENT`)."""


def _digits(s: str) -> int:
    """An integer from a digit string of bounded length (checked before converting)."""
    if len(s) > MAX_NUMBER_DIGITS:
        raise _Unreadable(f"a number with {len(s)} digits (more than MAX_NUMBER_DIGITS={MAX_NUMBER_DIGITS})")
    return int(s)


def _to_fraction(m: re.Match[str]) -> Fraction | None:
    """The exact value of a :data:`_NUM_RE` match (None for a zero denominator).

    Raises:
        _Unreadable: The number is beyond the documented bounds.
    """
    g = m.groupdict()
    if g["whole"] is not None:
        value = _digits(g["whole"]) + Fraction(_digits(g["mn"]), _digits(g["md"]))
    elif g["fn"] is not None:
        fn, fd = _digits(g["fn"]), _digits(g["fd"])
        if fd == 0:
            return None
        value = Fraction(fn, fd)
    else:
        mantissa = g["num"].replace(",", "")
        if len(mantissa) - ("." in mantissa) > MAX_NUMBER_DIGITS:
            raise _Unreadable(
                f"a number with {len(mantissa) - ('.' in mantissa)} digits "
                f"(more than MAX_NUMBER_DIGITS={MAX_NUMBER_DIGITS})"
            )
        value = _decimal_fraction(mantissa)
        if g["exp"]:
            exp_digits = g["exp"][1:].lstrip("+-").lstrip("0") or "0"
            if len(exp_digits) > 4 or int(exp_digits) > MAX_EXPONENT:
                shown = g["exp"] if len(g["exp"]) <= 20 else g["exp"][:17] + "..."
                raise _Unreadable(f"a number with exponent {shown} (beyond MAX_EXPONENT={MAX_EXPONENT})")
            value *= Fraction(10) ** (-int(exp_digits) if "-" in g["exp"] else int(exp_digits))
    if g["neg"] or g["neg2"]:
        value = -value
    return value


def _decimal_fraction(digits: str) -> Fraction:
    """The exact value of ``"123"``, ``"12.5"`` or ``".5"`` (``Fraction(digits)`` without its string parser).

    Example:
        >>> _decimal_fraction("12.50"), _decimal_fraction(".5"), _decimal_fraction("007")
        (Fraction(25, 2), Fraction(1, 2), Fraction(7, 1))
    """
    whole, dot, decimals = digits.partition(".")
    if not dot:
        return Fraction(int(whole))
    return Fraction(int(whole + decimals), 10 ** len(decimals))


def _match_number(text: str, pos: int, end: int | None = None) -> re.Match[str] | None:
    """The number starting exactly at ``pos`` (a mixed number only when proper), ending by ``end``."""
    end = len(text) if end is None else end
    m = _NUM_RE.match(text, pos, end)
    if m is not None and m.group("whole") is not None and len(m.group("mn")) <= MAX_NUMBER_DIGITS \
            and len(m.group("md")) <= MAX_NUMBER_DIGITS and int(m.group("mn")) >= int(m.group("md")):
        m = _NUM_NO_MIXED_RE.match(text, pos, end)
    return m


def _numbers(text: str) -> Iterator[re.Match[str]]:
    """Every number in ``text``, left to right."""
    pos = 0
    while True:
        m = _NUM_RE.search(text, pos)
        if m is None:
            return
        m = _match_number(text, m.start()) or m
        pos = max(m.end(), m.start() + 1)
        yield m


def _format(value: Fraction) -> str:
    """Canonical text of a number: no trailing zeros, exact when it terminates."""
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:  # terminating decimal: exact (bounded numbers have at most ~750 digits)
        with localcontext() as ctx:
            ctx.prec = 1000
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
_THIN_SPACE_THOUSANDS = re.compile(r"(?<=\d)\\[,!;: ](?=\d{3}(?!\d))")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?=[()\[\]])")


def _clean(text: str) -> str:
    """Undo the LaTeX / markdown wrapping that hides numbers."""
    if "<<" in text:  # (fast path: each step below is skipped only where it cannot match)
        text = _CALCULATOR.sub("", text)
    text = text.replace("**", "").replace("\\$", "$").replace("\\%", "%").replace("{,}", ",")
    if "\\" not in text:  # every pattern below starts with a backslash
        return text
    text = _THIN_SPACE_THOUSANDS.sub(",", text)  # 1\,234
    for _ in range(3):  # \text{\textbf{...}}
        text, n = _LATEX_WRAPPERS.subn(r"\1", text)
        if not n:
            break
    text = _LATEX_FRAC.sub(r"\1/\2", text)
    text = _LATEX_FRAC_SHORT.sub(r"\1/\2", text)
    text = _LEFT_RIGHT.sub("", text)
    return text


_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _boxed_spans(text: str) -> Iterator[tuple[int, int, int]]:
    """(marker start, content start, content end) of every ``\\boxed{...}`` / ``\\fbox{...}``, braces matched.

    One pass over the braces matches them all (linear, however deeply nested
    or unclosed the boxes are).
    """
    if "\\" not in text:  # (fast path) a box starts with a backslash
        return
    opens = [m for m in _BOXED_RE.finditer(text)]
    if not opens:
        return
    closing: dict[int, int] = {}
    stack: list[int] = []
    for b in re.finditer(r"[{}]", text):
        if b.group() == "{":
            stack.append(b.start())
        elif stack:
            closing[stack.pop()] = b.start()
    for m in opens:
        end = closing.get(m.end() - 1)
        if end is not None:
            yield m.start(), m.end(), end


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
# "3 + 4 = 7", "9 * $2 = $18": an arithmetic tail after the first number.  The repeated part is matched
# inside a lookahead and consumed by a backreference, an atomic group: once matched it is never re-split,
# so a tail without "=" fails in linear time (nested quantifiers made "1 + 1 + ... + 1" exponential).
_EXPR_TAIL_RE = re.compile(
    r"(?=(?P<ops>(?:\s*[-+*/×÷x^]\s*\(?\s*[$€£]?\d[\d,.]*\s*\)?)+))(?P=ops)\s*=\s*\$?"
)


def _number_after(text: str, pos: int, end: int | None = None) -> re.Match[str] | None:
    """The number a marker ending at ``pos`` announces (after filler), resolving ``a op b = c`` to c."""
    end = len(text) if end is None else end
    lead = _LEAD_RE.match(text, pos, min(end, pos + _LEAD_WINDOW))
    start = lead.end() if lead else pos
    m = _match_number(text, start, end)
    if m is None:
        return None
    chain_end = min(end, pos + _CHAIN_WINDOW)
    for _ in range(10):  # follow "= ..." chains: 2 + 3 = 5 + 1 = 6
        tail = _EXPR_TAIL_RE.match(text, m.end(), chain_end)
        if tail is None:
            break
        nxt = _match_number(text, tail.end(), end)
        if nxt is None:
            break
        m = nxt
    return m


@dataclass(frozen=True)
class AnswerReading:
    """How :func:`read_answer` read a response.

    Attributes:
        answer: The answer as :func:`normalize_number` writes it, or ``None``
            (unparseable).
        explicit: Whether the answer follows an explicit final-answer marker
            (``False`` for the last-number fallback, and when there is no answer).
        reason: Why there is no answer (``None`` when there is one).
        cut: Whether the response was longer than :data:`MAX_RESPONSE_CHARS`
            and only its beginning was read.
    """

    answer: str | None
    explicit: bool
    reason: str | None
    cut: bool = False


def _read(match: re.Match[str] | None) -> tuple[str | None, str | None]:
    if match is None:
        return None, None
    whole, fn, num, exp, neg, neg2 = match.group("whole", "fn", "num", "exp", "neg", "neg2")
    if num is not None and whole is None and fn is None and exp is None and "." not in num:
        digits = num.replace(",", "")  # (fast path) an integer: its canonical text without Fraction
        if len(digits) <= MAX_NUMBER_DIGITS:
            return str(-int(digits) if neg or neg2 else int(digits)), None
    try:
        value = _to_fraction(match)
    except _Unreadable as e:
        return None, f"the answer is unreadable: {e}"
    if value is None:
        return None, f"the answer {match.group()!r} divides by zero"
    return _format(value), None


def normalize_number(s: str) -> str | None:
    """The canonical text of the number ``s`` starts with, or ``None``.

    Leading filler (``$``, ``:``, markdown, ``\\boxed{``, "approximately", ...)
    is skipped and anything after the number (units, words, a period) is
    ignored.  A number beyond the bounds (:data:`MAX_NUMBER_DIGITS`,
    :data:`MAX_EXPONENT`) is ``None``.

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
        >>> normalize_number("no number here") is None, normalize_number("1e400") is None
        (True, True)
    """
    return _normalize(s)[0]


def _normalize(s: str) -> tuple[str | None, str | None]:
    """(canonical number, reason it is missing) for :func:`normalize_number`."""
    if not isinstance(s, str):
        raise ConfigError(f"normalize_number expects a string, got {type(s).__name__}")
    text = _clean(s[:MAX_RESPONSE_CHARS])
    boxed = next(_boxed_spans(text), None)
    start, end = 0, len(text)
    if boxed is not None and not text[: boxed[0]].strip(" $\\(["):
        start, end = boxed[1], boxed[2]
    answer, reason = _read(_number_after(text, start, end))
    if answer is None and reason is None:
        reason = "no number"
    return answer, reason


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
    r"^[ \t>#*_]*(?:question|problem|exercise|(?-i:Q))(?:[ \t]*\d+)?[ \t]*[:.)]", re.IGNORECASE | re.MULTILINE
)


_DIGIT_RE = re.compile(r"\d")


def _truncate_runaway(text: str) -> str:
    """Cut at the first new-question header that starts after some digit."""
    first_digit = _DIGIT_RE.search(text)
    if first_digit is None:
        return text
    # _NEW_QUESTION_RE.search(text, first_digit.start() + 1), tried only where it can match: at line starts
    newline = text.find("\n", first_digit.start())
    while newline >= 0:
        if _NEW_QUESTION_RE.match(text, newline + 1) is not None:
            return text[: newline + 1]
        newline = text.find("\n", newline + 1)
    return text


def _markers(text: str) -> Iterator[re.Match[str]]:
    """``_MARKER_RE.finditer(text)``, without scanning the pattern at every position.

    Every marker starts at a candidate that plain string search finds: ``####``, "answer" or
    "final" in any case (in ``text.lower()``, with the two characters that ``re.IGNORECASE`` also
    matches there folded: dotless i and long s), or a line start (the ``A:`` branch, only when
    the text holds an ``A`` and a colon).  Trying the pattern at the candidates from left to right,
    skipping those inside the last match, finds the same matches as the scan.  (A capital dotted
    İ, whose lower case is two characters, takes the scan.)
    """
    if "\u0130" in text:
        yield from _MARKER_RE.finditer(text)
        return
    folded = text.lower().replace("\u0131", "i").replace("\u017f", "s")
    starts: set[int] = set()
    for haystack, needle in ((folded, "answer"), (folded, "final"), (text, "####")):
        i = haystack.find(needle)
        while i >= 0:
            starts.add(i)
            i = haystack.find(needle, i + 1)
    if "A" in text and ":" in text:
        starts.add(0)
        i = text.find("\n")
        while i >= 0:
            starts.add(i + 1)
            i = text.find("\n", i + 1)
    end = 0
    for start in sorted(starts):
        if start >= end:
            m = _MARKER_RE.match(text, start)
            if m is not None:
                yield m
                end = m.end()


def _last_marked(text: str) -> re.Match[str] | None | bool:
    """The number of the last explicit marker followed by one (``False`` when no marker has a number)."""
    found: tuple[int, re.Match[str]] | None = None
    for m in _markers(text):
        num = _number_after(text, m.end())
        if num is not None and (found is None or m.start() >= found[0]):
            found = (m.start(), num)
    for start, content_start, content_end in _boxed_spans(text):
        num = _number_after(text, content_start, content_end)
        if num is not None and (found is None or start >= found[0]):
            found = (start, num)
    return False if found is None else found[1]


def read_answer(text: str) -> AnswerReading:
    """Read a response: its final answer, whether it was explicit, and why there is none.

    This is :func:`extract_answer` with the details a scorer needs.  A
    response longer than :data:`MAX_RESPONSE_CHARS` is read up to there only
    (``cut=True``), as if the Receiver had been stopped at that point.

    Args:
        text: A Receiver response.

    Returns:
        An :class:`AnswerReading`.

    Raises:
        ConfigError: ``text`` is not a string.

    Example:
        >>> read_answer("9 * 2 = 18. The answer is 18.")
        AnswerReading(answer='18', explicit=True, reason=None, cut=False)
        >>> read_answer("She has 3 apples, then 5.")
        AnswerReading(answer='5', explicit=False, reason=None, cut=False)
        >>> read_answer("The answer is 1e400").reason
        'the answer is unreadable: a number with exponent e400 (beyond MAX_EXPONENT=100)'
    """
    if not isinstance(text, str):
        raise ConfigError(f"extract_answer expects a string, got {type(text).__name__}")
    cut = len(text) > MAX_RESPONSE_CHARS
    text = _truncate_runaway(_clean(text[:MAX_RESPONSE_CHARS]))
    marked = _last_marked(text)
    if marked is not False:
        answer, reason = _read(marked)
        return AnswerReading(answer, answer is not None, reason, cut)
    last = None
    for last in _numbers(text):
        pass
    if last is None:
        return AnswerReading(None, False, "no number in the response", cut)
    answer, reason = _read(last)
    return AnswerReading(answer, False, reason, cut)


def extract_answer(text: str) -> str | None:
    """The final numeric answer in a response, normalised, or ``None``.

    The last explicit marker that is followed by a number wins; without one,
    the last number in the text.  ``None`` means *unparseable* (no number at
    all, or a number beyond the bounds), which is different from a wrong
    answer.  :func:`read_answer` also says why.

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
    return read_answer(text).answer


#: ``Fraction`` of a canonical number text, cached: golds repeat on every step that plays their item.
_fraction_of = functools.lru_cache(maxsize=1 << 16)(Fraction)


def _same_number(a: str, b: str) -> bool:
    if a == b:  # canonical texts: equal text is equal value (the common case of a right answer)
        return True
    x, y = _fraction_of(a), _fraction_of(b)
    return x == y or math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9)


@functools.lru_cache(maxsize=1 << 16)
def _normalize_gold(gold: str) -> tuple[str | None, str | None]:
    """:func:`_normalize` of a gold answer, cached: a gold is read on every step that plays its item,
    and reading it is a pure function of its text."""
    return _normalize(gold)


def _gold_number(gold: str, what: str) -> str:
    value, reason = _normalize_gold(gold) if isinstance(gold, str) else (
        None, f"a {type(gold).__name__}, not text")
    if value is None:
        raise ConfigError(f"{what} {str(gold)[:80]!r} holds no readable number ({reason}); GSM8K golds are numbers like '18'")
    return value


def is_correct(response: str, gold: str) -> bool:
    """Whether the answer extracted from ``response`` equals ``gold`` numerically.

    Both sides are normalised the same way (``"1,200"`` equals ``"1200.00"``);
    the comparison is exact for rationals, with a 1e-9 relative tolerance
    otherwise.  An unparseable response is not correct.

    Args:
        response: A Receiver response.
        gold: The reference answer (e.g. ``"18"`` or ``"1,450,000"``).

    Raises:
        ConfigError: ``gold`` holds no (readable) number.  A response never
            raises: an unreadable one is not correct.

    Example:
        >>> is_correct("So she makes $1,200.00 a week.", "1200")
        True
        >>> is_correct("The answer is 17.", "18"), is_correct("no idea", "18")
        (False, False)
    """
    gold_n = _gold_number(gold, "gold answer")
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
    gold, reason = _normalize(tail)
    if gold is None:
        raise ConfigError(f"GSM8K solution has no readable number after '####' ({reason}): {tail[:80]!r}")
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
        Score(correct=True, extracted='18', status='ok', reason=None, explicit=True)
        >>> task.score("I am not sure.", item)
        Score(correct=False, extracted=None, status='unparseable', reason='no number in the response', explicit=False)
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
            self._cache[split] = [self._to_item(split, i, where, row) for i, (where, row) in enumerate(rows)]
        return list(self._cache[split])

    def _read_local(self, split: str) -> list[tuple[str, dict[str, Any]]]:
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
        rows = [(f"{path}:{lineno}", record) for lineno, record in iter_jsonl(path, ("question", "answer"))]
        if not rows:
            raise DataNotFoundError(
                f"GSM8K split {split!r}: {str(path)!r} holds no records; it must hold one JSON object per line "
                "with 'question' and 'answer' (fix or re-download the file)"
            )
        return rows

    def _read_hub(self, split: str) -> list[tuple[str, dict[str, Any]]]:
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
            return [(f"openai/gsm8k ({config}, {hub_split}) record {i}", {"question": r["question"], "answer": r["answer"]})
                    for i, r in enumerate(ds)]
        except Exception as e:  # offline, hub error, cache problems: all mean "no data"
            offline = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(v, "0") not in ("", "0")]
            if offline:
                fix += f" ({' and '.join(offline)} set: unset to download)"
            raise DataNotFoundError(
                f"could not load openai/gsm8k ({config}, {hub_split}) from the Hugging Face hub: "
                f"{type(e).__name__}: {e}; {fix}"
            ) from e

    def _to_item(self, split: str, index: int, where: str, row: dict[str, Any]) -> Item:
        """One record as an item; ``where`` (``file:line``) names it in errors."""
        for key in ("question", "answer"):
            if not isinstance(row[key], str) or not row[key].strip():
                raise DataNotFoundError(
                    f"{where}: GSM8K record field {key!r} must be non-empty text, got {row[key]!r:.80}; "
                    "fix or re-download the file"
                )
        try:
            gold = gold_from_solution(row["answer"])
        except ConfigError as e:
            raise DataNotFoundError(f"{where}: GSM8K record is malformed: {e}") from None
        return Item(
            id=f"gsm8k/{split}/{index}",
            question=row["question"],
            gold=gold,
            meta={"solution": row["answer"]},
        )

    def score(self, response: str, item: Item) -> Score:
        """Judge one response: ``ok`` with correctness, or ``unparseable`` / ``truncated`` with the reason.

        Never raises on a response (any Receiver may return anything); the
        answer's ``explicit`` flag says whether it followed a final-answer
        marker.  A response longer than :data:`MAX_RESPONSE_CHARS` with no
        marker in what is read is ``truncated``.

        Raises:
            ConfigError: The item's gold holds no number (a data problem).
        """
        gold = _gold_number(item.gold, f"item {item.id!r} has gold")
        reading = read_answer(response)
        if reading.cut and not reading.explicit:
            return Score(False, None, "truncated", reason=(
                f"the response is longer than MAX_RESPONSE_CHARS={MAX_RESPONSE_CHARS} characters and has no "
                "final-answer marker before the cut"), explicit=False)
        if reading.answer is None:
            return Score(False, None, "unparseable", reason=reading.reason, explicit=False)
        return Score(_same_number(reading.answer, gold), reading.answer, "ok", explicit=reading.explicit)

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


__all__ = [
    "MAX_EXPONENT", "MAX_NUMBER_DIGITS", "MAX_RESPONSE_CHARS", "AnswerReading", "GSM8KTask", "extract_answer",
    "gold_from_solution", "is_correct", "normalize_number", "read_answer",
]
