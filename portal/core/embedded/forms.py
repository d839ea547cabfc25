"""The embedded core's forms domain: departments, forms with their fields, and deflection."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import (
    Choice,
    Conflict,
    DeflectionSummary,
    Department,
    Field,
    Form,
    FormDraft,
    NotFound,
)
from portal.core.embedded import schema as t
from portal.core.embedded.domain import EmbeddedDomain
from portal.core.embedded.rows import inserted_id, require_in_tenant, utcnow


class EmbeddedForms(EmbeddedDomain):
    """`core.forms` of the embedded core."""

    # ------------------------------------------------------------- departments
    async def create_department(self, tenant_id: int, name: str) -> Department:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.departments.insert().values(tenant_id=tenant_id, name=name, created_at=utcnow())
            )
        return Department(inserted_id(result), tenant_id, name)

    async def list_departments(self, tenant_id: int) -> list[Department]:
        d = t.departments.c
        query = (
            sa.select(d.id, d.tenant_id, d.name).where(d.tenant_id == tenant_id).order_by(d.name)
        )
        async with self.engine.connect() as conn:
            return [Department(r.id, r.tenant_id, r.name) for r in await conn.execute(query)]

    # ------------------------------------------------------------------- forms
    @staticmethod
    def _field_row(form_id: int, position: int, f: Field) -> dict[str, Any]:
        return dict(
            form_id=form_id,
            key=f.key,
            label=f.label,
            type=f.type,
            required=f.required,
            help_text=f.help_text,
            position=position,
            department_ids=list(f.department_ids),
            options=[
                {"value": c.value, "label": c.label, "department_ids": list(c.department_ids)}
                for c in f.options
            ],
        )

    @staticmethod
    def _field(row: Any) -> Field:
        return Field(
            key=row.key,
            label=row.label,
            type=row.type,
            required=row.required,
            help_text=row.help_text,
            department_ids=tuple(row.department_ids or ()),
            options=tuple(
                Choice(o["value"], o["label"], tuple(o.get("department_ids", ())))
                for o in row.options or ()
            ),
        )

    async def save_form(self, tenant_id: int, draft: FormDraft, form_id: int | None = None) -> Form:
        keys = [f.key for f in draft.fields]
        if len(keys) != len(set(keys)):
            raise Conflict("two fields of the form have the same key")
        async with self.engine.begin() as conn:
            await require_in_tenant(
                conn, t.departments, tenant_id, draft.department_id, "no such department"
            )
            values = dict(title=draft.title, department_id=draft.department_id, kind=draft.kind)
            if form_id is None:
                result = await conn.execute(
                    t.forms.insert().values(tenant_id=tenant_id, created_at=utcnow(), **values)
                )
                form_id = inserted_id(result)
            else:
                result = await conn.execute(
                    t.forms.update()
                    .where(t.forms.c.id == form_id)
                    .where(t.forms.c.tenant_id == tenant_id)
                    .values(**values)
                )
                if result.rowcount == 0:
                    raise NotFound("no such form")
                await conn.execute(t.form_fields.delete().where(t.form_fields.c.form_id == form_id))
            if draft.fields:
                await conn.execute(
                    t.form_fields.insert(),
                    [self._field_row(form_id, i, f) for i, f in enumerate(draft.fields)],
                )
        return await self.get_form(tenant_id, form_id)

    async def get_form(self, tenant_id: int, form_id: int) -> Form:
        forms = await self._forms(tenant_id, t.forms.c.id == form_id)
        if not forms:
            raise NotFound("no such form")
        return forms[0]

    async def list_forms(self, tenant_id: int) -> list[Form]:
        return await self._forms(tenant_id, sa.true())

    async def _forms(self, tenant_id: int, where: Any) -> list[Form]:
        f = t.forms.c
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(t.forms).where(f.tenant_id == tenant_id).where(where).order_by(f.id)
                )
            ).all()
            fields_by_form: dict[int, list[Field]] = defaultdict(list)
            if rows:
                field_rows = await conn.execute(
                    sa.select(t.form_fields)
                    .where(t.form_fields.c.form_id.in_([r.id for r in rows]))
                    .order_by(t.form_fields.c.position)
                )
                for row in field_rows:
                    fields_by_form[row.form_id].append(self._field(row))
        return [
            Form(r.id, r.tenant_id, r.title, r.department_id, r.kind, tuple(fields_by_form[r.id]))
            for r in rows
        ]

    async def delete_form(self, tenant_id: int, form_id: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                t.forms.delete()
                .where(t.forms.c.id == form_id)
                .where(t.forms.c.tenant_id == tenant_id)
            )

    # -------------------------------------------------------------- deflection
    async def record_deflection(
        self, tenant_id: int, visit_key: str, article_id: int, query: str
    ) -> None:
        """An article suggested on a form was opened during the visit `visit_key`."""
        a = t.kb_articles.c
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.select(a.id).where(a.id == article_id).where(a.tenant_id == tenant_id)
            )
            if found.first() is None:
                raise NotFound("no such article")
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    t.kb_deflections.insert().values(
                        tenant_id=tenant_id,
                        visit_key=visit_key[:64],
                        article_id=article_id,
                        query=query[:200],
                        ticket_sent=False,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # opened twice in one visit: counted once

    async def deflection_summary(self, tenant_id: int) -> list[DeflectionSummary]:
        d, a = t.kb_deflections.c, t.kb_articles.c
        without = sa.func.sum(sa.case((d.ticket_sent.is_(False), 1), else_=0))
        query = (
            sa.select(
                d.article_id, a.title, sa.func.count().label("opened"), without.label("without")
            )
            .join(t.kb_articles, a.id == d.article_id)
            .where(d.tenant_id == tenant_id)
            .group_by(d.article_id, a.title)
            .order_by(without.desc(), a.title)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [DeflectionSummary(r.article_id, r.title, r.opened, int(r.without)) for r in rows]
