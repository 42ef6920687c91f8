"""The GSM8K answer extractor and scorer on real-world response formats."""

from __future__ import annotations

import pytest

from bpa_gym.errors import ConfigError
from bpa_gym.tasks.gsm8k import extract_answer, gold_from_solution, is_correct, normalize_number

# (response, expected extract_answer output)
EXTRACT_CASES: list[tuple[str, str | None]] = [
    # --- GSM8K reference solutions (#### marker, calculator annotations) ---
    (
        "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
        "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer’s market.\n#### 18",
        "18",
    ),
    ("It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total amount of fabric is 2+1=<<2+1=3>>3 bolts\n#### 3", "3"),
    ("The house cost 80,000+50,000=$<<80000+50000=130000>>130,000\n#### 70,000", "70000"),
    ("#### -12", "-12"),
    # --- chain of thought ending in "The answer is N." ---
    ("She sells 9 eggs at $2 each, so 9 * 2 = 18. The answer is 18.", "18"),
    ("Let's think step by step. 5 + 7 = 12. So the answer is 12", "12"),
    ("The answer is: 42", "42"),
    ("Therefore, the final answer is 1,080.", "1080"),
    ("The correct answer is 64 dollars.", "64"),
    ("The answer to the question is 42.", "42"),
    ("The answer would be 7 hours.", "7"),
    # --- LaTeX ---
    (r"\boxed{18}", "18"),
    (r"So the total is $\boxed{1,234}$.", "1234"),
    (r"The final answer is $\boxed{\frac{3}{4}}$", "0.75"),
    (r"Final Answer: The final answer is $\boxed{18}$. I hope it is correct.", "18"),
    (r"\[ \boxed{\$18} \]", "18"),
    (r"\boxed{18 \text{ eggs}}", "18"),
    (r"$\boxed{\text{18}}$", "18"),
    (r"\boxed{{1{,}500}}", "1500"),
    (r"The answer is $\dfrac{1}{8}$.", "0.125"),
    (r"The answer is \$25\%.", "25"),
    # --- "Answer:" / "A:" markers, markdown ---
    ("**Answer:** $1,234.50", "1234.5"),
    ("**Answer**: 9", "9"),
    ("The answer is **42**.", "42"),
    ("**Final Answer**\n\n42", "42"),
    ("### Final Answer\nThe final answer is 250.", "250"),
    ("A: 7", "7"),
    ("Q: How many apples?\nA: 7", "7"),
    ("Answer: 25%", "25"),
    ("answer: x = 5", "5"),
    ("FINAL ANSWER: 3", "3"),
    # --- numbers: fractions, negatives, decimals, currency, units ---
    ("The answer is 3/4.", "0.75"),
    ("It takes 1 1/2 hours in total.", "1.5"),
    ("The answer is -5.", "-5"),
    ("The temperature dropped to −7 degrees.", "-7"),
    ("He lost $-5 on the trade, so the answer is -$5.", "-5"),
    ("The answer is 18.00", "18"),
    ("The answer is $2.50.", "2.5"),
    ("The answer is .5 liters.", "0.5"),
    ("The answer is 1e3.", "1000"),
    ("She earns €1,200 per month.", "1200"),
    ("The answer is 18 eggs.", "18"),
    ("The distance is 5 km.", "5"),
    ("The answer is 18 dollars", "18"),
    ("The answer is approximately 33.33 meters.", "33.33"),
    # --- marker + explanation: the last explicit marker wins over later numbers ---
    ("The answer is 5 because 2 + 3 = 5 and 10 is too many.", "5"),
    ("The answer is 18. Check: 9*2 = 18", "18"),
    ("The answer is 18. (3 more than 15)", "18"),
    ("The answer is 9 * 2 = 18.", "18"),
    ("The answer is 2 + 3 = 5 + 1 = 6", "6"),
    ("Answer: 12\nWait, I made a mistake. 7 + 7 = 14. The answer is 14.", "14"),
    ("Answer: 12 ... no. Final answer: 15. Sanity check: 15 - 3 = 12.", "15"),
    ("The answer isn't 5; the answer is 6.", "6"),
    # --- a marker with no number after it does not count ---
    ("To find the answer: first, 16 - 3 - 4 = 9. Then 9 * 2 = 18.", "18"),
    ("Answer: Let's think. Janet has 16 eggs, eats 3 and bakes 4, so 9 * 2 = 18 dollars.", "18"),
    # --- no marker: last number ---
    ("She has 3 apples, then buys 5 more, ending with 8.", "8"),
    ("Total = 1,000,000", "1000000"),
    ("Hmm... 18", "18"),
    ("- 5 apples", "5"),  # a bullet, not a minus sign
    # --- nothing parseable ---
    ("I don't know.", None),
    ("", None),
    ("The answer is unclear.", None),
    (r"\boxed{x + y}", None),
    # --- SmolLM-style rambling ---
    (
        "To solve this problem, we need to find out how many eggs Janet sells. She has 16 eggs. She eats 3 "
        "and uses 4 for muffins. So she has 16 - 3 - 4 = 9 eggs left. She sells each egg for $2, so she makes "
        "9 x $2 = $18. The answer is 18.\n\nQuestion: A robe takes 2 bolts of blue fiber and half that much "
        "white fiber. How many bolts in total does it take?\nAnswer: 3",
        "18",
    ),
    (
        "Janet's ducks lay 16 eggs per day.\n1. She eats 3.\n2. She bakes 4.\n3. 16 - 3 - 4 = 9\n"
        "4. 9 * 2 = 18\n\nQ: Another question with 5 apples?\nA: 5",
        "18",
    ),
    ("The answer is 18. The answer is 18. The answer is 18. The answer is", "18"),
    ("Step 1: 16 - 3 = 13\nStep 2: 13 - 4 = 9\nStep 3: 9 * 2 = 18\nSo, Janet makes $18 every day.", "18"),
]


