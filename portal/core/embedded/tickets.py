"""The embedded core's ticket side: departments, forms, customers, tickets, replies, ratings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    TICKET_STATUSES,
    Agent,
    Attachment,
    AttachmentDraft,
    Choice,
    Conflict,
    Customer,
    DeflectionSummary,
    Department,
    Event,
    Field,
    Form,
    FormDraft,
    NotFound,
    Organization,
    Rating,
    Reply,
    Tenant,
    Ticket,
    TicketDraft,
    TicketPage,
)
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreConnection, CoreEngine
from portal.core.embedded.rows import (
    T,
    aware,
    from_row,
    insert_attachments,
    require_in_tenant,
    utcnow,
)

RATING_CHANGE_WINDOW = timedelta(days=7)


def _ticket_select() -> sa.Select:
    """Tickets with their requester's email and name and their assignee's name."""
    tk, cu, ag = t.tickets, t.customers, t.agents
    return sa.select(
        tk,
        cu.c.email.label("requester_email"),
        cu.c.name.label("requester_name"),
        sa.func.coalesce(ag.c.name, "").label("assignee_name"),
    ).select_from(
        tk.join(cu, cu.c.id == tk.c.customer_id).outerjoin(ag, ag.c.id == tk.c.assignee_agent_id)
    )


_TICKET_SELECT = _ticket_select()

_CUSTOMER_BY_ID = sa.select(t.customers).where(
    t.customers.c.tenant_id == sa.bindparam("tenant_id"),
    t.customers.c.id == sa.bindparam("customer_id"),
)


@cache
def _ticket_list_statements(scope: str, state: str, search: bool) -> tuple[sa.Select, sa.Select]:
    """(count, page) for one shape of ticket list, built once, with bound parameters.

    Reusing the statement objects spares building and cache-keying them on every request.
    """
    c = t.tickets.c
    where = [c.tenant_id == sa.bindparam("tenant_id")]
    if scope == "customer":
        where.append(c.customer_id == sa.bindparam("scope_id"))
    elif scope == "organization":
        where.append(c.organization_id == sa.bindparam("scope_id"))
    if state == "open":
        where.append(c.status.in_(OPEN_STATUSES))
    elif state == "closed":
        where.append(c.status.in_(CLOSED_STATUSES))
    if search:
        where.append(sa.func.lower(c.subject).like(sa.bindparam("pattern"), escape="\\"))
    condition = sa.and_(*where)
    order = (c.updated_at.desc(), c.id.desc())
    count = sa.select(sa.func.count()).select_from(t.tickets).where(condition)
    # The page's ids come from the list index alone; only those rows are then joined.
    page_ids = (
        sa.select(c.id)
        .where(condition)
        .order_by(*order)
        .offset(sa.bindparam("offset", type_=sa.Integer))
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
    page = _TICKET_SELECT.where(c.id.in_(page_ids.scalar_subquery())).order_by(*order)
    return count, page


class TicketStore:
    """Mixed into EmbeddedCore, which supplies the engine, the event bus and `_one`."""

    engine: CoreEngine
    _bus: Any

    if TYPE_CHECKING:

        async def _one(
            self, table: sa.Table, where: Any, convert: Callable[[Any], T], what: str
        ) -> T: ...

        async def get_tenant(self, slug: str) -> Tenant: ...

    # ------------------------------------------------------------- departments
    async def create_department(self, tenant_id: int, name: str) -> Department:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.departments.insert().values(tenant_id=tenant_id, name=name, created_at=utcnow())
            )
        return Department(result.inserted_primary_key[0], tenant_id, name)

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
                form_id = result.inserted_primary_key[0]
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

    # ------------------------------------------------- customers and organizations
    @staticmethod
    def _customer(row: Any) -> Customer:
        verified = row.email_verified_at
        return from_row(Customer, row, email_verified_at=verified and aware(verified))

    async def ensure_customer(self, tenant_id: int, email: str, name: str = "") -> Customer:
        return await self.get_customer(tenant_id, await self._customer_id(tenant_id, email, name))

    async def find_customer(self, tenant_id: int, email: str) -> Customer:
        c = t.customers.c
        where = (c.tenant_id == tenant_id) & (c.email == email.strip().lower())
        return await self._one(t.customers, where, self._customer, "no such customer")

    async def get_customer(self, tenant_id: int, customer_id: int) -> Customer:
        # Every signed-in portal page reads its customer: one statement object, reused.
        params = {"tenant_id": tenant_id, "customer_id": customer_id}
        async with self.engine.connect() as conn:
            row = (await conn.execute(_CUSTOMER_BY_ID, params)).first()
        if row is None:
            raise NotFound("no such customer")
        return self._customer(row)

    async def _customer_id(self, tenant_id: int, email: str, name: str) -> int:
        """The customer with this email, created if new (in its own short transaction)."""
        c = t.customers.c
        email = email.strip().lower()
        query = sa.select(c.id, c.name).where(c.tenant_id == tenant_id).where(c.email == email)
        for _attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    row = (await conn.execute(query)).first()
                    if row is not None:
                        if name and not row.name:
                            await conn.execute(
                                t.customers.update().where(c.id == row.id).values(name=name)
                            )
                        return row.id
                    result = await conn.execute(
                        t.customers.insert().values(
                            tenant_id=tenant_id, email=email, name=name, created_at=utcnow()
                        )
                    )
                    return result.inserted_primary_key[0]
            except IntegrityError:
                continue  # created concurrently: the next round finds it
        raise Conflict("could not store the customer; try again")

    async def create_organization(
        self, tenant_id: int, name: str, domain: str = ""
    ) -> Organization:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.organizations.insert().values(
                    tenant_id=tenant_id, name=name, domain=domain.lower(), created_at=utcnow()
                )
            )
        return Organization(result.inserted_primary_key[0], tenant_id, name, domain.lower())

    async def set_customer_organization(
        self, tenant_id: int, customer_id: int, organization_id: int | None
    ) -> Customer:
        async with self.engine.begin() as conn:
            await require_in_tenant(
                conn, t.organizations, tenant_id, organization_id, "no such organization"
            )
            await conn.execute(
                t.customers.update()
                .where(t.customers.c.id == customer_id)
                .where(t.customers.c.tenant_id == tenant_id)
                .values(organization_id=organization_id)
            )
        return await self.get_customer(tenant_id, customer_id)

    async def update_tenant_settings(self, tenant_id: int, changes: dict[str, Any]) -> Tenant:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(t.tenants.c.slug, t.tenants.c.settings).where(
                        t.tenants.c.id == tenant_id
                    )
                )
            ).one()
            merged = {**(row.settings or {}), **changes}
            await conn.execute(
                t.tenants.update().where(t.tenants.c.id == tenant_id).values(settings=merged)
            )
        self._bus.publish(Event("tenant.changed", tenant_id, {"slug": row.slug}))
        return await self.get_tenant(row.slug)

    async def list_agents(self, tenant_id: int) -> list[Agent]:
        a = t.agents.c
        query = sa.select(t.agents).where(a.tenant_id == tenant_id).order_by(a.name)
        async with self.engine.connect() as conn:
            return [from_row(Agent, row) for row in await conn.execute(query)]

    # ----------------------------------------------------------------- tickets
    @staticmethod
    def _ticket(row: Any) -> Ticket:
        return from_row(
            Ticket,
            row,
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
            custom_fields=dict(row.custom_fields or {}),
        )

    async def _ticket_where(self, where: Any) -> Ticket | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_TICKET_SELECT.where(where))).first()
        return self._ticket(row) if row is not None else None

    async def _ticket_by_key(self, tenant_id: int, idempotency_key: str) -> Ticket | None:
        c = t.tickets.c
        return await self._ticket_where(
            (c.tenant_id == tenant_id) & (c.idempotency_key == idempotency_key)
        )

    async def get_ticket(self, tenant_id: int, ticket_id: int) -> Ticket:
        c = t.tickets.c
        ticket = await self._ticket_where((c.tenant_id == tenant_id) & (c.id == ticket_id))
        if ticket is None:
            raise NotFound("no such ticket")
        return ticket

    async def list_tickets(
        self,
        tenant_id: int,
        *,
        customer_id: int | None = None,
        organization_id: int | None = None,
        state: str | None = None,
        query: str = "",
        offset: int = 0,
        limit: int = 25,
    ) -> TicketPage:
        scope = "customer" if customer_id is not None else ""
        scope = "organization" if organization_id is not None else scope
        count, page = _ticket_list_statements(scope, state or "", bool(query))
        params: dict[str, Any] = {
            "tenant_id": tenant_id,
            "scope_id": organization_id if organization_id is not None else customer_id,
            "offset": offset,
            "limit": limit,
        }
        if query:
            escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["pattern"] = f"%{escaped}%"
        async with self.engine.connect() as conn:
            total = (await conn.execute(count, params)).scalar_one()
            rows = (await conn.execute(page, params)).all() if total > offset else []
        return TicketPage([self._ticket(row) for row in rows], total)

    async def create_ticket(
        self, tenant_id: int, draft: TicketDraft, idempotency_key: str
    ) -> Ticket:
        existing = await self._ticket_by_key(tenant_id, idempotency_key)
        if existing is not None:
            return existing
        # Two concurrent tickets may pick the same number; the unique constraint decides and the
        # loser tries again with the next one.
        for _attempt in range(10):
            try:
                await self._insert_ticket(tenant_id, draft, idempotency_key)
                break
            except IntegrityError:
                if await self._ticket_by_key(tenant_id, idempotency_key) is not None:
                    return await self._ticket_by_key(tenant_id, idempotency_key)  # type: ignore[return-value]
        else:
            raise Conflict("could not allocate a ticket number; try again")
        ticket = await self._ticket_by_key(tenant_id, idempotency_key)
        assert ticket is not None
        self._bus.publish(Event("ticket.created", tenant_id, {"ticket_id": ticket.id}))
        return ticket

    async def _insert_ticket(
        self, tenant_id: int, draft: TicketDraft, idempotency_key: str
    ) -> None:
        now = utcnow()
        customer_id = await self._customer_id(
            tenant_id, draft.requester_email, draft.requester_name
        )
        async with self.engine.begin() as conn:
            await require_in_tenant(
                conn, t.departments, tenant_id, draft.department_id, "no such department"
            )
            organization_id = (
                await conn.execute(
                    sa.select(t.customers.c.organization_id).where(t.customers.c.id == customer_id)
                )
            ).scalar()
            number = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(t.tickets.c.number), 0)).where(
                        t.tickets.c.tenant_id == tenant_id
                    )
                )
            ).scalar_one() + 1
            result = await conn.execute(
                t.tickets.insert().values(
                    tenant_id=tenant_id,
                    number=number,
                    customer_id=customer_id,
                    organization_id=organization_id,
                    department_id=draft.department_id,
                    subject=draft.subject,
                    kind=draft.kind,
                    status="open",
                    priority=draft.priority,
                    source=draft.source,
                    custom_fields=draft.custom_fields,
                    idempotency_key=idempotency_key,
                    created_at=now,
                    updated_at=now,
                )
            )
            ticket_id = result.inserted_primary_key[0]
            reply = await conn.execute(
                t.ticket_replies.insert().values(
                    ticket_id=ticket_id,
                    author_type="customer",
                    author_id=customer_id,
                    body=draft.description,
                    internal=False,
                    idempotency_key=f"{idempotency_key}:description",
                    created_at=now,
                )
            )
            await insert_attachments(
                conn,
                tenant_id,
                draft.attachments,
                ticket_id=ticket_id,
                reply_id=reply.inserted_primary_key[0],
            )

    async def add_reply(
        self,
        tenant_id: int,
        ticket_id: int,
        *,
        author_type: str,
        author_id: int,
        body: str,
        internal: bool,
        idempotency_key: str,
        attachments: tuple[AttachmentDraft, ...] = (),
    ) -> Reply:
        r = t.ticket_replies.c
        key = (r.ticket_id == ticket_id) & (r.idempotency_key == idempotency_key)
        created = False
        try:
            async with self.engine.begin() as conn:
                ticket = (
                    await conn.execute(
                        sa.select(t.tickets.c.id, t.tickets.c.status)
                        .where(t.tickets.c.id == ticket_id)
                        .where(t.tickets.c.tenant_id == tenant_id)
                    )
                ).first()
                if ticket is None:
                    raise NotFound("no such ticket")
                existing = (await conn.execute(sa.select(r.id).where(key))).first()
                if existing is None:
                    reply_id = await self._insert_reply(
                        conn,
                        tenant_id,
                        ticket.status,
                        ticket_id,
                        author_type,
                        author_id,
                        body,
                        internal,
                        idempotency_key,
                        attachments,
                    )
                    created = True
                else:
                    reply_id = existing.id
        except IntegrityError:
            # The same key sent twice at once: the other request stored it; answer with that.
            async with self.engine.connect() as conn:
                found = (await conn.execute(sa.select(r.id).where(key))).first()
            if found is None:
                raise
            reply_id, created = found.id, False
        if created:
            self._bus.publish(
                Event(
                    "ticket.replied",
                    tenant_id,
                    {
                        "ticket_id": ticket_id,
                        "reply_id": reply_id,
                        "internal": internal,
                        "author_type": author_type,
                    },
                )
            )
        replies = await self.list_replies(tenant_id, ticket_id, include_internal=True)
        return next(reply for reply in replies if reply.id == reply_id)

    async def _insert_reply(
        self,
        conn: CoreConnection,
        tenant_id: int,
        status: str,
        ticket_id: int,
        author_type: str,
        author_id: int,
        body: str,
        internal: bool,
        idempotency_key: str,
        attachments: tuple[AttachmentDraft, ...],
    ) -> int:
        now = utcnow()
        result = await conn.execute(
            t.ticket_replies.insert().values(
                ticket_id=ticket_id,
                author_type=author_type,
                author_id=author_id,
                body=body,
                internal=internal,
                idempotency_key=idempotency_key,
                created_at=now,
            )
        )
        reply_id = result.inserted_primary_key[0]
        await insert_attachments(
            conn, tenant_id, attachments, ticket_id=ticket_id, reply_id=reply_id
        )
        changes: dict[str, Any] = {"updated_at": now}
        # A customer writing on a resolved ticket opens it again, as help desks do.
        if author_type == "customer" and not internal and status in CLOSED_STATUSES:
            changes["status"] = "open"
        await conn.execute(t.tickets.update().where(t.tickets.c.id == ticket_id).values(**changes))
        return reply_id

    async def list_replies(
        self, tenant_id: int, ticket_id: int, *, include_internal: bool = False
    ) -> list[Reply]:
        r, cu, ag = t.ticket_replies.c, t.customers, t.agents
        await self.get_ticket(tenant_id, ticket_id)
        query = (
            sa.select(
                t.ticket_replies,
                sa.func.coalesce(
                    sa.case((r.author_type == "agent", ag.c.name), else_=None),
                    sa.func.nullif(cu.c.name, ""),
                    cu.c.email,
                    "",
                ).label("author_name"),
            )
            .select_from(
                t.ticket_replies.outerjoin(
                    cu, (r.author_type == "customer") & (cu.c.id == r.author_id)
                ).outerjoin(ag, (r.author_type == "agent") & (ag.c.id == r.author_id))
            )
            .where(r.ticket_id == ticket_id)
            .order_by(r.created_at, r.id)
        )
        if not include_internal:
            query = query.where(r.internal.is_(False))
        a = t.attachments.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            files: dict[int, list[Attachment]] = defaultdict(list)
            for row in await conn.execute(
                sa.select(t.attachments).where(a.ticket_id == ticket_id).order_by(a.id)
            ):
                files[row.reply_id].append(from_row(Attachment, row))
        return [
            from_row(Reply, row, created_at=aware(row.created_at), attachments=tuple(files[row.id]))
            for row in rows
        ]

    async def set_ticket_status(
        self, tenant_id: int, ticket_id: int, status: str, *, agent_id: int | None = None
    ) -> Ticket:
        if status not in TICKET_STATUSES:
            raise Conflict(f"status must be one of {', '.join(TICKET_STATUSES)}")
        before = await self.get_ticket(tenant_id, ticket_id)
        if before.status == status:
            return before
        async with self.engine.begin() as conn:
            await conn.execute(
                t.tickets.update()
                .where(t.tickets.c.id == ticket_id)
                .where(t.tickets.c.tenant_id == tenant_id)
                .values(status=status, updated_at=utcnow())
            )
        self._bus.publish(
            Event(
                "ticket.status_changed",
                tenant_id,
                {
                    "ticket_id": ticket_id,
                    "status": status,
                    "previous": before.status,
                    "agent_id": agent_id,
                },
            )
        )
        return await self.get_ticket(tenant_id, ticket_id)

    async def assign_ticket(self, tenant_id: int, ticket_id: int, agent_id: int | None) -> Ticket:
        await self.get_ticket(tenant_id, ticket_id)
        async with self.engine.begin() as conn:
            await require_in_tenant(conn, t.agents, tenant_id, agent_id, "no such agent")
            await conn.execute(
                t.tickets.update()
                .where(t.tickets.c.id == ticket_id)
                .values(assignee_agent_id=agent_id, updated_at=utcnow())
            )
        return await self.get_ticket(tenant_id, ticket_id)

    # ----------------------------------------------------------------- ratings
    async def get_rating(self, tenant_id: int, ticket_id: int) -> Rating | None:
        await self.get_ticket(tenant_id, ticket_id)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(t.ratings).where(t.ratings.c.ticket_id == ticket_id))
            ).first()
        if row is None:
            return None
        return from_row(
            Rating, row, created_at=aware(row.created_at), updated_at=aware(row.updated_at)
        )

    async def rate_ticket(
        self, tenant_id: int, ticket_id: int, *, good: bool, comment: str
    ) -> Rating:
        """One rating per ticket, once it is resolved; it can be changed for seven days."""
        ticket = await self.get_ticket(tenant_id, ticket_id)
        if ticket.status not in CLOSED_STATUSES:
            raise Conflict("a ticket can be rated once it is resolved")
        existing = await self.get_rating(tenant_id, ticket_id)
        now = utcnow()
        if existing is not None and now - existing.created_at > RATING_CHANGE_WINDOW:
            raise Conflict("a rating can be changed for 7 days after it was given")
        inserted = False
        if existing is None:
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        t.ratings.insert().values(
                            ticket_id=ticket_id,
                            good=good,
                            comment=comment,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                inserted = True
            except IntegrityError:
                pass  # rated concurrently: update that rating instead
        if not inserted:
            async with self.engine.begin() as conn:
                await conn.execute(
                    t.ratings.update()
                    .where(t.ratings.c.ticket_id == ticket_id)
                    .values(good=good, comment=comment, updated_at=now)
                )
        self._bus.publish(Event("ticket.rated", tenant_id, {"ticket_id": ticket_id, "good": good}))
        rating = await self.get_rating(tenant_id, ticket_id)
        assert rating is not None
        return rating

    # ------------------------------------------------------------- attachments
    async def get_attachment(self, tenant_id: int, attachment_id: int) -> Attachment:
        a = t.attachments.c
        where = (a.tenant_id == tenant_id) & (a.id == attachment_id)
        return await self._one(
            t.attachments, where, lambda row: from_row(Attachment, row), "no such attachment"
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

    async def mark_visit_ticketed(self, tenant_id: int, visit_key: str) -> None:
        d = t.kb_deflections.c
        async with self.engine.begin() as conn:
            await conn.execute(
                t.kb_deflections.update()
                .where(d.tenant_id == tenant_id)
                .where(d.visit_key == visit_key[:64])
                .values(ticket_sent=True)
            )

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

    # ----------------------------------------------------------- spent tokens
    async def spend_token(self, token_id: str, expires_at: datetime) -> bool:
        """True the first time a token id is spent, False ever after (until it expires)."""
        now = utcnow()
        u = t.used_tokens.c
        async with self.engine.begin() as conn:
            await conn.execute(t.used_tokens.delete().where(u.expires_at < now))
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    t.used_tokens.insert().values(token_id=token_id[:64], expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True
