"""What every chat websocket shares, visitor's or agent's: hello, frames in, hub messages out.

Each socket runs two loops: the handler reads frames from the client, and a pump forwards what
the hub brings from the socket's channels. Catching up (from the core) and forwarding (from the
hub) both send under one lock and skip message ids already sent, so a reconnecting client gets
every message after its last id once, in order, whichever path brought it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from portal.core.contract import Conflict, Conversation, MessageDraft, NotFound, Tenant
from portal.embedding import embed_origins, embeds_anywhere
from portal.hub import RESUMED, Frame, Subscription, encode
from portal.messenger import protocol as p
from portal.messenger.batches import PostFailed
from portal.messenger.sending import SendingMessage
from portal.messenger.service import Messenger, conversation_channel, read_upload_token
from portal.request_helpers import origin_names_host, tenant_of
from portal.services import services

log = logging.getLogger(__name__)

CATCH_UP_PAGE = 500


def origin_allowed(websocket: WebSocket, tenant: Tenant, *, staff: bool) -> bool:
    """The handshake's Origin is this host, or (for visitors) one of the tenant's embedding sites
    (any site, when the tenant chose so).

    A staff socket is known by its cookie, which the browser also sends from the company's own
    marketing site (same-site), so only pages of this host may open one, and a handshake without
    an Origin (no browser sends none) is refused.
    """
    origin = websocket.headers.get("origin")
    if not origin:
        return not staff  # browsers always send one; only scripts and tools do not
    origin = origin.rstrip("/").lower()
    if origin_names_host(origin, websocket.headers.get("host", "")):
        return True
    # A tenant that lets any site show its apps lets any site's visitors chat too.
    return not staff and (embeds_anywhere(tenant) or origin in embed_origins(tenant))


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
                await self.refuse(server_error())
            if self.strikes >= p.MAX_STRIKES:
                await self.ws.close(p.CLOSE_BAD_FRAMES, "too many bad frames")
                return

    async def refuse(self, error: p.FrameError) -> None:
        self.strikes += error.strike
        await self.send(error.frame())

    async def send(self, frame: dict[str, Any]) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            # A hub frame comes encoded: one encoding for every socket it goes to.
            text = frame.text if isinstance(frame, Frame) else encode(frame)
            try:
                await self.ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass  # the socket closed meanwhile: its handler ends it

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
        # The lock is taken before subscribing: a message the hub brings meanwhile waits for
        # the catch-up, which skips it if sent. (Taken after, the pump could send a message
        # first and the catch-up, starting again from `last_id`, send it twice.)
        async with self.lock:
            self.sent[conversation_id] = last_id  # the client says what it has; trust that
            await self.sub.add(conversation_channel(self.tenant.id, conversation_id))
            await self.catch_up(conversation_id)

    async def catch_up(self, conversation_id: int) -> None:
        """Send stored messages newer than the last one sent, then (a visitor's, in front of a
        remote core) the ones still sending; the caller holds the lock."""
        queued = self.messenger.queued if self.role == "visitor" else None
        stored: set[str] = set()  # client ids just sent as stored: not again as sending
        while True:
            after = self.sent.get(conversation_id, 0)
            messages = await self.core.chat.chat_messages(
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
                if queued is not None:
                    stored.add(message.client_id)
            if len(messages) < CATCH_UP_PAGE:
                break
        if queued is not None:
            for sending in await queued.sending(self.tenant.id, conversation_id):
                if sending.draft.client_id not in stored:
                    await self.send(sending.frame())
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
        """Stored with the other receipts of the moment; the `read` frame follows then."""
        conversation = await self.known_conversation(p.integer(frame, "conversation_id"))
        message_id = p.integer(frame, "id")
        self.messenger.reads.mark(self.tenant.id, conversation.id, self.role, message_id)

    async def message(self, frame: dict[str, Any], *, internal: bool = False) -> None:
        client_id = p.client_id(frame)
        try:
            conversation = await self.known_conversation(p.integer(frame, "conversation_id"))
            body = p.text(frame, "body", limit=p.MAX_BODY)
            attachments = self.attachments(frame)
            if not body and not attachments:
                raise p.FrameError("invalid", "A message needs text or a file.")
            draft = MessageDraft(
                author_type="agent" if self.role == "agent" else "visitor",
                author_id=self.author_id(conversation),
                author_name=self.display_name(conversation),
                body=body,
                client_id=f"{self.owner}/{client_id}",
                internal=internal,
                attachments=attachments,
            )
            queued = self.messenger.queued
            if queued is not None and self.role == "visitor":
                posted = await queued.post(self.tenant.id, conversation.id, draft)
                if isinstance(posted, SendingMessage):
                    await self.acknowledge_sending(conversation, posted)
                    return
                message, conversation = posted
            else:
                message, conversation = await self.messenger.post(
                    self.tenant, conversation.id, draft
                )
        except (p.FrameError, NotFound, Conflict) as exc:
            raise for_client(exc, client_id) from exc
        except PostFailed as exc:  # (its batch's failure is logged once, not per message)
            raise for_client(server_error(), client_id) from exc
        except Exception as exc:  # the client keeps the message and sends it again later
            log.exception("storing a chat message failed")
            raise for_client(server_error(), client_id) from exc
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

    async def acknowledge_sending(
        self, conversation: Conversation, sending: SendingMessage
    ) -> None:
        """Durable on the edge, not at the core yet: the sender hears so (no id yet), and every
        socket of the conversation sees the message as sending."""
        await self.send(
            {
                "type": "ack",
                "client_id": sending.client_id,
                "id": None,
                "conversation_id": conversation.id,
                "pending": True,
                "reference": sending.reference,
            }
        )
        channel = conversation_channel(self.tenant.id, conversation.id)
        await self.messenger.hub.publish(channel, sending.frame())
        try:  # nobody there: say so now, as after a stored message (the core may be away)
            await self.after_message(conversation)
        except Exception:
            log.warning("checking who answers conversation %s failed", conversation.id)

    def attachments(self, frame: dict[str, Any]) -> tuple[Any, ...]:
        ids = frame.get("attachments") or []
        if not isinstance(ids, list) or len(ids) > p.MAX_ATTACHMENTS:
            raise p.FrameError("invalid", f"Attach at most {p.MAX_ATTACHMENTS} files at once.")
        if not ids:
            return ()
        signer = services(self.ws).signer
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


def server_error() -> p.FrameError:
    """The error frame for a failure on our side; the client may send the frame again."""
    return p.FrameError("server_error", "Something went wrong on our side; try again soon.")


def for_client(exc: Exception, client_id: str) -> p.FrameError:
    """The error frame for a refused message or start, naming the client's id for it."""
    if isinstance(exc, p.FrameError):
        error = exc
    elif isinstance(exc, NotFound):
        error = p.FrameError("not_found", "No such conversation.")
    else:
        error = p.FrameError("invalid", str(exc))
    error.client_id = client_id
    return error


