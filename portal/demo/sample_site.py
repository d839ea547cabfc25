"""`portal sample-site`: a plain company website on another origin, with the widget's snippet.

It shows the widget as a customer's site would: the page comes from http://127.0.0.2:8001, the
widget from the service (http://127.0.0.1:8000 by default), so everything crosses origins as in
production. `portal demo` lets that origin embed the demo tenant's apps.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

SAMPLE_HOST = "127.0.0.2"
SAMPLE_PORT = 8001

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo Co: garden tools</title>
<link rel="stylesheet" href="/site.css">
<script>window.PortalWidget=window.PortalWidget||function(){{(PortalWidget.q=PortalWidget.q||[]).push(arguments)}}</script>
<script async src="{service}/widget.js"></script>
</head>
<body>
<header><strong>Demo Co</strong>
<nav><a href="/">Shop</a> <a href="/about">About us</a></nav></header>
<main>
<h1>{title}</h1>
<p>This is a company's own website. The help button in the corner is the help desk's widget,
loaded from {service_text} by the two lines of the snippet.</p>
<p><button type="button" id="open-chat">Chat with us</button>
<button type="button" id="search-kb">Search "password"</button></p>
</main>
<script src="/site.js"></script>
</body>
</html>
"""

CSS = """body { font: 17px/1.5 Georgia, serif; margin: 0; color: #222; }
header { display: flex; gap: 2rem; padding: 1rem 2rem; background: #eef3e8; }
main { max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
"""

# The page's own buttons drive the widget through its API (and work before it has loaded).
SCRIPT = """document.getElementById("open-chat").addEventListener("click", function () {
  PortalWidget("open", "chat");
});
document.getElementById("search-kb").addEventListener("click", function () {
  PortalWidget("open", "kb", { query: "password" });
});
"""


def sample_site(service: str) -> Starlette:
    """The sample site's app, loading the widget from `service`."""

    def page(title: str) -> Callable[[Request], Awaitable[HTMLResponse]]:
        async def endpoint(request: Request) -> HTMLResponse:
            body = PAGE.format(
                service=html.escape(service), service_text=html.escape(service), title=title
            )
            return HTMLResponse(body)

        return endpoint

    async def css(request: Request) -> HTMLResponse:
        return HTMLResponse(CSS, media_type="text/css")

    async def script(request: Request) -> HTMLResponse:
        return HTMLResponse(SCRIPT, media_type="text/javascript")

    return Starlette(
        routes=[
            Route("/", page("Garden tools that last")),
            Route("/about", page("About Demo Co")),
            Route("/site.css", css),
            Route("/site.js", script),
        ]
    )


def sample_origin(host: str = SAMPLE_HOST, port: int = SAMPLE_PORT) -> str:
    return f"http://{host}:{port}"
