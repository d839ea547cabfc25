"""The agent console's route table, mounted at `/agent`: tickets, chats and the chat socket."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from portal.agent.chats import chats
from portal.agent.socket import agent_socket
from portal.agent.tickets import (
    attachment,
    home,
    ticket,
    ticket_assign,
    ticket_reply,
    ticket_status,
    tickets,
)

routes: list[BaseRoute] = [
    Route("/", home, name="agent_home"),
    Route("/tickets", tickets, name="agent_tickets"),
    Route("/chats", chats, name="agent_chats"),
    Route("/tickets/{id:int}", ticket, name="agent_ticket"),
    Route("/tickets/{id:int}/reply", ticket_reply, methods=["POST"], name="agent_ticket_reply"),
    Route("/tickets/{id:int}/status", ticket_status, methods=["POST"], name="agent_ticket_status"),
    Route("/tickets/{id:int}/assign", ticket_assign, methods=["POST"], name="agent_ticket_assign"),
    Route("/attachments/{id:int}", attachment, name="agent_attachment"),
    WebSocketRoute("/ws", agent_socket, name="agent_ws"),
]
