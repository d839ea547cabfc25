"""JSON from strangers: parsed only when it nests no deeper than a few dozen levels.

Python's parser recurses once per level, so `[` nested a few thousand deep raises
RecursionError (a 500 and a traceback) instead of a parse error. No payload of ours nests deeper
than a handful of levels; refusing deep input up front is cheaper than catching the recursion.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class JSONError(ValueError):
    """Not JSON, or JSON nested too deep; the message says which, for the client."""


def nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in `text`, brackets inside strings ignored."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON, refusing (JSONError) bad JSON and nesting deeper than `max_depth`."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JSONError("The body must be JSON in UTF-8.") from None
    # Counting brackets runs at C speed; only text with many of them needs the real scan.
    if data.count("[") + data.count("{") > max_depth and nesting(data) > max_depth:
        raise JSONError(f"JSON may nest at most {max_depth} levels deep.")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise JSONError("The body must be valid JSON.") from None
