"""Markdown (and inline HTML) reduced to one line of plain text, for indexing and snippets."""

from __future__ import annotations

import html
import re

_FENCE = re.compile(r"^[ \t]*(?:```|~~~).*$", re.M)
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->", re.S)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])")
_REF_DEF = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S.*$", re.M)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]*|[ \t]+#+[ \t]*$", re.M)
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+", re.M)
_RULE = re.compile(r"^[ \t]*(?:[-*_=][ \t]*){3,}$|^[ \t|:-]*-{3,}[ \t|:-]*$", re.M)
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+", re.M)
_STAR_EMPHASIS = re.compile(r"(\*{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)(_{1,3})(?=\S)(.+?)(?<=\S)\1(?!\w)")


def markdown_to_text(markdown: str) -> str:
    """Roughly strip Markdown (and inline HTML) down to one line of plain text."""
    text = _FENCE.sub(" ", markdown)
    text = _SCRIPT.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_DEF.sub(" ", text)
    text = _HEADING.sub(" ", text)
    text = _QUOTE.sub(" ", text)
    text = _RULE.sub(" ", text)
    text = _BULLET.sub(" ", text)
    text = _STAR_EMPHASIS.sub(r"\2", text)
    text = _UNDERSCORE_EMPHASIS.sub(r"\2", text)
    text = text.replace("`", "").replace("|", " ")
    return " ".join(html.unescape(text).split())