async def read_hello(websocket: WebSocket) -> dict[str, Any] | None:
    """The client's first frame, if it is a hello that arrives in time."""
    try:
        text = await asyncio.wait_for(websocket.receive_text(), p.HELLO_TIMEOUT_S)
        frame = p.parse(text, frozenset({"hello"}))
    except (TimeoutError, p.FrameError, WebSocketDisconnect, KeyError):
        return None
    return frame


async def serve_socket(
    websocket: WebSocket,
    make: Callable[[dict[str, Any]], Awaitable[ChatSocket | None]],
    *,
    staff: bool,
) -> None:
    """Accept, check Origin, limits and hello, then run the socket `make(hello)` returns."""
    tenant = tenant_of(websocket)
    limits = services(websocket).socket_limits
    ip = websocket.client.host if websocket.client else "?"
    await websocket.accept()
    if not origin_allowed(websocket, tenant, staff=staff):
        await websocket.close(p.CLOSE_ORIGIN, "origin not allowed")
        return
    if not limits.acquire(ip):
        await websocket.close(p.CLOSE_TOO_MANY, "too many connections")
        return
    try:
        hello = await read_hello(websocket)
        socket: ChatSocket | None = await make(hello) if hello is not None else None
        if hello is None or socket is None:
            await websocket.close(p.CLOSE_UNAUTHORIZED, "a valid hello is needed")
            return
        # A task of its own: each frame resumes the socket's few coroutines rather than the
        # twenty of the middleware and routing it was called through (a tenth of a message's
        # Python time). Cancelling this one cancels that task too.
        await asyncio.create_task(socket.run(hello), name=f"{socket.role} socket")
    except WebSocketDisconnect:
        pass
    finally:
        limits.release(ip)
