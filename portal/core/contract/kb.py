"""The knowledge base: categories and articles per language, feedback, missed searches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Category:
    id: int
    tenant_id: int
    language: str
    slug: str
    name: str
    description: str = ""
    parent_id: int | None = None
    position: int = 0


@dataclass(frozen=True, slots=True)  # (kept by the thousand: no __dict__ for the collector)
class Article:
    id: int
    tenant_id: int
    category_id: int | None
    language: str
    slug: str
    title: str
    body_md: str
    published: bool
    updated_at: datetime
    revision: int = 0
    views: int = 0


@dataclass(frozen=True)
class ArticleDraft:
    """What a writer supplies; (language, slug) identifies the article within a tenant."""

    language: str
    slug: str
    title: str
    body_md: str
    published: bool = True
    category_id: int | None = None


@dataclass(frozen=True)
class Feedback:
    article_id: int
    helpful: bool
    comment: str = ""


@dataclass(frozen=True)
class MissedSearch:
    query: str
    language: str
    count: int
    last_seen: datetime


@dataclass(frozen=True)
class FeedbackSummary:
    article_id: int
    title: str
    helpful: int
    not_helpful: int


@runtime_checkable
class KnowledgeBaseDomain(Protocol):
    """`core.kb`: the search index follows it through `articles_changed_since` and events."""

    async def ensure_category(
        self,
        tenant_id: int,
        language: str,
        name: str,
        *,
        parent_id: int | None = None,
        slug: str = "",
    ) -> Category: ...
    async def update_category(
        self,
        tenant_id: int,
        category_id: int,
        *,
        name: str,
        description: str,
        parent_id: int | None,
        position: int,
    ) -> Category: ...
    async def delete_category(self, tenant_id: int, category_id: int) -> None: ...
    async def list_categories(
        self, tenant_id: int, language: str | None = None
    ) -> list[Category]: ...
    async def get_category(self, tenant_id: int, category_id: int) -> Category: ...
    async def get_category_by_slug(self, tenant_id: int, language: str, slug: str) -> Category: ...

    async def save_article(self, tenant_id: int, draft: ArticleDraft) -> Article: ...
    async def update_article(
        self, tenant_id: int, article_id: int, draft: ArticleDraft
    ) -> Article: ...
    async def get_article(self, tenant_id: int, article_id: int) -> Article: ...
    async def get_article_by_slug(self, tenant_id: int, language: str, slug: str) -> Article: ...
    async def list_articles(
        self,
        tenant_id: int,
        *,
        language: str | None = None,
        category_id: int | None = None,
        published_only: bool = True,
    ) -> list[Article]: ...
    async def translations(self, tenant_id: int, slug: str) -> list[Article]: ...
    async def articles_changed_since(
        self, tenant_id: int, cursor: int, limit: int = 1000
    ) -> tuple[list[Article], int]: ...
    async def most_viewed(self, tenant_id: int, language: str, limit: int = 5) -> list[Article]: ...
    async def add_article_views(self, tenant_id: int, views: dict[int, int]) -> None: ...

    async def record_feedback(
        self, tenant_id: int, feedback: Feedback, idempotency_key: str
    ) -> None: ...
    async def feedback_summary(self, tenant_id: int) -> list[FeedbackSummary]: ...
    async def record_missed_search(self, tenant_id: int, query: str, language: str) -> None: ...
    async def missed_searches(self, tenant_id: int, limit: int = 50) -> list[MissedSearch]: ...
