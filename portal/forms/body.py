"""Reading a submission's body: urlencoded, multipart (with files) or JSON, as lists of strings."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from portal import jsonsafe
from portal.attachments import Limits, Upload
from portal.core.contract import Form
from portal.i18n import gettext

MAX_JSON_BYTES = 1024 * 1024
MAX_TEXT_PART = 256 * 1024  # the largest non-file multipart field (description is 20,000 chars)


class BodyError(Exception):
    """The request body cannot be read; `status` is the HTTP status to answer with."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def check_length(request: Request, maximum: int) -> None:
    """BodyError(413) when the declared length is not a number or exceeds `maximum`."""
    raw = request.headers.get("content-length")
    if raw is not None and (not raw.isdigit() or int(raw) > maximum):
        raise BodyError(413)


async def read_form(
    request: Request, form: Form, limits: Limits
) -> tuple[dict[str, list[str]], list[Upload]]:
    """Text values (name -> list of values) and uploads of a urlencoded or multipart body."""
    # (The body's size is capped while it streams in: portal.bodylimit, by files_cap.)
    file_inputs = 1 + sum(1 for f in form.fields if f.type == "file")
    try:
        data: FormData = await request.form(
            max_files=limits.max_count * 2 + file_inputs + 5,
            max_fields=200 + 2 * sum(len(f.options) for f in form.fields),
            max_part_size=MAX_TEXT_PART,
        )
    except HTTPException as exc:  # a malformed body, or too many parts
        raise BodyError(400) from exc
    values: dict[str, list[str]] = {}
    uploads: list[Upload] = []
    try:
        for key, value in data.multi_items():
            if isinstance(value, UploadFile):
                if not value.filename and not value.size:
                    continue  # a file input left empty
                content = await value.read(limits.max_bytes + 1)
                uploads.append(Upload(key, value.filename or "file", content))
            else:
                values.setdefault(key, []).append(value)
    finally:
        await data.close()
    return values, uploads


def _as_strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return ["on"] if value else []
    if isinstance(value, int | float | str):
        return [str(value)]
    if isinstance(value, list):
        return [s for item in value if not isinstance(item, list | dict) for s in _as_strings(item)]
    return []


async def read_json(request: Request) -> dict[str, list[str]]:
    """A JSON object's members as lists of strings (true -> "on", lists stay lists)."""
    check_length(request, MAX_JSON_BYTES)
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise BodyError(413)
    try:
        payload = jsonsafe.loads(body or b"{}")
    except jsonsafe.JSONError as exc:
        raise BodyError(400) from exc
    if not isinstance(payload, dict):
        raise BodyError(400)
    # (A JSON object's keys are strings already; most values are too.)
    return {
        key: [value] if type(value) is str else _as_strings(value) for key, value in payload.items()
    }


def first(data: dict[str, list[str]], name: str) -> str:
    """The first value sent for `name`, or ""."""
    values = data.get(name) or []
    return values[0] if values else ""


def body_message(status: int) -> str:
    """What a visitor is told when a body cannot be read (BodyError's status)."""
    if status == 413:
        return gettext("The files are too large to send together. Send fewer or smaller files.")
    return gettext("The form could not be read. Reload the page and try again.")
