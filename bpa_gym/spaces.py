"""Text spaces whose character sets really cover the data.

Gymnasium's default :class:`~gymnasium.spaces.Text` charset is alphanumeric
only, so a GSM8K question ("Janet’s ducks lay 16 eggs... $2") would not be a
member of it.  These helpers build charsets from the data itself.
"""

from __future__ import annotations

import string
import sys
from functools import lru_cache
from typing import Iterable

from gymnasium.spaces import Text

#: Printable ASCII plus newline and tab.
ASCII_CHARSET = frozenset(string.printable)


@lru_cache(maxsize=1)
def printable_unicode_charset() -> frozenset[str]:
    """Every printable character of the Basic Multilingual Plane, plus ``\\n`` and ``\\t``.

    Used for free-text Advisor signals: a language-model Advisor can emit any
    of these, so the action space must contain them.

    Example:
        >>> cs = printable_unicode_charset()
        >>> {"a", "’", "€", "\\n", "é"} <= cs
        True
    """
    chars = {chr(c) for c in range(min(sys.maxunicode, 0xFFFF) + 1) if chr(c).isprintable()}
    return frozenset(chars | {"\n", "\t"})


def text_space_for(texts: Iterable[str], *, min_length: int = 0, max_length: int | None = None) -> Text:
    """A :class:`Text` space containing every string in ``texts``.

    The charset is printable ASCII plus every character that occurs in
    ``texts``; ``max_length`` defaults to the longest text.

    Example:
        >>> sp = text_space_for(["Janet’s ducks: $2"])
        >>> sp.contains("Janet’s ducks: $2")
        True
    """
    texts = list(texts)
    chars = set(ASCII_CHARSET)
    longest = 0
    for t in texts:
        chars.update(t)
        longest = max(longest, len(t))
    return Text(max_length=max_length or max(longest, 1), min_length=min_length, charset=frozenset(chars))
