"""The indexed router answers every path as Starlette's own router would."""

import gc

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router

from portal.routing import IndexedRouter, first_segment


def named(name: str):
    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{name} {dict(request.path_params)}")

    return endpoint


ROUTES = [
    Route("/", named("root")),
    Route("/kb/", named("kb-root")),
    Route("/kb/search.json", named("search-json")),
    Route("/kb/{lang}/", named("kb-home")),
    Route("/kb/{lang}/articles/{slug}", named("article")),
    Route("/kb/{lang}/articles/{slug}/feedback", named("feedback"), methods=["POST"]),
    Route("/widget.js", named("widget")),
    Route("/portal", named("portal")),
    Route("/portal/tickets/{id:int}", named("ticket")),
    Route("/{anything}/shadow", named("parameter-first")),
    Route("/portal/tickets/{id:int}", named("ticket-post"), methods=["POST"]),
    Mount("/admin", routes=[Route("/", named("admin")), Route("/tickets", named("admin-list"))]),
]

PATHS = [
    "/",
    "/kb",
    "/kb/",
    "/kb/search.json",
    "/kb/en",
    "/kb/en/",
    "/kb/en/articles/a-b",
    "/kb/en/articles/a-b/",
    "/kb/en/articles/a-b/feedback",
    "/widget.js",
    "/widget.js/",
    "/portal",
    "/portal/",
    "/portal/tickets/12",
    "/portal/tickets/x",
    "/kb/shadow",
    "/nowhere/shadow",
    "/admin",
    "/admin/",
    "/admin/tickets",
    "/admin/tickets/",
    "/nowhere",
    "/kb//en/",
    "//",
    "/static/site.css",
]


def client(router: Router) -> httpx.AsyncClient:
    app = Starlette()
    app.router = router
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")


async def answers(router_class: type[Router]) -> list[tuple[str, str, int, str, str]]:
    """Every path and method's answer, twice over: the second time from what was remembered."""
    seen = []
    async with client(router_class(ROUTES)) as http:
        for path in PATHS + PATHS:
            for method in ("GET", "POST"):
                response = await http.request(method, path)
                location = response.headers.get("location", "")
                seen.append((method, path, response.status_code, response.text, location))
    return seen


async def test_every_path_gets_the_answer_starlettes_router_gives():
    ours, theirs = await answers(IndexedRouter), await answers(Router)
    assert ours == theirs
    # The table exercised every outcome: a match, a 405, a slash redirect and a 404.
    assert {status for _, _, status, _, _ in ours} >= {200, 405, 307, 404}


async def test_routes_added_after_construction_are_found():
    router = IndexedRouter(ROUTES[:2])
    async with client(router) as http:
        assert (await http.get("/late")).status_code == 404
        assert (await http.get("/kb/")).text == "kb-root {}"
        router.routes.append(Route("/late", named("late")))
        assert (await http.get("/late")).text == "late {}"
        router.routes.insert(0, Route("/kb/", named("first")))
        assert (await http.get("/kb/")).text == "first {}"


async def test_each_request_gets_its_own_path_parameters():
    async def meddle(request: Request) -> PlainTextResponse:
        seen = str(dict(request.path_params))
        request.path_params["slug"] = "changed"
        return PlainTextResponse(seen)

    router = IndexedRouter([Route("/kb/{lang}/articles/{slug}", meddle)])
    async with client(router) as http:
        answers = [(await http.get("/kb/en/articles/a")).text for _ in range(2)]
    assert answers == ["{'lang': 'en', 'slug': 'a'}"] * 2


@pytest.mark.parametrize(
    "path, segment", [("/", ""), ("/kb", "kb"), ("/kb/en/x", "kb"), ("/widget.js", "widget.js")]
)
def test_first_segment(path: str, segment: str):
    assert first_segment(path) == segment


async def test_remembered_paths_are_nothing_for_the_garbage_collector_to_walk():
    """A big help center's router remembers thousands of paths, and every full collection
    walked each one (a tuple and two dicts): they are kept as numbers and strings now."""
    router = IndexedRouter(ROUTES)
    async with client(router) as http:
        for path in PATHS:
            await http.get(path)
    remembered = list(router._matches.values())
    assert len(remembered) > 10  # the table's matches, the admin mount's included
    for _ in range(3):  # (it stops tracking a tuple of untracked things as it meets it: one
        gc.collect()  # level of nesting a pass)
    assert not any(gc.is_tracked(entry) for entry in remembered)
    async with client(router) as http:  # and what was remembered still answers
        assert (
            await http.get("/kb/en/articles/a-b")
        ).text == "article {'lang': 'en', 'slug': 'a-b'}"
        assert (await http.get("/admin/tickets")).text == "admin-list {}"
