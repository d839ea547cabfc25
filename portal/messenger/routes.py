"""The messenger's route table; the agent's socket, `/agent/ws`, is in `portal.agent`.

- `GET /messenger` the visitor's chat page (`pages.py`).
- `POST /messenger/token` a signed visitor token (`tokens.py`).
- `POST /messenger/uploads`, `GET /messenger/attachments/{id}?sig=` chat files (`uploads.py`).
- `WS /messenger/ws` visitors (`visitor_socket.py`; frames in `protocol.py`).
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from portal.messenger.pages import messenger_page
from portal.messenger.tokens import issue_token
from portal.messenger.uploads import attachment, upload
from portal.messenger.visitor_socket import visitor_socket

routes: list[BaseRoute] = [
    Route("/messenger", messenger_page, name="messenger"),
    Route("/messenger/token", issue_token, methods=["POST"], name="messenger_token"),
    Route("/messenger/uploads", upload, methods=["POST"], name="messenger_upload"),
    Route(
        "/messenger/attachments/{attachment_id:int}",
        attachment,
        name="messenger_attachment",
    ),
    WebSocketRoute("/messenger/ws", visitor_socket, name="messenger_ws"),
]
