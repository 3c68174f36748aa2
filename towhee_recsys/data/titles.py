"""Split MovieLens titles into name and year, and turn names into word tokens."""

from __future__ import annotations

import re
import unicodedata

# A year is a parenthesised group of exactly four digits at the very end of the title.
# The lazy name group lets earlier groups such as "(Se7en)" stay part of the name.
_TITLE_WITH_YEAR = re.compile(r"(?P<name>.*?)\s*\((?P<year>\d{4})\)\s*", re.DOTALL)

# Letters and digits of any script. Unlike \w, this excludes the underscore.
_WORD = re.compile(r"[^\W_]+")


def split_title(title: str) -> tuple[str, int | None]:
    """Split a published title such as ``"Seven (Se7en) (1995)"`` into name and year.

    Only a final ``(dddd)`` group counts as the year, so ``"Film (2000s)"`` and
    ``"Untitled"`` have no year. Whitespace around the name is stripped. A title
    that is only a year, such as ``"(1995)"``, is returned whole as the name with no year.
    """
    match = _TITLE_WITH_YEAR.fullmatch(title)
    if match is None or not match["name"].strip():
        return title.strip(), None
    return match["name"].strip(), int(match["year"])


def title_words(name: str) -> list[str]:
    """Return the lowercased word tokens of a movie name, in order.

    Tokens are runs of Unicode letters and digits, so ``"Misérables, Les"`` gives
    ``["misérables", "les"]``. The name is NFC-normalized first, so a decomposed
    accent does not split a word in two.
    """
    normalized = unicodedata.normalize("NFC", name).lower()
    return _WORD.findall(normalized)
