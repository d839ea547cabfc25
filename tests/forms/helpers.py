"""Helpers for the web form tests: read hidden inputs, fill in and send the page form."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)
VALID = {
    "name": "Kari Nordmann",
    "email": "kari@example.com",
    "subject": "The printer is on fire",
    "description": "It started this morning.\nPlease help.",
    "priority": "high",
}


def hidden(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in HIDDEN_RE.findall(page)}


def field_error(page: str, key: str) -> str:
    match = re.search(rf'<p class="error" id="f-{re.escape(key)}-error">(.*?)</p>', page, re.S)
    assert match, f"no error for {key!r} on the page"
    return html.unescape(match.group(1))


def field_errors(page: str) -> dict[str, str]:
    found = re.findall(r'<p class="error" id="f-(.+?)-error">(.*?)</p>', page, re.S)
    return {key: html.unescape(message) for key, message in found}


async def open_form(client: httpx.AsyncClient, form_id: int, **params: str) -> dict[str, str]:
    page = await client.get(f"/forms/{form_id}", params=params)
    assert page.status_code == 200, page.text
    return hidden(page.text)


async def send_form(
    client: httpx.AsyncClient,
    form_id: int,
    values: dict[str, Any] | None = None,
    *,
    tokens: dict[str, str] | None = None,
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Open the page (unless `tokens` are given), then post it with `values` (VALID by default)."""
    if tokens is None:
        tokens = await open_form(client, form_id, **(params or {}))
    data = {**tokens, **(VALID if values is None else values)}
    return await client.post(
        f"/forms/{form_id}", data=data, files=files, params=params, headers=headers
    )


async def api_token(client: httpx.AsyncClient, form_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/forms/{form_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def api_send(
    client: httpx.AsyncClient, form_id: int, values: dict[str, Any], **kwargs: Any
) -> httpx.Response:
    return await client.post(f"/api/forms/{form_id}/submissions", json=values, **kwargs)
