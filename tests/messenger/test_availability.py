"""Nobody there: outside business hours, no agent online, or no answer in time -> a ticket."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from starlette.routing import Router

from portal.core.contract import MessageDraft
from portal.hub import MemoryHub, Subscription
from portal.mail import Mailer
from portal.messenger.hours import (
    ChatSettings,
    ChatSettingsCache,
    HoursError,
    is_open,
    parse_hours,
)
from portal.messenger.routes import routes as messenger_routes
from portal.messenger.service import Messenger
from portal.security import Signer
from portal.urls import PathCache
from tests.messenger.conftest import Chat

pytestmark = pytest.mark.live_server  # websockets

# Monday 2026-11-30 10:00 in Oslo is 09:00 UTC.
MONDAY_MORNING_UTC = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
OSLO_OFFICE = {"timezone": "Europe/Oslo", "days": {"mon": ["08:00-12:00", "13:00-16:00"]}}


def test_business_hours_follow_the_tenants_time_zone():
    assert is_open(OSLO_OFFICE, MONDAY_MORNING_UTC)  # 10:00 in Oslo
    assert not is_open(OSLO_OFFICE, MONDAY_MORNING_UTC + timedelta(hours=2, minutes=30))  # lunch
    assert is_open(OSLO_OFFICE, MONDAY_MORNING_UTC + timedelta(hours=4))  # 14:00
    assert not is_open(OSLO_OFFICE, MONDAY_MORNING_UTC + timedelta(days=1))  # Tuesday: closed
    assert is_open(None) and is_open({})


async def test_chat_settings_are_parsed_once_per_version_of_a_tenants_settings(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    tenant = await core.tenants.update_tenant_settings(tenant.id, {"business_hours": OSLO_OFFICE})
    cache = ChatSettingsCache()
    settings = cache.get(tenant)
    assert cache.get(tenant) is settings  # the same tenant: parsed once
    assert settings.is_open(MONDAY_MORNING_UTC)
    assert not settings.is_open(MONDAY_MORNING_UTC + timedelta(days=1))
    # A changed tenant is a new Tenant (the resolver reloads it after `tenant.changed`).
    changed = await core.tenants.update_tenant_settings(
        tenant.id, {"business_hours": {"timezone": "UTC", "days": {"tue": ["00:00-24:00"]}}}
    )
    assert cache.get(changed).is_open(MONDAY_MORNING_UTC + timedelta(days=1))
    # A socket still holding the tenant of its handshake keeps what it had, as before.
    assert cache.get(tenant) == settings
    broken = ChatSettings.from_settings({"business_hours": {"days": {"mon": ["9 to 5"]}}})
    assert broken.is_open(MONDAY_MORNING_UTC + timedelta(days=1))  # broken: always open


@pytest.mark.parametrize(
    "hours, problem",
    [
        ({"timezone": "Mars/Olympus", "days": {}}, "unknown timezone"),
        ({"days": {"someday": ["09:00-17:00"]}}, "days are mon..sun"),
        ({"days": {"mon": ["9 to 5"]}}, "is not"),
        ({"days": {"mon": ["17:00-09:00"]}}, "ends before it starts"),
    ],
)
def test_malformed_business_hours_say_what_is_wrong(hours, problem):
    with pytest.raises(HoursError, match=problem):
        parse_hours(hours)


async def test_no_agent_online_with_an_email_makes_a_ticket_at_once(chat: Chat):
    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(
        visitor, "Is my order shipped?", name="Pat", email="pat@example.com"
    )
    notice = await visitor.expect("availability")
    assert notice["state"] == "offline" and notice["reason"] == "no_agents"
    assert notice["needs_email"] is False and notice["ticket"] is not None

    conversation = await chat.server.core.chat.get_conversation(chat.tenant.id, conversation_id)
    ticket = await chat.server.core.tickets.get_ticket(chat.tenant.id, conversation.ticket_id)
    assert ticket.requester_email == "pat@example.com"
    assert "Is my order shipped?" in (await _description(chat, ticket.id))

    # Written afterwards, it still reaches the request.
    await visitor.send("message", conversation_id=conversation_id, client_id="m2", body="Order 42")
    await visitor.expect("ack", client_id="m2")
    replies = await chat.server.core.tickets.list_replies(chat.tenant.id, ticket.id)
    assert any("Order 42" in r.body for r in replies)


async def test_without_an_email_the_visitor_is_asked_and_the_ticket_follows_it(chat: Chat):
    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(visitor, "Hello?")
    notice = await visitor.expect("availability")
    assert notice["needs_email"] is True and notice["ticket"] is None
    conversation = await chat.server.core.chat.get_conversation(chat.tenant.id, conversation_id)
    assert conversation.ticket_id is None

    await visitor.send("contact", conversation_id=conversation_id, email="not an email")
    assert (await visitor.expect("error"))["code"] == "invalid"
    await visitor.send("contact", conversation_id=conversation_id, email="Sam@Example.com")
    notice = await visitor.expect("availability")
    assert notice["ticket"] is not None and notice["needs_email"] is False
    conversation = await chat.server.core.chat.get_conversation(chat.tenant.id, conversation_id)
    ticket = await chat.server.core.tickets.get_ticket(chat.tenant.id, conversation.ticket_id)
    assert ticket.requester_email == "sam@example.com"
    assert "Hello?" in await _description(chat, ticket.id)


async def test_outside_business_hours_the_visitor_is_told_so_even_with_agents_online(chat: Chat):
    closed_all_week = {"timezone": "UTC", "days": {"mon": ["00:00-00:01"]}}
    await chat.server.settings_changed(chat.tenant, {"business_hours": closed_all_week})
    await chat.agent()
    visitor, _ = await chat.visitor()
    await chat.start(visitor, "Anyone?")
    notice = await visitor.expect("availability")
    assert notice["reason"] == "outside_hours"


async def test_with_an_agent_online_nobody_is_told_anything_at_first(chat: Chat):
    await chat.agent()
    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(visitor, "Hi")
    await visitor.send("ping")
    await visitor.expect("pong")
    assert not [f for f in visitor.frames if f["type"] == "availability"]
    conversation = await chat.server.core.chat.get_conversation(chat.tenant.id, conversation_id)
    assert conversation.ticket_id is None


async def test_an_unanswered_chat_is_told_so_once_and_becomes_a_ticket(core, settings):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    hub = MemoryHub()
    await hub.start()
    paths = PathCache(Router(messenger_routes))
    messenger = Messenger(core, hub, Mailer(settings), Signer(settings.secret_key), paths)
    waiting = await core.chat.start_conversation(
        tenant.id, visitor_id="v1", email="pat@example.com", subject="Help", idempotency_key="k1"
    )
    await core.chat.add_chat_message(
        tenant.id, waiting.id,
        MessageDraft(
            author_type="visitor", author_id=None, author_name="Pat", body="Help", client_id="c1",
        ),
    )  # fmt: skip
    answered = await core.chat.start_conversation(tenant.id, visitor_id="v2", idempotency_key="k2")
    agent = await core.tenants.create_agent(tenant.id, "a@acme.test", "Ada", "x")
    await core.chat.assign_conversation(tenant.id, answered.id, agent.id)

    channel = f"conv:{tenant.id}:{waiting.id}"

    async def frames_so_far(sub: Subscription) -> list[dict]:
        """What the hub brought before a marker published now (it keeps the order)."""
        await hub.publish(channel, {"type": "marker"})
        frames = []
        while (frame := await asyncio.wait_for(anext(sub), 5)) != {"type": "marker"}:
            frames.append(frame)
        return frames

    async with hub.subscription() as sub:
        await sub.add(channel)
        await messenger.sweep_unanswered()  # not yet past the timeout
        assert not [f for f in await frames_so_far(sub) if f["type"] == "availability"]
        timeout = ChatSettings.for_tenant(tenant).answer_timeout_s
        later = datetime.now(UTC) + timedelta(seconds=timeout + 1)
        await messenger.sweep_unanswered(now=later)
        await messenger.sweep_unanswered(now=later)  # told once only
        frames = await frames_so_far(sub)
    await hub.close()
    notices = [f for f in frames if f["type"] == "availability"]
    assert len(notices) == 1 and notices[0]["state"] == "no_answer"
    assert (await core.chat.get_conversation(tenant.id, waiting.id)).ticket_id is not None
    assert (await core.chat.get_conversation(tenant.id, answered.id)).ticket_id is None


async def _description(chat: Chat, ticket_id: int) -> str:
    replies = await chat.server.core.tickets.list_replies(chat.tenant.id, ticket_id)
    return replies[0].body
