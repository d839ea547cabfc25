"""Agents' presence: changes of a moment announced as one frame per tenant."""

from __future__ import annotations

import asyncio

import pytest

from portal.hub import MemoryHub
from portal.messenger.presence import PresenceAnnouncements
from portal.messenger.service import presence_channel
from portal.security import hash_password
from tests.conftest import TEST_HASH_COST
from tests.messenger.conftest import Chat


async def test_the_changes_of_a_moment_are_one_frame_with_the_final_state():
    hub = MemoryHub()
    announcements = PresenceAnnouncements(hub, presence_channel)
    async with hub.subscription() as sub:
        await sub.add(presence_channel(7))
        await hub.set_presence(7, 1, "online")
        announcements.changed(7)
        await hub.set_presence(7, 2, "online")
        announcements.changed(7)
        await hub.set_presence(7, 2, "away")
        announcements.changed(7)
        first = await asyncio.wait_for(anext(sub), 5)
        # A marker published now comes next: no second presence frame was on its way.
        await hub.publish(presence_channel(7), {"type": "marker"})
        second = await asyncio.wait_for(anext(sub), 5)
    assert first == {"type": "presence", "agents": {"1": "online", "2": "away"}}
    assert second == {"type": "marker"}


@pytest.mark.live_server
async def test_agents_hear_who_comes_goes_and_steps_away(chat: Chat):
    await chat.server.core.tenants.create_agent(
        chat.tenant.id,
        "bob@acme.test",
        "Bob Agent",
        hash_password("bob password 123", cost=TEST_HASH_COST),
        "agent",
    )
    ada, ready = await chat.agent()
    ada_id = ready["agent"]["id"]
    bob, ready = await chat.agent(await chat.agent_cookie("bob@acme.test", "bob password 123"))
    bob_id = ready["agent"]["id"]
    both = {str(ada_id): "online", str(bob_id): "online"}
    await ada.expect("presence", agents=both)
    await bob.send("presence", status="away")
    await ada.expect("presence", agents={str(ada_id): "online", str(bob_id): "away"})
    await bob.close()
    await ada.expect("presence", agents={str(ada_id): "online"})
