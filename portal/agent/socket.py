"""An agent's chat websocket, `/agent/ws`: the inbox of every conversation, presence, notes.

The frames, catching up and forwarding are the messenger's (`portal.messenger.sockets`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from starlette.websockets import WebSocket

from portal.core.contract import Agent, Conversation, Tenant
from portal.messenger import protocol as p
from portal.messenger.service import (
    Messenger,
    agent_owner,
    conversation_channel,
    conversation_json,
    inbox_channel,
    presence_channel,
)
from portal.messenger.sockets import ChatSocket, serve_socket
from portal.request_helpers import tenant_of
from portal.services import services
from portal.sessions.staff import current_agent

PRESENCE_TTL_S = 60.0


class AgentSocket(ChatSocket):
    """An agent of the tenant: the inbox of every conversation, presence, notes."""

    role = "agent"
    allowed = p.AGENT_TYPES
    queue_size = 10_000  # an agent hears every conversation's inbox updates
    # agent id -> sockets open in this process, so presence ends with the last tab
    open_tabs: Counter[tuple[int, int]] = Counter()

    def __init__(
        self, websocket: WebSocket, messenger: Messenger, tenant: Tenant, agent: Agent
    ) -> None:
        super().__init__(websocket, messenger, tenant)
        self.agent = agent
        self.owner = agent_owner(agent.id)
        self.status = "online"
        self.heartbeat: asyncio.Task[None] | None = None

    async def conversation(self, conversation_id: int) -> Any:
        return await self.core.chat.get_conversation(self.tenant.id, conversation_id)

    def display_name(self, conversation: Any) -> str:
        return self.agent.name

    def author_id(self, conversation: Any) -> int | None:
        return self.agent.id

    def wants(self, frame: dict[str, Any]) -> bool:
        if frame.get("type") == "typing" and frame.get("author_type") == "agent":
            return False
        return super().wants(frame)

    async def greet(self, hello: dict[str, Any]) -> None:
        assert self.sub is not None
        await self.sub.add(inbox_channel(self.tenant.id))
        await self.sub.add(presence_channel(self.tenant.id))
        self.open_tabs[(self.tenant.id, self.agent.id)] += 1
        await self.set_presence(self.status)
        self.heartbeat = asyncio.create_task(self.keep_presence())
        conversations = await self.core.chat.list_conversations(self.tenant.id, limit=200)
        await self.send(
            {
                "type": "ready",
                "role": "agent",
                "agent": {"id": self.agent.id, "name": self.agent.name},
                "conversations": [conversation_json(c) for c in conversations],
                "presence": await self.presence(),
            }
        )

    async def presence(self) -> dict[str, str]:
        return {str(k): v for k, v in (await self.messenger.hub.presence(self.tenant.id)).items()}

    async def set_presence(self, status: str) -> None:
        await self.messenger.hub.set_presence(
            self.tenant.id, self.agent.id, status, ttl=PRESENCE_TTL_S
        )
        self.messenger.presence_changes.changed(self.tenant.id)

    async def keep_presence(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_TTL_S / 3)
            await self.messenger.hub.set_presence(
                self.tenant.id, self.agent.id, self.status, ttl=PRESENCE_TTL_S
            )

    async def goodbye(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        key = (self.tenant.id, self.agent.id)
        self.open_tabs[key] -= 1
        if self.open_tabs[key] <= 0:
            del self.open_tabs[key]
            await self.messenger.hub.clear_presence(self.tenant.id, self.agent.id)
            self.messenger.presence_changes.changed(self.tenant.id)

    async def resumed(self) -> None:
        # Redis may have restarted empty: say again that this agent is here.
        await self.set_presence(self.status)
        await super().resumed()
        conversations = await self.core.chat.list_conversations(self.tenant.id, limit=200)
        await self.send(
            {"type": "inbox", "conversations": [conversation_json(c) for c in conversations]}
        )

    async def handle_role(self, kind: str, frame: dict[str, Any]) -> None:
        if kind == "unwatch":
            cid = p.integer(frame, "conversation_id")
            assert self.sub is not None
            await self.sub.remove(conversation_channel(self.tenant.id, cid))
            self.sent.pop(cid, None)
        elif kind == "note":
            await self.message(frame, internal=True)
        elif kind == "presence":
            status = frame.get("status")
            if status not in ("online", "away"):
                raise p.FrameError("invalid", '"status" must be "online" or "away".')
            self.status = status
            await self.set_presence(status)
        elif kind in ("accept", "assign", "close"):
            await self.change(kind, frame)
        else:
            await super().handle_role(kind, frame)

    async def change(self, kind: str, frame: dict[str, Any]) -> None:
        conversation = await self.conversation(p.integer(frame, "conversation_id"))
        if kind == "accept":
            updated = await self.core.chat.assign_conversation(
                self.tenant.id, conversation.id, self.agent.id
            )
        elif kind == "assign":
            agent_id = frame.get("agent_id")
            if agent_id is not None:
                agent_id = p.integer(frame, "agent_id")
                await self.core.tenants.get_agent(self.tenant.id, agent_id)
            updated = await self.core.chat.assign_conversation(
                self.tenant.id, conversation.id, agent_id
            )
        else:
            updated = await self.core.chat.set_conversation_status(
                self.tenant.id, conversation.id, "closed"
            )
        await self.messenger.publish_conversation(updated)

    async def after_message(self, conversation: Conversation) -> None:
        # Answering an unassigned chat takes it, as in Intercom and Chatwoot.
        if conversation.assignee_agent_id is None:
            updated = await self.core.chat.assign_conversation(
                self.tenant.id, conversation.id, self.agent.id
            )
            self.known[conversation.id] = updated
            await self.messenger.publish_conversation(updated)


async def agent_socket(websocket: WebSocket) -> None:
    """An agent's socket: the staff session cookie says who it is."""
    messenger = services(websocket).messenger
    tenant = tenant_of(websocket)

    async def make(hello: dict[str, Any]) -> ChatSocket | None:
        agent = await current_agent(websocket)
        if agent is None:
            return None
        return AgentSocket(websocket, messenger, tenant, agent)

    await serve_socket(websocket, make, staff=True)
