"""The remote core's read cache: an answer past its time is given while the core is away."""

from __future__ import annotations

import asyncio

import pytest

from portal.core.remote.cache import ReadCache
from portal.core.remote.client import CoreUnavailable

ARGS = {"tenant_id": 1, "slug": "refunds", "language": "en"}


async def test_an_answer_past_its_time_is_given_while_the_core_is_away():
    cache = ReadCache(ttl=0.01)
    calls = 0

    async def answers() -> str:
        nonlocal calls
        calls += 1
        return f"article, read {calls}"

    async def away() -> str:
        raise CoreUnavailable("connection refused")

    assert await cache.read("kb", "get_article_by_slug", ARGS, answers) == "article, read 1"
    await asyncio.sleep(0.02)  # past the answer's time
    assert await cache.read("kb", "get_article_by_slug", ARGS, away) == "article, read 1"
    # The core back: a fresh read, not the kept answer.
    assert await cache.read("kb", "get_article_by_slug", ARGS, answers) == "article, read 2"
    # Nothing kept for a read never answered, nor for one an event dropped: the error stands.
    with pytest.raises(CoreUnavailable):
        await cache.read("kb", "get_article_by_slug", {**ARGS, "slug": "other"}, away)
    cache.drop("kb", 1)
    with pytest.raises(CoreUnavailable):
        await cache.read("kb", "get_article_by_slug", ARGS, away)
