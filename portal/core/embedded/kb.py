"""The embedded core's knowledge base: categories, articles, feedback and missed searches.

Article writes advance the tenant's `kb_revision` (the tenant row is the lock), so the search
index can follow every change with an `articles_changed_since` cursor.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import (
    Article,
    ArticleDraft,
    Category,
    Conflict,
    Event,
    Feedback,
    FeedbackSummary,
    MissedSearch,
    NotFound,
)
from portal.core.embedded import schema as t
from portal.core.embedded.domain import EmbeddedDomain
from portal.core.embedded.engine import CoreConnection
from portal.core.embedded.kb_queries import (
    ADD_VIEWS,
    ARTICLE,
    ARTICLE_BY_SLUG,
    CATEGORY,
    TRANSLATIONS,
)
from portal.core.embedded.rows import aware, from_row, utcnow
from portal.core.slugs import slugify


class EmbeddedKnowledgeBase(EmbeddedDomain):
    """`core.kb` of the embedded core."""

    # -------------------------------------------------------------- categories
    @staticmethod
    def _category(row: Any) -> Category:
        return from_row(Category, row)

    async def ensure_category(
        self,
        tenant_id: int,
        language: str,
        name: str,
        *,
        parent_id: int | None = None,
        slug: str = "",
    ) -> Category:
        slug = slug or slugify(name)
        try:
            return await self.get_category_by_slug(tenant_id, language, slug)
        except NotFound:
            pass
        async with self.engine.begin() as conn:
            try:
                await conn.execute(
                    t.kb_categories.insert().values(
                        tenant_id=tenant_id,
                        language=language,
                        slug=slug,
                        name=name,
                        description="",
                        parent_id=parent_id,
                        position=0,
                        created_at=utcnow(),
                    )
                )
            except IntegrityError:
                pass  # created concurrently: the row we want exists
        category = await self.get_category_by_slug(tenant_id, language, slug)
        self._publish_category(category.tenant_id, category.id)
        return category

    async def update_category(
        self,
        tenant_id: int,
        category_id: int,
        *,
        name: str,
        description: str,
        parent_id: int | None,
        position: int,
    ) -> Category:
        if parent_id == category_id:
            raise Conflict("a category cannot be its own parent")
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.kb_categories.update()
                .where(t.kb_categories.c.tenant_id == tenant_id)
                .where(t.kb_categories.c.id == category_id)
                .values(name=name, description=description, parent_id=parent_id, position=position)
            )
            if result.rowcount == 0:
                raise NotFound("no such category")
        self._publish_category(tenant_id, category_id)
        return await self.get_category(tenant_id, category_id)

    async def delete_category(self, tenant_id: int, category_id: int) -> None:
        async with self.engine.begin() as conn:
            has_articles = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.kb_articles)
                    .where(t.kb_articles.c.category_id == category_id)
                    .where(t.kb_articles.c.tenant_id == tenant_id)
                )
            ).scalar_one()
            if has_articles:
                raise Conflict("move or delete this category's articles first")
            await conn.execute(
                t.kb_categories.update()
                .where(t.kb_categories.c.parent_id == category_id)
                .where(t.kb_categories.c.tenant_id == tenant_id)
                .values(parent_id=None)
            )
            await conn.execute(
                t.kb_categories.delete()
                .where(t.kb_categories.c.tenant_id == tenant_id)
                .where(t.kb_categories.c.id == category_id)
            )
        self._publish_category(tenant_id, category_id)

    def _publish_category(self, tenant_id: int, category_id: int) -> None:
        # Article pages show category names in their breadcrumb, so caches must hear of this.
        self._bus.publish(Event("category.changed", tenant_id, {"category_id": category_id}))

    async def list_categories(self, tenant_id: int, language: str | None = None) -> list[Category]:
        query = sa.select(t.kb_categories).where(t.kb_categories.c.tenant_id == tenant_id)
        if language is not None:
            query = query.where(t.kb_categories.c.language == language)
        query = query.order_by(t.kb_categories.c.position, t.kb_categories.c.name)
        async with self.engine.connect() as conn:
            return [self._category(row) for row in (await conn.execute(query)).all()]

    async def get_category(self, tenant_id: int, category_id: int) -> Category:
        params = {"tenant_id": tenant_id, "id": category_id}
        return self._category(await self._first(CATEGORY, params, "no such category"))

    async def _first(self, statement: Any, params: dict[str, Any], what: str) -> Any:
        """The first row of a statement built once; NotFound(`what`) when there is none."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(statement, params)).first()
        if row is None:
            raise NotFound(what)
        return row

    async def get_category_by_slug(self, tenant_id: int, language: str, slug: str) -> Category:
        c = t.kb_categories.c
        return await self._one_category(
            (c.tenant_id == tenant_id) & (c.language == language) & (c.slug == slug)
        )

    async def _one_category(self, where: Any) -> Category:
        return await self._one(t.kb_categories, where, self._category, "no such category")

    # ---------------------------------------------------------------- articles
    @staticmethod
    def _article(row: Any) -> Article:
        return from_row(Article, row, updated_at=aware(row.updated_at))

    async def _next_revision(self, conn: CoreConnection, tenant_id: int) -> int:
        # The tenant row is the per-tenant lock, so revisions are handed out in commit order.
        await conn.execute(
            t.tenants.update()
            .where(t.tenants.c.id == tenant_id)
            .values(kb_revision=t.tenants.c.kb_revision + 1)
        )
        return (
            await conn.execute(
                sa.select(t.tenants.c.kb_revision).where(t.tenants.c.id == tenant_id)
            )
        ).scalar_one()

    async def _check_category(
        self, conn: CoreConnection, tenant_id: int, category_id: int | None
    ) -> None:
        if category_id is None:
            return
        found = (
            await conn.execute(
                sa.select(t.kb_categories.c.id)
                .where(t.kb_categories.c.id == category_id)
                .where(t.kb_categories.c.tenant_id == tenant_id)
            )
        ).first()
        if found is None:
            raise NotFound("no such category")

    async def save_article(self, tenant_id: int, draft: ArticleDraft) -> Article:
        c = t.kb_articles.c
        now = utcnow()
        async with self.engine.begin() as conn:
            await self._check_category(conn, tenant_id, draft.category_id)
            revision = await self._next_revision(conn, tenant_id)
            values = dict(
                title=draft.title,
                body_md=draft.body_md,
                published=draft.published,
                category_id=draft.category_id,
                revision=revision,
                updated_at=now,
            )
            result = await conn.execute(
                t.kb_articles.update()
                .where(c.tenant_id == tenant_id)
                .where(c.language == draft.language)
                .where(c.slug == draft.slug)
                .values(**values)
            )
            if result.rowcount == 0:
                await conn.execute(
                    t.kb_articles.insert().values(
                        tenant_id=tenant_id,
                        language=draft.language,
                        slug=draft.slug,
                        views=0,
                        created_at=now,
                        **values,
                    )
                )
            row = (
                await conn.execute(
                    sa.select(t.kb_articles)
                    .where(c.tenant_id == tenant_id)
                    .where(c.language == draft.language)
                    .where(c.slug == draft.slug)
                )
            ).one()
        article = self._article(row)
        self._publish_article(article)
        return article

    async def update_article(self, tenant_id: int, article_id: int, draft: ArticleDraft) -> Article:
        c = t.kb_articles.c
        async with self.engine.begin() as conn:
            await self._check_category(conn, tenant_id, draft.category_id)
            revision = await self._next_revision(conn, tenant_id)
            try:
                result = await conn.execute(
                    t.kb_articles.update()
                    .where(c.tenant_id == tenant_id)
                    .where(c.id == article_id)
                    .values(
                        language=draft.language,
                        slug=draft.slug,
                        title=draft.title,
                        body_md=draft.body_md,
                        published=draft.published,
                        category_id=draft.category_id,
                        revision=revision,
                        updated_at=utcnow(),
                    )
                )
            except IntegrityError as exc:
                raise Conflict(
                    f"another {draft.language} article has the slug {draft.slug!r}"
                ) from exc
            if result.rowcount == 0:
                raise NotFound("no such article")
            row = (await conn.execute(sa.select(t.kb_articles).where(c.id == article_id))).one()
        article = self._article(row)
        self._publish_article(article)
        return article

    def _publish_article(self, article: Article) -> None:
        self._bus.publish(
            Event(
                "article.changed",
                article.tenant_id,
                {
                    "article_id": article.id,
                    "revision": article.revision,
                    "published": article.published,
                },
            )
        )

    async def get_article(self, tenant_id: int, article_id: int) -> Article:
        params = {"tenant_id": tenant_id, "id": article_id}
        return self._article(await self._first(ARTICLE, params, "no such article"))

    async def get_article_by_slug(self, tenant_id: int, language: str, slug: str) -> Article:
        params = {"tenant_id": tenant_id, "language": language, "slug": slug}
        return self._article(await self._first(ARTICLE_BY_SLUG, params, "no such article"))

    async def list_articles(
        self,
        tenant_id: int,
        *,
        language: str | None = None,
        category_id: int | None = None,
        published_only: bool = True,
    ) -> list[Article]:
        c = t.kb_articles.c
        query = sa.select(t.kb_articles).where(c.tenant_id == tenant_id)
        if language is not None:
            query = query.where(c.language == language)
        if category_id is not None:
            query = query.where(c.category_id == category_id)
        if published_only:
            query = query.where(c.published.is_(True))
        query = query.order_by(c.title)
        async with self.engine.connect() as conn:
            return [self._article(row) for row in (await conn.execute(query)).all()]

    async def translations(self, tenant_id: int, slug: str) -> list[Article]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(TRANSLATIONS, {"tenant_id": tenant_id, "slug": slug})
            return [self._article(row) for row in rows.all()]

    async def articles_changed_since(
        self, tenant_id: int, cursor: int, limit: int = 1000
    ) -> tuple[list[Article], int]:
        c = t.kb_articles.c
        query = (
            sa.select(t.kb_articles)
            .where(c.tenant_id == tenant_id)
            .where(c.revision > cursor)
            .order_by(c.revision)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            articles = [self._article(row) for row in (await conn.execute(query)).all()]
        return articles, (articles[-1].revision if articles else cursor)

    async def most_viewed(self, tenant_id: int, language: str, limit: int = 5) -> list[Article]:
        c = t.kb_articles.c
        query = (
            sa.select(t.kb_articles)
            .where(c.tenant_id == tenant_id)
            .where(c.language == language)
            .where(c.published.is_(True))
            .order_by(c.views.desc(), c.title)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [self._article(row) for row in (await conn.execute(query)).all()]

    async def add_article_views(self, tenant_id: int, views: dict[int, int]) -> None:
        """One transaction and one statement (executemany) for every article's count.

        The caller keeps batches small (`portal.kb.store.VIEW_BATCH`): SQLite runs on the event
        loop, so a batch's size is how long every request waits.
        """
        if not views:
            return
        rows = [{"t_id": tenant_id, "a_id": a, "n": n} for a, n in views.items()]
        async with self.engine.begin() as conn:
            await conn.execute(ADD_VIEWS, rows)

    async def record_feedback(
        self, tenant_id: int, feedback: Feedback, idempotency_key: str
    ) -> None:
        await self.get_article(tenant_id, feedback.article_id)
        async with self.engine.begin() as conn:
            try:
                await conn.execute(
                    t.kb_feedback.insert().values(
                        tenant_id=tenant_id,
                        article_id=feedback.article_id,
                        helpful=feedback.helpful,
                        comment=feedback.comment,
                        idempotency_key=idempotency_key,
                        created_at=utcnow(),
                    )
                )
            except IntegrityError:
                pass  # the same vote sent again: already stored

    async def feedback_summary(self, tenant_id: int) -> list[FeedbackSummary]:
        f, a = t.kb_feedback.c, t.kb_articles.c
        helpful = sa.func.sum(sa.case((f.helpful.is_(True), 1), else_=0))
        not_helpful = sa.func.sum(sa.case((f.helpful.is_(False), 1), else_=0))
        query = (
            sa.select(f.article_id, a.title, helpful.label("helpful"), not_helpful.label("no"))
            .join(t.kb_articles, a.id == f.article_id)
            .where(f.tenant_id == tenant_id)
            .group_by(f.article_id, a.title)
            .order_by(not_helpful.desc(), a.title)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [FeedbackSummary(r.article_id, r.title, int(r.helpful), int(r.no)) for r in rows]

    async def record_missed_search(self, tenant_id: int, query: str, language: str) -> None:
        query = " ".join(query.lower().split())[:200]
        if not query:
            return
        m = t.kb_missed_searches.c
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.kb_missed_searches.update()
                .where(m.tenant_id == tenant_id)
                .where(m.language == language)
                .where(m.query == query)
                .values(count=m.count + 1, last_seen=now)
            )
            if result.rowcount == 0:
                await conn.execute(
                    t.kb_missed_searches.insert().values(
                        tenant_id=tenant_id, query=query, language=language, count=1, last_seen=now
                    )
                )

    async def missed_searches(self, tenant_id: int, limit: int = 50) -> list[MissedSearch]:
        m = t.kb_missed_searches.c
        query = (
            sa.select(t.kb_missed_searches)
            .where(m.tenant_id == tenant_id)
            .order_by(m.count.desc(), m.last_seen.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            MissedSearch(r.query, r.language, r._mapping["count"], aware(r.last_seen)) for r in rows
        ]
