"""Server-sent events of a ticket: agent replies and status changes arrive, internal notes never."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from portal.core.contract import ReplyDraft
from portal.customer import live
from tests.customer.conftest import sign_in

pytestmark = pytest.mark.live_server  # event streams

ALICE = "alice@example.com"


@dataclass
class Message:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)


async def messages(lines: AsyncIterator[str]) -> AsyncIterator[Message]:
    """Parse a text/event-stream into messages (comments become messages of their own)."""
    current = Message()
    async for line in lines:
        if line == "":
            if current.data or current.comments or current.id:
                yield current
            current = Message()
        elif line.startswith(":"):
            yield Message(event="comment", comments=[line[1:].strip()])
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                current.event = value
            elif name == "data":
                current.data += value
            elif name == "id":
                current.id = value


async def next_matching(stream: AsyncIterator[Message], event: str, timeout: float = 5) -> Message:
    async def find() -> Message:
        async for message in stream:
            if message.event == event:
                return message
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), timeout)


@pytest.fixture
async def agent(portal):
    return await portal.core.tenants.create_agent(
        portal.tenant.id, "sam@acme.test", "Sam Support", "x", "agent"
    )


async def test_agent_reply_and_status_change_arrive_live(portal, agent):
    core, tenant = portal.core, portal.tenant
    ticket = await portal.ticket(ALICE, "Live one")
    first_reply = (await core.tickets.list_replies(tenant.id, ticket.id))[-1]
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        url = f"/portal/tickets/{ticket.id}/events?after={first_reply.id}"
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-store"
            stream = messages(response.aiter_lines())
            status = await next_matching(stream, "status")
            assert json.loads(status.data) == {"status": "open", "label": "Open", "closed": False}
            connected = await next_matching(stream, "comment")
            assert connected.comments == ["connected"]

            await core.tickets.add_reply(
                tenant.id, ticket.id,
                ReplyDraft(
                    author_type="agent", author_id=agent.id, body="INTERNAL note", internal=True,
                ),
                "n1",
            )  # fmt: skip
            reply = await core.tickets.add_reply(
                tenant.id, ticket.id,
                ReplyDraft(
                    author_type="agent", author_id=agent.id,
                    body="<script>alert(1)</script> Try again", internal=False,
                ),
                "r1",
            )  # fmt: skip
            pushed = await next_matching(stream, "reply")
            data = json.loads(pushed.data)
            assert pushed.id == str(reply.id)
            assert data["id"] == reply.id
            assert (
                data["body"] == "<script>alert(1)</script> Try again"
            )  # the page uses textContent
            assert data["author_name"] == "Sam Support"
            assert data["author_type"] == "agent"

            await core.tickets.set_ticket_status(
                tenant.id, ticket.id, "resolved", agent_id=agent.id
            )
            changed = await next_matching(stream, "status")
            assert json.loads(changed.data) == {
                "status": "resolved",
                "label": "Resolved",
                "closed": True,
            }


async def test_replies_after_the_page_load_are_caught_up(portal, agent):
    """A reply made between the page load and the stream's connection is not lost."""
    core, tenant = portal.core, portal.tenant
    ticket = await portal.ticket(ALICE, "Catch up")
    seen = (await core.tickets.list_replies(tenant.id, ticket.id))[-1].id
    await core.tickets.add_reply(
        tenant.id, ticket.id,
        ReplyDraft(
            author_type="agent", author_id=agent.id, body="secret", internal=True,
        ),
        "n",
    )  # fmt: skip
    missed = await core.tickets.add_reply(
        tenant.id, ticket.id,
        ReplyDraft(
            author_type="agent", author_id=agent.id, body="while you were loading", internal=False,
        ),
        "m",
    )  # fmt: skip
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        url = f"/portal/tickets/{ticket.id}/events"
        async with client.stream("GET", url, headers={"last-event-id": str(seen)}) as response:
            stream = messages(response.aiter_lines())
            pushed = await next_matching(stream, "reply")
            assert json.loads(pushed.data)["body"] == "while you were loading"
            assert pushed.id == str(missed.id)
            connected = await next_matching(stream, "comment")
            assert connected.comments == ["connected"]


async def test_heartbeat_comments(portal, monkeypatch):
    monkeypatch.setattr(live, "HEARTBEAT_SECONDS", 0.2)
    ticket = await portal.ticket(ALICE, "Quiet one")
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        async with client.stream("GET", f"/portal/tickets/{ticket.id}/events") as response:
            stream = messages(response.aiter_lines())
            comments = [(await next_matching(stream, "comment")).comments[0] for _ in range(3)]
    assert comments == ["connected", "ping", "ping"]


async def test_events_need_a_session(portal):
    ticket = await portal.ticket(ALICE, "Private")
    async with portal.client() as client:
        response = await client.get(f"/portal/tickets/{ticket.id}/events")
    assert response.status_code == 303
