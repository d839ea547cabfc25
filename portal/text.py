"""Text from strangers: the characters that change how it looks without being seen.

Bidi controls (U+202E RIGHT-TO-LEFT OVERRIDE shows "invoice\u202efdp.bat" as "invoicetab.pdf"),
zero-width and other format characters (category Cf) let one string pass for another; control
characters (Cc, with CR and LF) and the line and paragraph separators (Zl, Zp) break a one-line
value such as a mail header or a log line. Names, file names and sender names go through here.
"""

from __future__ import annotations

import unicodedata

FORMAT = "Cf"
INVISIBLE_CATEGORIES = frozenset({"Cc", FORMAT, "Zl", "Zp"})


def is_invisible(ch: str) -> bool:
    """A control, format (bidi, zero-width) or line/paragraph separator character."""
    return unicodedata.category(ch) in INVISIBLE_CATEGORIES


def strip_format(text: str) -> str:
    """`text` without format characters (bidi controls, zero-width characters)."""
    if text.isprintable():  # (no Cc, Cf, Zl or Zp in it: checked in C, not per character)
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != FORMAT)


def one_line(text: str) -> str:
    """`text` as one line: no format characters, other invisible ones and runs of white space
    as one space."""
    if text.isprintable():
        return " ".join(text.split())
    return " ".join("".join(" " if is_invisible(ch) else ch for ch in strip_format(text)).split())


def clean_name(value: str) -> str:
    """A person's name as typed, on one line, without control, bidi or other format characters
    (they reorder or hide what an agent is shown); "" for none. Length is the caller's to check."""
    return one_line(value)
