"""Worst-case time of the GSM8K scorer per kB of hostile Receiver output.

Runs :func:`bpa_gym.tasks.gsm8k.read_answer` on the hostile inputs of issue 8
(nested arithmetic, huge exponents and digit strings, repeated ``\\boxed{`` and
``answer = `` ...) at sizes from 1 kB to 1 MB and prints ms per kB for each;
a linear scorer shows a flat ms/kB column (responses past
``MAX_RESPONSE_CHARS`` are cut, so the largest sizes cost no more).

    python benchmarks/scorer_worst_case.py
"""

from __future__ import annotations

import time

from bpa_gym.tasks.gsm8k import MAX_RESPONSE_CHARS, read_answer

UNITS: dict[str, str] = {
    "nested_plus": " + 1",
    "boxed": "\\boxed{",
    "answer_eq": "answer = ",
    "answer_to": "the answer to ",
    "answer_is_num": "The answer is 1 + ",
    "exponent": "1e999999999 ",
    "digits": "9",
    "question_hdr": "Question: 1\n",
    "calculator": "<<",
    "frac": "\\frac{",
    "dashes": "- ",
    "mixed": "1 1/",
    "spaces": " ",
    "text_wrap": "\\text{",
}
SIZES_KB = (1, 10, 100, 1000)


def main() -> None:
    print(f"MAX_RESPONSE_CHARS = {MAX_RESPONSE_CHARS}")
    print(f"{'input':<15}" + "".join(f"{f'{kb} kB':>12}" for kb in SIZES_KB) + "   (ms per kB)")
    worst = (0.0, "")
    for name, unit in UNITS.items():
        row = []
        for kb in SIZES_KB:
            n = kb * 1000
            text = ("The answer is 1" if name == "nested_plus" else "") + unit * (n // len(unit) + 1)
            text = text[:n]
            reps = max(1, 20 // kb)
            start = time.perf_counter()
            for _ in range(reps):
                read_answer(text)
            ms_per_kb = (time.perf_counter() - start) / reps * 1000 / kb
            row.append(ms_per_kb)
            worst = max(worst, (ms_per_kb, f"{name} at {kb} kB"))
        print(f"{name:<15}" + "".join(f"{v:12.3f}" for v in row))
    print(f"worst: {worst[0]:.3f} ms/kB ({worst[1]})")


if __name__ == "__main__":
    main()
