"""Signal libraries: the discrete signals an Advisor can send.

A discrete Advisor picks an index into a :class:`SignalLibrary`; the game only
ever sees the signal *text*, so discrete and free-text Advisors play the same
game.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from bpa_gym.errors import ConfigError

#: Default math library. Index 0 is silence (no advice), so "say nothing" is
#: always an action and the no-signal baseline is part of the action space.
MATH_SIGNALS: tuple[str, ...] = (
    "",
    "Work step by step: write down each intermediate quantity, then give the final number.",
    "First identify exactly what the question asks for, then compute only that.",
    "Translate each sentence into an equation, then solve the equations in order.",
    "Watch the units and rates: convert every quantity to the same unit before combining them.",
    "Double-check every arithmetic step and recompute the total at the end.",
    "Not every number in the question is needed: ignore the distractors.",
    "Convert percentages and fractions to decimals before multiplying.",
    "Work backwards from the quantity asked for to the quantities you need.",
    "Finish with a final line of the form 'The answer is N', where N is a single number.",
)

#: Default code library (HumanEval-style tasks). Index 0 is silence.
CODE_SIGNALS: tuple[str, ...] = (
    "",
    "Read the docstring examples carefully and make sure your function reproduces them exactly.",
    "Handle edge cases first: empty inputs, zero, negative numbers and single elements.",
    "Write the simplest correct solution; prefer clear loops over clever one-liners.",
    "Return the value; do not print it.",
    "Check the expected return type in the examples (list, int, bool, string) and match it.",
    "Trace your code by hand on each docstring example before answering.",
    "Use only the standard library and keep the given function signature unchanged.",
    "Answer with one complete Python code block containing the whole function.",
)


@dataclass(frozen=True)
class SignalLibrary:
    """A finite, ordered set of signal texts (the discrete action set).

    Example:
        >>> lib = SignalLibrary(["", "Think step by step."])
        >>> len(lib), lib[1]
        (2, 'Think step by step.')
    """

    signals: tuple[str, ...]

    def __init__(self, signals: Sequence[str]) -> None:
        if isinstance(signals, str):
            raise ConfigError("signals must be a list of strings, not one string")
        sigs = tuple(signals)
        if len(sigs) < 2:
            raise ConfigError(f"a signal library needs at least 2 signals, got {len(sigs)}")
        bad = [i for i, s in enumerate(sigs) if not isinstance(s, str)]
        if bad:
            raise ConfigError(f"signals must be strings; entries {bad} are not")
        dup = {s for s in sigs if sigs.count(s) > 1}
        if dup:
            raise ConfigError(f"signals must be distinct; duplicated: {sorted(dup)!r}")
        object.__setattr__(self, "signals", sigs)

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, index: int) -> str:
        if not 0 <= int(index) < len(self.signals):
            raise ConfigError(f"signal index {index} is outside 0..{len(self.signals) - 1}")
        return self.signals[int(index)]

    def __iter__(self):
        return iter(self.signals)
