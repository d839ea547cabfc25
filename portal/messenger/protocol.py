"""The messenger's frame protocol: JSON text frames over one websocket, each with a `type`.

Visitors connect to `/messenger/ws`, agents to `/agent/ws`. The first frame a client sends is
`hello`; until it is accepted, nothing else is. Every frame the server sends has a `type` too.

Client -> server (visitor and agent)
  hello       {token?, conversation_id?, last_id?}   visitor: `token` is the signed visitor
              token from `POST /messenger/token`; agent: authenticated by the console cookie.
              With `conversation_id` the server subscribes the socket to it and sends every
              message after `last_id` (0: the whole history) before anything newer.
  resume      {conversation_id, last_id}             the same for another conversation
  message     {conversation_id, client_id, body, attachments?: [upload ids]}
              -> `ack` {client_id, id, conversation_id} to the sender, and the stored
              `message` to every socket of the conversation (the sender's other tabs too).
              A resend with the same client_id stores nothing new and gets the same `ack`.
              In front of a remote core a visitor's message is acknowledged once it is durable
              on the edge: `ack` {client_id, id: null, conversation_id, pending: true,
              reference}, and `sending` to every socket of the conversation; the stored
              `message` (the core's id, the same client_id) follows when the core has it.
  typing      {conversation_id, typing: bool}       relayed to the other side, not stored
  read        {conversation_id, id}                 read receipt up to message `id`: stored with
              the receipts of the next few ms, then `read` goes to the conversation's sockets
  ping        {}                                    -> `pong` (clients may use it as keep-alive)

Visitor only
  start       {client_id, body?, name?, email?}      start a conversation (the pre-chat form's
              answers); `client_id` makes a retried start open one conversation. -> `started`
  contact     {conversation_id, name?, email?}       leave an email when nobody is there
  transcript  {conversation_id, email?}              mail the transcript -> `transcript_sent`
  list        {}                                     -> `conversations` (this visitor's past ones)
  page        {conversation_id, url, title?}         the page of the company's site the visitor
              is on (the widget sends it, also after single-page navigation); relayed to the
              tenant's agents (their inbox) as `page`, not stored

Agent only
  watch       {conversation_id, last_id}             open a conversation in the console
  unwatch     {conversation_id}
  accept      {conversation_id}                      assign to oneself
  assign      {conversation_id, agent_id | null}
  close       {conversation_id}
  note        {conversation_id, client_id, body}     internal note: never sent to visitors
  presence    {status: "online" | "away"}

Server -> client
  ready          {role, visitor_id | agent, conversations?}  after a good hello
  started        {conversation}
  message        {message}                  message: {id, conversation_id, author_type,
                                             author_name, body, created_at, internal,
                                             attachments: [{id, filename, size, url}], client_id}
  ack            {client_id, id, conversation_id}   (pending: id null, see `message` above)
  sending        {message}                  a visitor's message kept on the edge, not at the
                                             core yet: message as above without `id`, plus
                                             reference and state ("sending" | "not_sent": the
                                             core refused it; an admin retries or discards)
  caught_up      {conversation_id, last_id}  end of a resume: live messages follow (a resume
                                             sends the stored ones, then the ones sending)
  typing         {conversation_id, author_type, author_name, typing}
  page           {conversation_id, url, title}   agents: the page the visitor is on
  read           {conversation_id, reader, id}
  conversation   {conversation}              status, assignee or ticket changed
  availability   {conversation_id, state: "online" | "offline" | "no_answer", reason, ticket?}
                                             nobody there: the visitor is asked for an email
  conversations  {conversations}
  inbox          {conversations}             agents: conversations that appeared or changed
                                             (a moment's messages: one frame)
  presence       {agents: {id: status}}      agents: who is online (the changes of a few ms
                                             in one frame)
  transcript_sent {conversation_id}
  pong           {}
  error          {code, message, client_id?}

Error codes (the socket stays open unless said otherwise)
  bad_json, bad_frame, unknown_type, too_large, rate_limited, not_allowed, not_found,
  invalid (a field's value), unavailable (the help desk behind this edge does not answer:
  no chat can start now; nothing was stored), server_error (ours: nothing was stored; send
  the same frame again later, and it does not count towards closing the socket).
Close codes: 4400 too many bad frames, 4401 no valid hello in time or a bad token,
  4403 Origin not allowed, 4408 idle beyond the limit, 4429 too many connections.

The server pings every socket every 25 s (websocket ping frames, which browsers answer by
themselves) so that proxies keep idle connections open.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from portal import jsonsafe
from portal.request_helpers import MAX_DB_ID

MAX_FRAME_BYTES = 16_384
MAX_FRAME_DEPTH = 8  # the deepest frame (a message with attachment ids) nests 2 levels
MAX_BODY = 5_000
MAX_CLIENT_ID = 64  # stored behind the author's id, within the core's 100
MAX_NAME = 200
MAX_URL = 1000
MAX_ATTACHMENTS = 5
# A socket may send RATE_BURST frames at once and RATE_PER_SECOND on average.
RATE_PER_SECOND = 10.0
RATE_BURST = 20.0
# After this many refused frames in a row the socket is closed.
MAX_STRIKES = 10
HELLO_TIMEOUT_S = 10.0
PING_INTERVAL_S = 25.0

BOTH_TYPES = frozenset({"hello", "resume", "message", "typing", "read", "ping"})
VISITOR_TYPES = BOTH_TYPES | {"start", "contact", "transcript", "list", "page"}
AGENT_TYPES = BOTH_TYPES | {"watch", "unwatch", "accept", "assign", "close", "note", "presence"}

CLOSE_BAD_FRAMES = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_ORIGIN = 4403
CLOSE_TOO_MANY = 4429


class FrameError(ValueError):
    """A frame the server refuses; `code` is the error frame's code."""

    def __init__(self, code: str, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id
        # The client's fault counts towards closing its socket; a failure of ours does not.
        self.strike = code != "server_error"

    def frame(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.client_id:
            data["client_id"] = self.client_id
        return data


def parse(text: str, allowed: frozenset[str]) -> dict[str, Any]:
    """A frame from a text message, or FrameError naming what is wrong with it."""
    # (A character is at most 4 bytes: most frames need not be encoded to be measured.)
    if len(text) > MAX_FRAME_BYTES // 4 and len(text.encode()) > MAX_FRAME_BYTES:
        raise FrameError("too_large", f"Frames may be at most {MAX_FRAME_BYTES} bytes.")
    try:
        frame = jsonsafe.loads(text, max_depth=MAX_FRAME_DEPTH)
    except jsonsafe.JSONError:
        raise FrameError(
            "bad_json", "A frame must be a JSON object, nested at most a few levels."
        ) from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("bad_frame", 'A frame must be a JSON object with a "type".')
    if frame["type"] not in allowed:
        raise FrameError("unknown_type", f"Unknown frame type {frame['type'][:40]!r}.")
    return frame


def integer(frame: dict[str, Any], key: str, *, default: int | None = None) -> int:
    """A non-negative integer field of a frame."""
    value = frame.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DB_ID:
        raise FrameError("invalid", f'"{key}" must be a non-negative integer.')
    return value


def text(frame: dict[str, Any], key: str, *, limit: int, required: bool = False) -> str:
    """A string field of a frame, stripped; FrameError when too long or missing."""
    value = frame.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FrameError("invalid", f'"{key}" must be a string.')
    value = value.strip()
    if len(value) > limit:
        raise FrameError("invalid", f'"{key}" may be at most {limit} characters.')
    if required and not value:
        raise FrameError("invalid", f'"{key}" is required.')
    return value


def client_id(frame: dict[str, Any]) -> str:
    value = frame.get("client_id")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CLIENT_ID:
        raise FrameError(
            "invalid", f'"client_id" must be a string of 1 to {MAX_CLIENT_ID} characters.'
        )
    return value


@dataclass
class RateLimit:
    """A token bucket per socket: bursts of RATE_BURST, RATE_PER_SECOND on average."""

    rate: float = RATE_PER_SECOND
    burst: float = RATE_BURST
    tokens: float = RATE_BURST
    stamp: float = field(default_factory=time.monotonic)

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
