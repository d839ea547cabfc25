"""Search hit snippets: a window of the article's text around the first match, terms marked."""

from __future__ import annotations

import html
import re
from functools import lru_cache

from whoosh.analysis import Analyzer

from portal.kb.analysis import ARABIC_MARKS, CJK_CHARS, arabic_locator

SNIPPET_SOURCE_CHARS = 4000
SNIPPET_WIDTH = 160

_WORD_CHAR = re.compile(rf"[^\W{CJK_CHARS}]|[{ARABIC_MARKS}]")
_CJK_START = re.compile(rf"[{CJK_CHARS}]")


@lru_cache(maxsize=1024)
def _locators(terms: frozenset[str]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """Regexes for the (analysed) terms in raw text: CJK bigrams, and candidate words."""
    by_length = sorted(terms, key=len, reverse=True)
    bigrams = [re.escape(term) for term in by_length if _CJK_START.match(term)]
    # Stems are (nearly) prefixes of their words: `happi` <- `happy`, `reset` <- `resets`.
    prefixes = [
        arabic_locator(term) or re.escape(term[:-1] if len(term) > 3 else term)
        for term in by_length
        if not _CJK_START.match(term)
    ]
    return (
        # A lookahead, so that overlapping bigrams (パス, スワ, ...) are all found.
        re.compile(f"(?=({'|'.join(bigrams)}))") if bigrams else None,
        re.compile(f"(?:{'|'.join(prefixes)})[\\w{ARABIC_MARKS}]*", re.I) if prefixes else None,
    )


def _term_spans(
    text: str,
    terms: frozenset[str],
    analyzer: Analyzer,
    start: int = 0,
    end: int | None = None,
    first: bool = False,
) -> list[tuple[int, int]]:
    """Sorted (start, end) spans of `text[start:end]` whose analysed form is one of `terms`."""
    end = len(text) if end is None else end
    bigrams, words = _locators(terms)
    spans: list[tuple[int, int]] = []
    if bigrams is not None:
        for match in bigrams.finditer(text, start, end):
            at = match.start()
            spans.append((at, min(end, at + len(match.group(1)))))
            if first:
                break
    if words is not None:
        for candidates, match in enumerate(words.finditer(text, start, end)):
            at = match.start()
            if (first and spans and at > spans[0][0]) or candidates >= 200:
                break
            if at and _WORD_CHAR.match(text, at - 1):
                continue  # the middle of a longer word
            found = match.group()
            if found.lower() in terms:
                spans.append((at, match.end()))
            else:
                spans.extend(
                    (at + token.startchar, at + token.endchar)
                    for token in analyzer(found, chars=True)
                    if token.text in terms
                )
            if first and spans:
                break
    spans.sort()
    return spans


def build_snippet(
    text: str, terms: frozenset[str], analyzer: Analyzer, width: int = SNIPPET_WIDTH
) -> str:
    """HTML: an escaped window of `text` around the first term match, terms in `<mark>`."""
    text = text[:SNIPPET_SOURCE_CHARS]
    found = _term_spans(text, terms, analyzer, first=True) if terms else []
    position = found[0][0] if found else 0
    start = 0
    if position > width // 3:
        start = position - width // 3
        space = text.find(" ", start, position)
        if space != -1:
            start = space + 1
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start + width * 2 // 3, end)
        if space != -1:
            end = space
    merged: list[list[int]] = []
    for span_start, span_end in _term_spans(text, terms, analyzer, start, end) if terms else []:
        if merged and span_start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span_end)
        else:
            merged.append([span_start, span_end])
    out = ["… "] if start > 0 else []
    previous = start
    for span_start, span_end in merged:
        out.append(html.escape(text[previous:span_start]))
        out.append(f"<mark>{html.escape(text[span_start:span_end])}</mark>")
        previous = span_end
    out.append(html.escape(text[previous:end]))
    if end < len(text):
        out.append(" …")
    return "".join(out)
