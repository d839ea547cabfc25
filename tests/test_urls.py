"""Named routes' paths: the path cache gives what the router gives, without scanning it."""

import gc

import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, NoMatchFound, Route, Router

from portal.urls import PathCache


def endpoint(request):
    return PlainTextResponse("")


ROUTER = Router(
    routes=[
        Route("/", endpoint, name="home"),
        Mount("/static", app=endpoint, name="static"),
        Route("/kb/{lang}/articles/{slug}", endpoint, name="article"),
        Mount("/admin", routes=[Route("/articles/{id:int}", endpoint, name="admin_article")]),
        # One name, two shapes: the parameters given pick the route, as with the router.
        Route("/kb/{lang}/", endpoint, name="kb"),
        Route("/kb/", endpoint, name="kb"),
        Mount("/agent", name="agent", routes=[Route("/tickets/{id:int}", endpoint, name="t")]),
    ]
)

CALLS = [
    ("home", {}),
    ("static", {"path": "/css/portal.css"}),
    ("article", {"lang": "en", "slug": "reset-password"}),
    ("article", {"lang": "nb", "slug": "tilbakestill"}),
    ("admin_article", {"id": 7}),
    ("kb", {"lang": "ja"}),
    ("kb", {}),
    ("agent:t", {"id": 3}),
]


@pytest.mark.parametrize("name, params", CALLS)
def test_paths_are_the_routers(name, params):
    cache = PathCache(ROUTER)
    expected = ROUTER.url_path_for(name, **params)
    assert cache.path_for(name, params) == expected  # built
    assert cache.path_for(name, params) == expected  # remembered


def test_one_cache_gives_every_shape_of_every_name():
    cache = PathCache(ROUTER)
    for _ in range(2):
        assert [cache.path_for(name, params) for name, params in CALLS] == [
            ROUTER.url_path_for(name, **params) for name, params in CALLS
        ]


@pytest.mark.parametrize(
    "name, params",
    [("nowhere", {}), ("article", {"lang": "en"}), ("article", {"lang": "en", "token": "x"})],
)
def test_what_the_router_refuses_the_cache_refuses(name, params):
    with pytest.raises(NoMatchFound):
        ROUTER.url_path_for(name, **params)
    with pytest.raises(NoMatchFound):
        PathCache(ROUTER).path_for(name, params)


def test_remembered_paths_are_nothing_for_the_garbage_collector_to_walk():
    cache = PathCache(ROUTER)
    paths = [cache.path_for(name, params) for name, params in CALLS]
    assert all(hasattr(path, "path") for path in paths)  # what templates read, as before
    for _ in range(3):  # (it stops tracking a tuple of untracked things as it meets it: one
        gc.collect()  # level of nesting a pass)
    assert not any(gc.is_tracked(path) for path in cache._paths.values())
    assert not any(gc.is_tracked(key) for key in cache._paths)