@pytest.mark.parametrize("response,expected", EXTRACT_CASES)
def test_extract_answer(response: str, expected: str | None) -> None:
    assert extract_answer(response) == expected


def test_there_are_many_cases() -> None:
    assert len(EXTRACT_CASES) >= 40


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1,234", "1234"),
        ("1, 2", "1"),
        ("$18.00", "18"),
        ("2.50", "2.5"),
        ("25%", "25"),
        ("-7", "-7"),
        ("3/4", "0.75"),
        ("1 1/2", "1.5"),
        (r"\frac{1}{3}", repr(1 / 3)),
        (r"\$1,000", "1000"),
        ("18 eggs.", "18"),
        ("  **42**  ", "42"),
        ("0.10", "0.1"),
        ("-0", "0"),
        ("1,450,000", "1450000"),
        ("abc", None),
        ("", None),
    ],
)
def test_normalize_number(text: str, expected: str | None) -> None:
    assert normalize_number(text) == expected


@pytest.mark.parametrize(
    "response,gold,expected",
    [
        ("The answer is 18.", "18", True),
        ("The answer is $18.00", "18", True),
        ("So the total is 1450000.", "1,450,000", True),
        ("The answer is 1,200", "1200", True),
        ("The answer is 1450001.", "1,450,000", False),  # no loose tolerance on large numbers
        ("The answer is 17.", "18", False),
        ("The answer is 18.5", "18", False),
        ("The answer is 0.75", "3/4", True),
        ("The answer is 1/3", r"\frac{1}{3}", True),
        ("I am not sure.", "18", False),
        ("The answer is -3.", "-3", True),
        ("The answer is 3.", "-3", False),
    ],
)
def test_is_correct(response: str, gold: str, expected: bool) -> None:
    assert is_correct(response, gold) is expected


def test_is_correct_rejects_gold_without_number() -> None:
    with pytest.raises(ConfigError, match="holds no readable number"):
        is_correct("The answer is 3.", "three")


def test_gold_from_solution() -> None:
    assert gold_from_solution("2 + 2 = <<2+2=4>>4\n#### 4") == "4"
    assert gold_from_solution("...\n#### 2,125") == "2125"
    with pytest.raises(ConfigError, match="####"):
        gold_from_solution("The answer is 4.")
    with pytest.raises(ConfigError, match="no number"):
        gold_from_solution("#### four")


def test_non_string_input_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="string"):
        extract_answer(None)  # type: ignore[arg-type]


def test_pathological_input_is_fast() -> None:
    import time

    start = time.perf_counter()
    for text in ("1 " * 20000, "answer: " * 5000, "9 * " * 5000 + "=", "- " * 10000, "a" * 100000):
        extract_answer(text)
    assert time.perf_counter() - start < 5
