"""The embedded knowledge base's statements that are built once: those of every article page's
first view and of the view-count flush. Building a statement costs more than SQLite takes to
answer it; these take their values as bound parameters."""

from __future__ import annotations

import sqlalchemy as sa

from portal.core.embedded import schema as t

_a, _c = t.kb_articles.c, t.kb_categories.c
_TENANT_ID: sa.BindParameter[int] = sa.bindparam("tenant_id", type_=sa.Integer)
_ID: sa.BindParameter[int] = sa.bindparam("id", type_=sa.Integer)
ARTICLE = sa.select(t.kb_articles).where(_a.tenant_id == _TENANT_ID, _a.id == _ID)
ARTICLE_BY_SLUG = sa.select(t.kb_articles).where(
    _a.tenant_id == _TENANT_ID,
    _a.language == sa.bindparam("language"),
    _a.slug == sa.bindparam("slug"),
)
# The tenant's article languages, one index seek each (a "loose index scan"): the unique index
# leads (tenant_id, language, slug), so a lookup by slug alone would read every article of the
# tenant (5 ms at 50,000, on the event loop with SQLite), while with the languages named it is
# a few seeks whatever the size.
_LANGUAGES = (
    sa.select(sa.func.min(_a.language).label("language"))
    .where(_a.tenant_id == _TENANT_ID)
    .cte("languages", recursive=True)
)
_LANGUAGES = _LANGUAGES.union_all(
    sa.select(
        sa.select(sa.func.min(_a.language))
        .where(_a.tenant_id == _TENANT_ID, _a.language > _LANGUAGES.c.language)
        .scalar_subquery()
    ).where(_LANGUAGES.c.language.is_not(None))
)
TRANSLATIONS = (
    sa.select(t.kb_articles)
    .where(
        _a.tenant_id == _TENANT_ID,
        _a.language.in_(sa.select(_LANGUAGES.c.language)),
        _a.slug == sa.bindparam("slug"),
        _a.published.is_(True),
    )
    .order_by(_a.language)
)
CATEGORY = sa.select(t.kb_categories).where(_c.tenant_id == _TENANT_ID, _c.id == _ID)
ADD_VIEWS = (
    t.kb_articles.update()
    .where(_a.tenant_id == sa.bindparam("t_id"), _a.id == sa.bindparam("a_id"))
    .values(views=_a.views + sa.bindparam("n", type_=sa.Integer))
)
