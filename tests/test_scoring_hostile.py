"""The GSM8K scorer on hostile Receiver output: linear time, bounded numbers, never an exception.

Any Receiver may return anything.  The scorer must read every response in
time linear in its length (no catastrophic backtracking, no quadratic
rescans), refuse numbers too large to handle (reading them as unparseable,
with a reason) and never raise.  The per-call budget below is generous (the
scorer takes milliseconds): it catches exponential and quadratic blow-ups, it
is not a speed benchmark (see ``benchmarks/scorer_worst_case.py``).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpa_gym.tasks.gsm8k import (
    MAX_EXPONENT,
    MAX_NUMBER_DIGITS,
    MAX_RESPONSE_CHARS,
    GSM8KTask,
    extract_answer,
    is_correct,
    read_answer,
)
from bpa_gym.types import Item

#: Seconds one scorer call may take on any input (the fixed scorer needs milliseconds).
BUDGET_S = 2.0

ITEM = Item("gsm8k/test/0", "q", "18")


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S, f"{fn.__name__} took {elapsed:.1f} s on a {len(args[0])}-character input"
    return result


def _task() -> GSM8KTask:
    task = GSM8KTask.__new__(GSM8KTask)
    task._data_dir, task._cache = None, {}
    return task


# The inputs reported in issue 8, item 4 and 5.
HOSTILE: dict[str, str] = {
    "nested_plus": "The answer is 1" + " + 1" * 14,
    "nested_plus_long": "The answer is 1" + " + 1" * 40,
    "huge_exponent": "The answer is 1e999999999",
    "boxed_100k": "\\boxed{" * (100_000 // 7),
    "answer_eq_100k": "answer = " * (100_000 // 9),
    "overflow_1e400": "1e400",
    "digits_5000": "9" * 5000,
    "question_headers": "Question" + " " * 50_000 + "x",
    "answer_to_100k": "the answer to " * 7000,
    "calculator_100k": "<<" * 50_000,
    "frac_100k": "\\frac{" * 15_000,
    "dashes": "- " * 50_000,
    "mixed_spaces": "1" + " " * 50_000 + "x",
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_inputs_are_read_within_budget_and_never_raise(name: str) -> None:
    text = HOSTILE[name]
    _timed(extract_answer, text)
    _timed(is_correct, text, "18")
    score = _timed(_task().score, text, ITEM)
    assert score.status in ("ok", "unparseable", "truncated")
    assert score.correct is False


def test_nested_arithmetic_still_reads_the_first_number() -> None:
    # "1 + 1 + ... " with no "=": the answer is the number after the marker.
    assert extract_answer(HOSTILE["nested_plus"]) == "1"
    assert extract_answer("The answer is 1" + " + 1" * 14 + " = 15") == "15"


@pytest.mark.parametrize(
    "text,why",
    [
        ("The answer is 1e999999999", "exponent"),
        ("1e400", "exponent"),
        ("9" * 5000, "digits"),
        ("The answer is " + "9" * (MAX_NUMBER_DIGITS + 1), "digits"),
        ("The answer is 1/" + "7" * 5000, "digits"),
        ("The answer is 3 " + "1" * 500 + "/" + "2" * 500, "digits"),
    ],
)
def test_oversized_numbers_are_unparseable_with_a_reason(text: str, why: str) -> None:
    reading = read_answer(text)
    assert reading.answer is None and why in reading.reason
    assert extract_answer(text) is None
    assert is_correct(text, "18") is False
    score = _task().score(text, ITEM)
    assert (score.status, score.correct, score.extracted) == ("unparseable", False, None)
    assert why in score.reason


def test_numbers_at_the_bounds_are_read() -> None:
    assert extract_answer("The answer is " + "9" * MAX_NUMBER_DIGITS) == "9" * MAX_NUMBER_DIGITS
    assert extract_answer(f"The answer is 1e{MAX_EXPONENT}") == "1" + "0" * MAX_EXPONENT
    assert extract_answer(f"The answer is 1e-{MAX_EXPONENT}") == "0." + "0" * (MAX_EXPONENT - 1) + "1"
    assert is_correct("The answer is " + "2" + "0" * (MAX_NUMBER_DIGITS - 1), f"2e{MAX_NUMBER_DIGITS - 1}")


def test_an_oversized_number_before_the_final_answer_does_not_matter() -> None:
    assert extract_answer("9" * 5000 + " apples. The answer is 18.") == "18"
    assert _task().score("1e400 apples, then 18", ITEM).correct


def test_unparseable_scores_say_why() -> None:
    assert "no number" in _task().score("I don't know.", ITEM).reason
    assert _task().score("The answer is 18.", ITEM).reason is None


def test_responses_longer_than_the_cap_are_cut() -> None:
    # Past the cap nothing is read: the answer after it is as if never written.
    long = "The answer is 5. " + "x" * MAX_RESPONSE_CHARS + " The answer is 18."
    reading = read_answer(long)
    assert reading.cut and reading.answer == "5"
    # A cut response without a final-answer marker in what is kept is truncated, never read from a stray number.
    score = _task().score("7 " + "x" * MAX_RESPONSE_CHARS + " The answer is 18.", ITEM)
    assert (score.status, score.correct, score.extracted) == ("truncated", False, None)
    assert str(MAX_RESPONSE_CHARS) in score.reason


# ----------------------------------------------------------------------------- fuzzing

_PIECES = st.sampled_from([
    "The answer is ", "the final answer is ", "Answer: ", "answer = ", "A: ", "#### ", "\\boxed{", "}",
    "\\frac{", "}{", "\\text{", "<<", ">>", " + ", " * ", " = ", " x ", "$", "-", "1", "9" * 60, "1e", "e999",
    "1,234", ",", ".", "/", " ", "\n", "Question: ", "Q: ", "(", ")", "**", "approximately ", "total = ",
    "1 1/2", "\\$", "%", "−", "€", "\\,", "the answer to ", "is ",
])
_HOSTILE_TEXT = st.one_of(
    st.text(max_size=2000),
    st.lists(_PIECES, max_size=400).map("".join),
    st.tuples(st.lists(_PIECES, min_size=1, max_size=6).map("".join), st.integers(1, 3000)).map(lambda t: t[0] * t[1]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_HOSTILE_TEXT)
def test_fuzz_extract_and_score_never_raise_within_budget(text: str) -> None:
    answer = _timed(extract_answer, text)
    assert answer is None or isinstance(answer, str)
    assert isinstance(_timed(is_correct, text, "18"), bool)
    score = _timed(_task().score, text, ITEM)
    assert score.status in ("ok", "unparseable", "truncated")
    assert score.correct == (score.status == "ok" and score.extracted == "18")
    if score.status != "ok":
        assert score.reason
