"""One websocket of the messenger, visitor or agent: hello, frames in, hub messages out.

Each socket runs two loops: the handler reads frames from the client, and a pump forwards what
the hub brings from the socket's channels. Catching up (from the core) and forwarding (from the
hub) both send under one lock and skip message ids already sent, so a reconnecting client gets
every message after its last id once, in order, whichever path brought it first.

A visitor's writes (starting a chat, contact details, transcripts) are rate limited per visitor,
per client address and per tenant (`portal.ratelimit`): over a limit the frame gets a
`rate_limited` error with `retry_after` and nothing is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from portal.core.contract import Agent, Conflict, Conversation, NotFound, Tenant
from portal.forms.abuse import submission_checks
from portal.forms.validation import clean_email, clean_name
from portal.messenger import protocol as p
from portal.messenger.hours import ChatSettings
from portal.messenger.hub import RESUMED, Subscription
from portal.messenger.service import (
    Messenger,
    agent_owner,
    conversation_channel,
    conversation_json,
    inbox_channel,
    read_upload_token,
    visible_conversation,
    visitor_json,
    visitor_owner,
)
from portal.ratelimit import (
    CONTACTS_PER_ADDRESS,
    CONTACTS_PER_TENANT,
    CONTACTS_PER_VISITOR,
    EMAIL_CHANGES_PER_CONVERSATION,
    STARTS_PER_ADDRESS,
    STARTS_PER_TENANT,
    STARTS_PER_VISITOR,
    TRANSCRIPTS_PER_ADDRESS,
    TRANSCRIPTS_PER_CONVERSATION,
    TRANSCRIPTS_PER_TENANT,
    TRANSCRIPTS_PER_VISITOR,
    Check,
    Refused,
    client_ip,
    limits_of,
)
from portal.tenancy import embed_origins
from portal.widget.identity import is_identified_visitor
from portal.widget.settings import WidgetSettings

log = logging.getLogger(__name__)

CATCH_UP_PAGE = 500
PRESENCE_TTL_S = 60.0


def origin_allowed(websocket: WebSocket, tenant: Tenant, *, staff: bool) -> bool:
    """The handshake's Origin is this host, or (for visitors) one of the tenant's embedding sites.

    A staff socket is known by its cookie, which the browser also sends from the company's own
    marketing site (same-site), so only pages of this host may open one, and a handshake without
    an Origin (no browser sends none) is refused.
    """
    origin = websocket.headers.get("origin")
    if not origin:
        return not staff  # browsers always send one; only scripts and tools do not
    origin = origin.rstrip("/").lower()
    if urlsplit(origin).netloc == websocket.headers.get("host", "").lower():
        return True
    return not staff and origin in embed_origins(tenant)


class ConnectionLimits:
    """Open sockets per client address in this process."""

    def __init__(self, per_ip: int) -> None:
        self.per_ip = per_ip
        self._open: Counter[str] = Counter()

    def acquire(self, ip: str) -> bool:
        if self._open[ip] >= self.per_ip:
            return False
        self._open[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self._open[ip] -= 1
        if self._open[ip] <= 0:
            del self._open[ip]


class ChatSocket:
    """The part both roles share: frames, limits, subscriptions and catching up."""

    role = ""
    allowed: frozenset[str] = frozenset()
    queue_size: int | None = None  # the hub's default

    def __init__(self, websocket: WebSocket, messenger: Messenger, tenant: Tenant) -> None:
        self.ws = websocket
        self.messenger = messenger
        self.core = messenger.core
        self.tenant = tenant
        self.sub: Subscription | None = None
        self.sent: dict[int, int] = {}  # conversation id -> highest message id sent
        # Conversations this socket may use, as last read: ownership never changes, so the
        # frames that come often (message, typing, read) need not read it again.
        self.known: dict[int, Conversation] = {}
        self.lock = asyncio.Lock()
        self.rate = p.RateLimit()
        self.strikes = 0

    # ------------------------------------------------------------ running
    async def run(self, first: dict[str, Any]) -> None:
        """Serve the socket after a good hello, until the client leaves."""
        async with self.messenger.hub.subscription(self.queue_size) as sub:
            self.sub = sub
            await self.greet(first)
            pump = asyncio.create_task(self.pump(sub))
            try:
                await self.read_frames()
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
                await self.goodbye()

    async def read_frames(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            try:
                if not self.rate.allow():
                    raise p.FrameError("rate_limited", "Too many frames; slow down.")
                frame = p.parse(raw, self.allowed)
                await self.handle(frame)
                self.strikes = 0
            except p.FrameError as exc:
                await self.refuse(exc)
            except NotFound:
                await self.refuse(p.FrameError("not_found", "No such conversation."))
            except Conflict as exc:
                await self.refuse(p.FrameError("invalid", str(exc)))
            except Exception:  # our fault, not the client's: say so, keep the socket
                log.exception("chat frame failed")
                await self.refuse(_server_error())
            if self.strikes >= p.MAX_STRIKES:
                await self.ws.close(p.CLOSE_BAD_FRAMES, "too many bad frames")
                return

    async def refuse(self, error: p.FrameError) -> None:
        self.strikes += error.strike
        await self.send(error.frame())

    async def send(self, frame: dict[str, Any]) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.ws.send_json(frame)

    async def pump(self, sub: Subscription) -> None:
        """Forward hub messages; after a hub outage, catch up every conversation from the core."""
        async for frame in sub:
            try:
                if frame.get("type") == RESUMED:
                    await self.resumed()
                    continue
                async with self.lock:
                    if self.wants(frame):
                        await self.send(frame)
            except Exception:  # e.g. the core briefly away during a catch-up: keep forwarding
                log.exception("forwarding to a chat socket failed")

    def wants(self, frame: dict[str, Any]) -> bool:
        """Whether a hub frame goes to this client; records message ids as sent."""
        if frame.get("type") != "message":
            return True
        message = frame["message"]
        cid = message["conversation_id"]
        if message["id"] <= self.sent.get(cid, 0):
            return False  # the catch-up sent it already
        self.sent[cid] = message["id"]
        return True

    async def follow(self, conversation_id: int, last_id: int) -> None:
        """Subscribe to a conversation, then send everything after `last_id`, once, in order."""
        assert self.sub is not None
        await self.sub.add(conversation_channel(self.tenant.id, conversation_id))
        async with self.lock:
            self.sent[conversation_id] = last_id  # the client says what it has; trust that
            await self.catch_up(conversation_id)

    async def catch_up(self, conversation_id: int) -> None:
        """Send stored messages newer than the last one sent; the caller holds the lock."""
        while True:
            after = self.sent.get(conversation_id, 0)
            messages = await self.core.chat_messages(
                self.tenant.id,
                conversation_id,
                after_id=after,
                limit=CATCH_UP_PAGE,
                include_internal=self.role == "agent",
            )
            for message in messages:
                await self.send(
                    {"type": "message", "message": self.messenger.message_json(message)}
                )
                self.sent[conversation_id] = message.id
            if len(messages) < CATCH_UP_PAGE:
                break
        await self.send(
            {
                "type": "caught_up",
                "conversation_id": conversation_id,
                "last_id": self.sent.get(conversation_id, 0),
            }
        )

    async def resumed(self) -> None:
        for conversation_id in list(self.sent):
            async with self.lock:
                await self.catch_up(conversation_id)
            await asyncio.sleep(0)  # an agent may follow hundreds: let other sockets have turns

    # ------------------------------------------------------------ frames both roles send
    async def handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "hello":
            raise p.FrameError("bad_frame", "hello was sent already.")
        elif kind in ("resume", "watch"):
            conversation = await self.conversation(p.integer(frame, "conversation_id"))
            await self.follow(conversation.id, p.integer(frame, "last_id", default=0))
        elif kind == "typing":
            await self.typing(frame)
        elif kind == "read":
            await self.read(frame)
        elif kind == "message":
            await self.message(frame)
        else:
            await self.handle_role(kind, frame)

    async def typing(self, frame: dict[str, Any]) -> None:
        conversation = await self.known_conversation(p.integer(frame, "conversation_id"))
        await self.messenger.hub.publish(
            conversation_channel(self.tenant.id, conversation.id),
            {
                "type": "typing",
                "conversation_id": conversation.id,
                "author_type": self.role,
                "author_name": self.display_name(conversation),
                "typing": bool(frame.get("typing")),
            },
        )

    async def read(self, frame: dict[str, Any]) -> None:
        conversation = await self.known_conversation(p.integer(frame, "conversation_id"))
        updated = await self.core.mark_conversation_read(
            self.tenant.id, conversation.id, reader=self.role, message_id=p.integer(frame, "id")
        )
        marker = updated.visitor_read_id if self.role == "visitor" else updated.agent_read_id
        await self.messenger.hub.publish(
            conversation_channel(self.tenant.id, conversation.id),
            {"type": "read", "conversation_id": conversation.id, "reader": self.role, "id": marker},
        )

    async def message(self, frame: dict[str, Any], *, internal: bool = False) -> None:
        client_id = p.client_id(frame)
        try:
            conversation = await self.known_conversation(p.integer(frame, "conversation_id"))
            body = p.text(frame, "body", limit=p.MAX_BODY)
            attachments = self.attachments(frame)
            if not body and not attachments:
                raise p.FrameError("invalid", "A message needs text or a file.")
            message, conversation = await self.messenger.post(
                self.tenant,
                conversation.id,
                author_type="agent" if self.role == "agent" else "visitor",
                author_id=self.author_id(conversation),
                author_name=self.display_name(conversation),
                body=body,
                client_id=f"{self.owner}/{client_id}",
                internal=internal,
                attachments=attachments,
            )
        except (p.FrameError, NotFound, Conflict) as exc:
            raise _for_client(exc, client_id) from exc
        except Exception as exc:  # the client keeps the message and sends it again later
            log.exception("storing a chat message failed")
            raise _for_client(_server_error(), client_id) from exc
        await self.send(
            {
                "type": "ack",
                "client_id": client_id,
                "id": message.id,
                "conversation_id": message.conversation_id,
            }
        )
        self.known[conversation.id] = conversation
        await self.after_message(conversation)

    def attachments(self, frame: dict[str, Any]) -> tuple[Any, ...]:
        ids = frame.get("attachments") or []
        if not isinstance(ids, list) or len(ids) > p.MAX_ATTACHMENTS:
            raise p.FrameError("invalid", f"Attach at most {p.MAX_ATTACHMENTS} files at once.")
        signer = self.ws.state.signer
        return tuple(read_upload_token(signer, self.tenant.id, self.owner, i) for i in ids)

    # ------------------------------------------------------------ for each role
    owner = ""

    async def greet(self, hello: dict[str, Any]) -> None:
        raise NotImplementedError

    async def goodbye(self) -> None:
        """Called when the socket ends."""

    async def conversation(self, conversation_id: int) -> Any:
        """The conversation, read now, if this socket may use it; NotFound otherwise."""
        raise NotImplementedError

    async def known_conversation(self, conversation_id: int) -> Conversation:
        """The conversation as last read, if this socket may use it (read once)."""
        found = self.known.get(conversation_id)
        if found is None:
            found = self.known[conversation_id] = await self.conversation(conversation_id)
        return found

    async def handle_role(self, kind: str, frame: dict[str, Any]) -> None:
        raise p.FrameError("unknown_type", f"Unknown frame type {kind!r}.")

    async def after_message(self, conversation: Conversation) -> None:
        """Called after a message was stored and acknowledged, with the conversation after it."""

    def display_name(self, conversation: Any) -> str:
        raise NotImplementedError

    def author_id(self, conversation: Any) -> int | None:
        return None


class VisitorSocket(ChatSocket):
    """A website visitor: sees only their own conversations (and, signed in, their account's)."""

    role = "visitor"
    allowed = p.VISITOR_TYPES

    def __init__(
        self,
        websocket: WebSocket,
        messenger: Messenger,
        tenant: Tenant,
        visitor_id: str,
        customer_id: int | None,
    ) -> None:
        super().__init__(websocket, messenger, tenant)
        self.visitor_id = visitor_id
        self.customer_id = customer_id
        self.owner = visitor_owner(visitor_id)
        self.ip = client_ip(websocket)

    def wants(self, frame: dict[str, Any]) -> bool:
        kind = frame.get("type")
        if kind == "message" and frame["message"].get("internal"):
            return False  # agents' notes never reach a visitor
        if kind == "typing" and frame.get("author_type") == "visitor":
            return False
        if kind == "page":
            return False  # where the visitor is, for agents only
        return super().wants(frame)

    async def send(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "conversation":
            frame = {"type": "conversation", "conversation": _visitor_view(frame)}
        await super().send(frame)

    async def conversation(self, conversation_id: int) -> Any:
        return await visible_conversation(
            self.core,
            self.tenant.id,
            conversation_id,
            visitor_id=self.visitor_id,
            customer_id=self.customer_id,
        )

    async def past(self) -> list[dict[str, Any]]:
        conversations = await self.core.list_conversations(
            self.tenant.id, visitor_id=self.visitor_id, customer_id=self.customer_id, limit=20
        )
        return [visitor_json(c) for c in conversations]

    async def greet(self, hello: dict[str, Any]) -> None:
        await self.send(
            {
                "type": "ready",
                "role": "visitor",
                "visitor_id": self.visitor_id,
                "signed_in": self.customer_id is not None,
                "conversations": await self.past(),
            }
        )
        if hello.get("conversation_id") is not None:
            try:
                conversation = await self.conversation(p.integer(hello, "conversation_id"))
            except (NotFound, p.FrameError):
                await self.send(
                    p.FrameError("not_found", "That conversation is not yours.").frame()
                )
                return
            await self.follow(conversation.id, p.integer(hello, "last_id", default=0))

    def display_name(self, conversation: Any) -> str:
        return conversation.visitor_name or ""

    def author_id(self, conversation: Any) -> int | None:
        return conversation.customer_id

    async def handle_role(self, kind: str, frame: dict[str, Any]) -> None:
        if kind == "start":
            await self.start(frame)
        elif kind == "contact":
            await self.contact(frame)
        elif kind == "transcript":
            await self.transcript(frame)
        elif kind == "list":
            await self.send({"type": "conversations", "conversations": await self.past()})
        elif kind == "page":
            await self.page(frame)
        else:
            await super().handle_role(kind, frame)

    async def page(self, frame: dict[str, Any]) -> None:
        """Tell the agents which page of the company's site the visitor is on (not stored)."""
        conversation = await self.known_conversation(p.integer(frame, "conversation_id"))
        url = p.text(frame, "url", limit=p.MAX_URL)
        if urlsplit(url).scheme not in ("http", "https"):
            raise p.FrameError("invalid", '"url" must be an http or https address.')
        title = clean_name(p.text(frame, "title", limit=p.MAX_NAME))
        # To the inbox: an agent who opens the conversation later has heard it already.
        await self.messenger.hub.publish(
            inbox_channel(self.tenant.id),
            {"type": "page", "conversation_id": conversation.id, "url": url, "title": title},
        )

    # ------------------------------------------------------------ limits
    def limit(self, checks: list[Check], client_id: str | None) -> None:
        """Count a write against `checks`, or refuse it (RateLimited) before anything is stored."""
        refused = limits_of(self.ws).check(self.tenant, *checks)
        if refused is not None:
            raise RateLimited(refused, client_id)

    async def ticket_checks(self, conversation: Conversation | None, email: str) -> list[Check]:
        """The web forms' submission limits, when leaving `email` makes this chat a ticket now.

        Only anonymous chats count, as web forms do; a signed-in customer's do not."""
        if self.customer_id is not None or not email:
            return []
        if conversation is not None and conversation.ticket_id is not None:
            return []  # a ticket already: nothing new is made
        if await self.messenger.nobody_reason(self.tenant, conversation) is None:
            return []
        return list(submission_checks(self.ip))

    # ------------------------------------------------------------ visitor frames
    async def start(self, frame: dict[str, Any]) -> None:
        client_id = p.client_id(frame)
        if not ChatSettings.for_tenant(self.tenant).enabled:
            raise p.FrameError("not_allowed", "Chat is switched off here.", client_id)
        if (
            WidgetSettings.for_tenant(self.tenant).require_identity
            and self.customer_id is None
            and not is_identified_visitor(self.visitor_id)
        ):
            message = "This site must sign you in before you can chat."
            raise p.FrameError("not_allowed", message, client_id)
        try:
            name = clean_name(p.text(frame, "name", limit=p.MAX_NAME))
            email = _email(p.text(frame, "email", limit=p.MAX_NAME))
            body = p.text(frame, "body", limit=p.MAX_BODY)
        except p.FrameError as exc:
            raise _for_client(exc, client_id) from exc
        checks: list[Check] = [
            (STARTS_PER_VISITOR, self.visitor_id),
            (STARTS_PER_ADDRESS, self.ip),
            (STARTS_PER_TENANT, ""),
        ]
        self.limit(checks + await self.ticket_checks(None, email), client_id)
        if self.customer_id is not None and not email:
            customer = await self.core.get_customer(self.tenant.id, self.customer_id)
            email, name = customer.email, name or customer.name
        conversation = await self.messenger.start(
            self.tenant,
            visitor_id=self.visitor_id,
            customer_id=self.customer_id,
            name=name,
            email=email,
            body=body,
            client_id=client_id,
        )
        await self.send(
            {"type": "started", "client_id": client_id, "conversation": visitor_json(conversation)}
        )
        await self.follow(conversation.id, 0)
        await self.messenger.check_availability(self.tenant, conversation)

    async def after_message(self, conversation: Conversation) -> None:
        if conversation.ticket_id is None:
            await self.messenger.check_availability(self.tenant, conversation)

    async def contact(self, frame: dict[str, Any]) -> None:
        conversation = await self.conversation(p.integer(frame, "conversation_id"))
        email = _email(p.text(frame, "email", limit=p.MAX_NAME))
        name = clean_name(p.text(frame, "name", limit=p.MAX_NAME))
        await self.set_contact(conversation, name, email, [], _optional_client_id(frame))

    async def set_contact(
        self,
        conversation: Conversation,
        name: str,
        email: str,
        checks: list[Check],
        client_id: str | None,
    ) -> Conversation:
        """Store a name and/or email (counted with `checks`), then act on it as `contact` does."""
        checks = checks + [
            (CONTACTS_PER_VISITOR, self.visitor_id),
            (CONTACTS_PER_ADDRESS, self.ip),
            (CONTACTS_PER_TENANT, ""),
        ]
        if email and email.lower() != (conversation.visitor_email or "").lower():
            checks.append((EMAIL_CHANGES_PER_CONVERSATION, str(conversation.id)))
            checks += await self.ticket_checks(conversation, email)
        self.limit(checks, client_id)
        updated = await self.core.update_conversation_contact(
            self.tenant.id, conversation.id, name=name, email=email
        )
        self.known[updated.id] = updated
        await self.messenger.publish_conversation(updated)
        await self.messenger.check_availability(self.tenant, updated)
        return updated

    async def transcript(self, frame: dict[str, Any]) -> None:
        """Mail the transcript, only ever to the chat's own address (it is sent in the tenant's
        name with the visitor's text: to any address it would be an open relay)."""
        conversation = await self.conversation(p.integer(frame, "conversation_id"))
        asked = _email(p.text(frame, "email", limit=p.MAX_NAME))
        client_id = _optional_client_id(frame)
        checks: list[Check] = [
            (TRANSCRIPTS_PER_CONVERSATION, str(conversation.id)),
            (TRANSCRIPTS_PER_VISITOR, self.visitor_id),
            (TRANSCRIPTS_PER_ADDRESS, self.ip),
            (TRANSCRIPTS_PER_TENANT, ""),
        ]
        own = await self.messenger.transcript_addresses(self.tenant.id, conversation)
        if own:
            # As stored: the visitor may name it in other letter case, the mail goes to the chat's.
            matching = [a for a in own if not asked or a.lower() == asked.lower()]
            if not matching:
                raise p.FrameError(
                    "not_allowed",
                    "The transcript goes only to the email address this chat has.",
                    client_id,
                )
            email = matching[0]
            self.limit(checks, client_id)
        elif asked:  # the chat's first email: it becomes its contact address, as `contact` does
            conversation = await self.set_contact(conversation, "", asked, checks, client_id)
            email = conversation.visitor_email
        else:
            raise p.FrameError("invalid", "Which email address should we send it to?", client_id)
        if not await self.messenger.send_transcript(self.tenant, conversation, email):
            raise p.FrameError("server_error", "We could not send the mail; try again later.")
        await self.send({"type": "transcript_sent", "conversation_id": conversation.id})


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
        return await self.core.get_conversation(self.tenant.id, conversation_id)

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
        await self.sub.add(_presence_channel(self.tenant.id))
        self.open_tabs[(self.tenant.id, self.agent.id)] += 1
        await self.set_presence(self.status)
        self.heartbeat = asyncio.create_task(self.keep_presence())
        conversations = await self.core.list_conversations(self.tenant.id, limit=200)
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
        await self.messenger.hub.publish(
            _presence_channel(self.tenant.id), {"type": "presence", "agents": await self.presence()}
        )

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
            await self.messenger.hub.publish(
                _presence_channel(self.tenant.id),
                {"type": "presence", "agents": await self.presence()},
            )

    async def resumed(self) -> None:
        # Redis may have restarted empty: say again that this agent is here.
        await self.set_presence(self.status)
        await super().resumed()
        conversations = await self.core.list_conversations(self.tenant.id, limit=200)
        for conversation in conversations:
            await self.send({"type": "inbox", "conversation": conversation_json(conversation)})

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
            updated = await self.core.assign_conversation(
                self.tenant.id, conversation.id, self.agent.id
            )
        elif kind == "assign":
            agent_id = frame.get("agent_id")
            if agent_id is not None:
                agent_id = p.integer(frame, "agent_id")
                await self.core.get_agent(self.tenant.id, agent_id)
            updated = await self.core.assign_conversation(self.tenant.id, conversation.id, agent_id)
        else:
            updated = await self.core.set_conversation_status(
                self.tenant.id, conversation.id, "closed"
            )
        await self.messenger.publish_conversation(updated)

    async def after_message(self, conversation: Conversation) -> None:
        # Answering an unassigned chat takes it, as in Intercom and Chatwoot.
        if conversation.assignee_agent_id is None:
            updated = await self.core.assign_conversation(
                self.tenant.id, conversation.id, self.agent.id
            )
            self.known[conversation.id] = updated
            await self.messenger.publish_conversation(updated)


class RateLimited(p.FrameError):
    """A write over a rate limit: nothing was stored; the same frame may come again later."""

    def __init__(self, refused: Refused, client_id: str | None = None) -> None:
        super().__init__("rate_limited", refused.message, client_id)
        self.retry_after = refused.retry_after
        # A reasonable frame sent too often is no bad frame: it does not count towards closing
        # the socket (the socket's own frame rate still does).
        self.strike = False

    def frame(self) -> dict[str, Any]:
        return super().frame() | {"retry_after": self.retry_after}


def _optional_client_id(frame: dict[str, Any]) -> str | None:
    """The frame's client_id, for frames where it is optional (refusals name it back)."""
    value = frame.get("client_id")
    return value if isinstance(value, str) and 0 < len(value) <= p.MAX_CLIENT_ID else None


def _server_error() -> p.FrameError:
    return p.FrameError("server_error", "Something went wrong on our side; try again soon.")


def _for_client(exc: Exception, client_id: str) -> p.FrameError:
    """The error frame for a refused message or start, naming the client's id for it."""
    if isinstance(exc, p.FrameError):
        error = exc
    elif isinstance(exc, NotFound):
        error = p.FrameError("not_found", "No such conversation.")
    else:
        error = p.FrameError("invalid", str(exc))
    error.client_id = client_id
    return error


def _presence_channel(tenant_id: int) -> str:
    return f"presence:{tenant_id}"


def _visitor_view(frame: dict[str, Any]) -> dict[str, Any]:
    data = dict(frame["conversation"])
    data.pop("assignee_agent_id", None)
    data.pop("visitor_email", None)
    data.pop("visitor_email_verified", None)
    return data


def _email(value: str) -> str:
    """The address as the forms accept it, or "" for none; FrameError when it is not one."""
    if not value:
        return ""
    cleaned = clean_email(value)
    if cleaned is None:
        raise p.FrameError("invalid", "That does not look like an email address.")
    return cleaned
