"""The contract's values on the wire: JSON both ways with pydantic v2 `TypeAdapter`s.

Server and client share these adapters, so what one encodes the other decodes to the same
dataclasses, and the OpenAPI document's schemas are the ones that validate.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

__all__ = ["ValidationError", "adapter", "decode", "encode", "field_errors"]


@cache
def adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def encode(annotation: Any, value: Any) -> bytes:
    return adapter(annotation).dump_json(value)


def decode(annotation: Any, data: bytes | str) -> Any:
    return adapter(annotation).validate_json(data)


def field_errors(
    error: ValidationError, prefix: tuple[str | int, ...] = ()
) -> list[dict[str, Any]]:
    """One entry per field for a 422 problem's `errors`: where (a JSON pointer) and what."""
    return [
        {
            "pointer": "/" + "/".join(str(part) for part in (*prefix, *item["loc"])),
            "detail": item["msg"],
            "type": item["type"],
        }
        for item in error.errors(include_url=False, include_input=False)
    ]
