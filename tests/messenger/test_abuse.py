"""Bad frames, floods, foreign origins and too many sockets: refused, and nobody else suffers."""

from __future__ import annotations

import json

import pytest

from portal.messenger import protocol as p
from tests.messenger.conftest import Chat, open_ws

pytestmark = pytest.mark.live_server  # websockets


@pytest.mark.parametrize(
    "raw, code",
    [
        ("this is not json", "bad_json"),
        ("[1, 2, 3]", "bad_frame"),
        ('{"no": "type"}', "bad_frame"),
        ('{"type": "launch_missiles"}', "unknown_type"),
        ('{"type": "accept", "conversation_id": 1}', "unknown_type"),  # an agent-only frame
        (json.dumps({"type": "message", "body": "x" * (p.MAX_FRAME_BYTES + 1)}), "too_large"),
        ('{"type": "message", "conversation_id": "one", "client_id": "c", "body": "x"}', "invalid"),
        ('{"type": "message", "conversation_id": 1, "body": "no client id"}', "invalid"),
    ],
)
async def test_each_kind_of_bad_frame_gets_an_error_and_the_socket_stays_open(
    chat: Chat, raw, code
):
    visitor, _ = await chat.visitor()
    await visitor.send_raw(raw)
    error = await visitor.expect("error")
    assert error["code"] == code and error["message"]
    await visitor.send("ping")
    await visitor.expect("pong")


async def test_a_message_that_is_too_long_names_its_client_id(chat: Chat):
    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(visitor, "hi")
    await visitor.send(
        "message", conversation_id=conversation_id, client_id="long", body="x" * (p.MAX_BODY + 1)
    )
    error = await visitor.expect("error")
    assert error == {
        "type": "error",
        "code": "invalid",
        "message": f'"body" may be at most {p.MAX_BODY} characters.',
        "client_id": "long",
    }


async def test_a_flood_is_slowed_then_closed_while_other_visitors_go_on(chat: Chat):
    bystander, _ = await chat.visitor()
    conversation_id = await chat.start(bystander, "I am behaving")
    flooder, _ = await chat.visitor()
    for _ in range(int(p.RATE_BURST) + p.MAX_STRIKES + 5):
        await flooder.send_raw("not json")
    assert await flooder.wait_closed() == p.CLOSE_BAD_FRAMES
    codes = {f["code"] for f in flooder.frames if f["type"] == "error"}
    assert codes == {"bad_json"} or "rate_limited" in codes

    await bystander.send(
        "message", conversation_id=conversation_id, client_id="ok", body="still here"
    )
    assert (await bystander.expect("ack", client_id="ok"))["id"] > 0


async def test_sending_faster_than_the_rate_gets_rate_limited_errors(chat: Chat):
    visitor, _ = await chat.visitor()
    for _ in range(int(p.RATE_BURST) + 3):
        await visitor.send("ping")
    error = await visitor.expect("error", code="rate_limited")
    assert "slow down" in error["message"]


async def test_a_foreign_origin_is_refused_and_an_allowed_site_is_let_in(chat: Chat):
    token = await chat.token()
    evil = await open_ws(chat.server.url, "/messenger/ws", origin="https://evil.example")
    assert await evil.wait_closed() == p.CLOSE_ORIGIN

    cookie = await chat.agent_cookie()
    agent = await open_ws(
        chat.server.url, "/agent/ws", origin="https://evil.example", cookie=cookie
    )
    assert await agent.wait_closed() == p.CLOSE_ORIGIN
    no_origin = await open_ws(chat.server.url, "/agent/ws", origin=None, cookie=cookie)
    assert await no_origin.wait_closed() == p.CLOSE_ORIGIN  # a cookie needs a page of ours

    await chat.server.settings_changed(chat.tenant, {"embed_origins": ["https://www.acme.example"]})
    allowed = await open_ws(chat.server.url, "/messenger/ws", origin="https://www.acme.example")
    await allowed.send("hello", token=token)
    assert (await allowed.expect("ready"))["role"] == "visitor"
    await allowed.close()

    # "Any site" lets any site's visitors in; never an agent from another site.
    await chat.server.settings_changed(chat.tenant, {"embed_any_site": True})
    anywhere = await open_ws(chat.server.url, "/messenger/ws", origin="https://evil.example")
    await anywhere.send("hello", token=token)
    assert (await anywhere.expect("ready"))["role"] == "visitor"
    await anywhere.close()
    agent = await open_ws(
        chat.server.url, "/agent/ws", origin="https://evil.example", cookie=cookie
    )
    assert await agent.wait_closed() == p.CLOSE_ORIGIN


async def test_too_many_sockets_from_one_address_are_refused(chat: Chat, settings):
    # The server fixture allows the default per-address limit; fill it and one more.
    limit = settings.ws_max_per_ip_count
    sockets = [await open_ws(chat.server.url, "/messenger/ws") for _ in range(limit)]
    extra = await open_ws(chat.server.url, "/messenger/ws")
    assert await extra.wait_closed() == p.CLOSE_TOO_MANY
    for ws in sockets:
        await ws.close()
    again = await open_ws(chat.server.url, "/messenger/ws")
    await again.send("hello", token=await chat.token())
    await again.expect("ready")
    await again.close()


async def test_an_unknown_host_gets_no_socket(chat: Chat):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        await open_ws(chat.server.url, "/messenger/ws", host="nobody.portal.test")


async def test_a_failure_on_our_side_is_an_error_frame_and_the_socket_lives_on(chat: Chat):
    import sqlalchemy as sa

    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(visitor, "hello")
    async with chat.server.core.engine.begin() as conn:  # the database loses a table
        await conn.execute(sa.text("ALTER TABLE chat_messages RENAME TO chat_messages_gone"))
    await visitor.send("message", conversation_id=conversation_id, client_id="x1", body="lost?")
    error = await visitor.expect("error")
    assert error["code"] == "server_error" and error["client_id"] == "x1"
    await visitor.send("ping")
    await visitor.expect("pong")

    async with chat.server.core.engine.begin() as conn:  # it is back: so is the chat
        await conn.execute(sa.text("ALTER TABLE chat_messages_gone RENAME TO chat_messages"))
    await visitor.send("message", conversation_id=conversation_id, client_id="x1", body="lost?")
    assert (await visitor.expect("ack", client_id="x1"))["id"] > 0


async def test_no_new_chats_when_the_tenant_switched_chat_off(chat: Chat):
    await chat.server.settings_changed(chat.tenant, {"chat_enabled": False})
    visitor, _ = await chat.visitor()
    await visitor.send("start", client_id="s1", body="hello?")
    error = await visitor.expect("error")
    assert error["code"] == "not_allowed" and error["client_id"] == "s1"
    assert await chat.server.core.chat.list_conversations(chat.tenant.id) == []
