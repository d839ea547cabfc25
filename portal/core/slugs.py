"""URL slugs that keep non-Latin scripts readable."""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)


def slugify(text: str, max_length: int = 80) -> str:
    """Lower-case words joined by hyphens; Han, Kana and other letters are kept as they are."""
    text = unicodedata.normalize("NFKC", text).lower()
    slug = _NOT_WORD.sub("-", text).replace("_", "-").strip("-")
    slug = re.sub("-{2,}", "-", slug)
    return slug[:max_length].rstrip("-") or "untitled"
