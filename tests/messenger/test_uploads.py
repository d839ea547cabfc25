"""Files in chat: uploaded with the visitor's token, checked by content, fetched by signed link."""

from __future__ import annotations

import httpx
import pytest

from tests.messenger.conftest import HOST, Chat

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


async def _upload(chat: Chat, token: str, name: str, data: bytes) -> httpx.Response:
    async with chat.server.client(HOST) as client:
        return await client.post(
            "/messenger/uploads",
            files={"file": (name, data, "application/octet-stream")},
            headers={"Authorization": f"Bearer {token}"},
        )


@pytest.mark.live_server  # websockets
async def test_a_file_travels_with_a_message_and_is_fetched_by_its_link(chat: Chat):
    token = await chat.token()
    visitor, _ = await chat.visitor(token)
    conversation_id = await chat.start(visitor, "see the screenshot")
    uploaded = await _upload(chat, token, "../../screen shot.png", PNG)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["filename"] == "screen shot.png"  # no path left

    await visitor.send(
        "message",
        conversation_id=conversation_id,
        client_id="f1",
        body="",
        attachments=[uploaded.json()["upload"]],
    )
    await visitor.expect("ack", client_id="f1")
    frame = await visitor.expect("message")
    while not frame["message"]["attachments"]:
        frame = await visitor.expect("message")
    link = frame["message"]["attachments"][0]
    assert link["filename"] == "screen shot.png" and link["size"] == len(PNG)
    async with chat.server.client(HOST) as client:
        fetched = await client.get(link["url"])
        assert fetched.status_code == 200
        assert fetched.content == PNG
        assert fetched.headers["content-disposition"].startswith("attachment")
        forged = await client.get(link["url"].split("?")[0] + "?sig=forged")
        assert forged.status_code == 404


async def test_uploads_are_checked_by_content_and_size(chat: Chat):
    token = await chat.token()
    fake = await _upload(chat, token, "invoice.pdf", b"MZ\x90\x00 this is a windows program")
    assert fake.status_code == 415 and "file type" in fake.json()["error"]
    await chat.server.settings_changed(chat.tenant, {"attachment_max_bytes": 10})
    big = await _upload(chat, await chat.token(), "big.png", PNG)
    assert big.status_code == 413
    nobody = await _upload(chat, "not-a-token", "a.png", PNG)
    assert nobody.status_code == 401


@pytest.mark.live_server  # websockets
async def test_an_upload_id_works_only_for_its_uploader(chat: Chat):
    owner_token = await chat.token()
    uploaded = (await _upload(chat, owner_token, "a.png", PNG)).json()["upload"]
    thief, _ = await chat.visitor()
    conversation_id = await chat.start(thief, "mine")
    await thief.send(
        "message", conversation_id=conversation_id, client_id="t1", body="x", attachments=[uploaded]
    )
    error = await thief.expect("error")
    assert error["code"] == "invalid" and error["client_id"] == "t1"
