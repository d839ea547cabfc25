"""A website visitor's chat websocket, `/messenger/ws`.

A visitor's writes (starting a chat, contact details, transcripts) are rate limited per visitor,
per client address and per tenant (`portal.ratelimit`): over a limit the frame gets a
`rate_limited` error with `retry_after` and nothing is stored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from portal.core.contract import Conversation, NotFound, Tenant
from portal.core.remote.client import CoreUnavailable
from portal.emails import clean_email
from portal.forms.abuse import submission_checks
from portal.messenger import protocol as p
from portal.messenger.service import (
    Messenger,
    inbox_channel,
    read_visitor_token,
    visible_conversation,
    visitor_json,
    visitor_owner,
)
from portal.messenger.sockets import ChatSocket, for_client, serve_socket
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
)
from portal.request_helpers import tenant_of
from portal.services import services
from portal.sessions.customer import current_session
from portal.text import clean_name
from portal.widget.identity import is_identified_visitor
from portal.widget.settings import WidgetSettings


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
        conversations = await self.core.chat.list_conversations(
            self.tenant.id, visitor_id=self.visitor_id, customer_id=self.customer_id, limit=20
        )
        # Each is this visitor's: the first message to one of them needs no read to prove it.
        self.known.update((c.id, c) for c in conversations)
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
                conversation = await self.known_conversation(p.integer(hello, "conversation_id"))
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
        refused = services(self.ws).rate_limits.check(self.tenant, *checks)
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
        if not self.messenger.chat_settings(self.tenant).enabled:
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
            raise for_client(exc, client_id) from exc
        checks: list[Check] = [
            (STARTS_PER_VISITOR, self.visitor_id),
            (STARTS_PER_ADDRESS, self.ip),
            (STARTS_PER_TENANT, ""),
        ]
        self.limit(checks + await self.ticket_checks(None, email), client_id)
        if self.customer_id is not None and not email:
            customer = await self.core.customers.get_customer(self.tenant.id, self.customer_id)
            email, name = customer.email, name or customer.name
        try:
            conversation = await self.messenger.start(
                self.tenant,
                visitor_id=self.visitor_id,
                customer_id=self.customer_id,
                name=name,
                email=email,
                body=body,
                client_id=client_id,
            )
        except CoreUnavailable as exc:
            # A remote core that does not answer: a conversation is the core's to open (its id
            # is what everything follows), and nobody could answer it now anyway.
            raise Unavailable(client_id) from exc
        self.known[conversation.id] = conversation
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
        updated = await self.core.chat.update_conversation_contact(
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


class Unavailable(p.FrameError):
    """The help desk behind this edge does not answer: no chat can start now. Nothing was
    stored; the visitor is offered the contact form instead (or tries again later)."""

    def __init__(self, client_id: str) -> None:
        super().__init__(
            "unavailable",
            "Chat is not available right now. Please try again in a few minutes, "
            "or leave us a message with the contact form.",
            client_id,
        )
        self.strike = False


def _optional_client_id(frame: dict[str, Any]) -> str | None:
    """The frame's client_id, for frames where it is optional (refusals name it back)."""
    value = frame.get("client_id")
    return value if isinstance(value, str) and 0 < len(value) <= p.MAX_CLIENT_ID else None


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


async def visitor_socket(websocket: WebSocket) -> None:
    """A visitor's socket: the hello's signed visitor token says who it is."""
    messenger = services(websocket).messenger
    tenant = tenant_of(websocket)

    async def make(hello: dict[str, Any]) -> ChatSocket | None:
        visitor_id = read_visitor_token(services(websocket).signer, tenant.id, hello.get("token"))
        if visitor_id is None:
            return None
        # A signed-in customer (a live server-side session, not just a signed cookie) sees
        # their account's conversations too.
        session = await current_session(websocket)
        customer_id = session[0].id if session else None
        return VisitorSocket(websocket, messenger, tenant, visitor_id, customer_id)

    await serve_socket(websocket, make, staff=False)
