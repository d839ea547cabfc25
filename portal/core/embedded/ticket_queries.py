"""The embedded core's ticket statements, built once: reads of tickets and replies, each shape of
the customer portal's ticket list, and the writes that make a ticket or a reply.

Reusing statement objects spares building and cache-keying them on every call (a third of a
submission's CPU when they were built per call). Writes that need `ON CONFLICT` differ between
SQLite and PostgreSQL in the `insert` construct, so they are built once per dialect; PostgreSQL
also makes a ticket in one statement (each statement is a round trip to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from portal.core.contract import CLOSED_STATUSES, OPEN_STATUSES, Ticket
from portal.core.embedded import schema as t
from portal.core.embedded.rows import aware

_TK, _CU, _AG, _R = t.tickets.c, t.customers.c, t.agents.c, t.ticket_replies.c
_D = t.kb_deflections.c


def ticket_select() -> sa.Select:
    """Tickets with their requester's email and name and their assignee's name, in the order of
    `Ticket`'s fields, so a row becomes a ticket without matching names (`ticket_from_row`)."""
    tk, cu, ag = t.tickets, t.customers, t.agents
    return sa.select(
        _TK.id,
        _TK.tenant_id,
        _TK.number,
        _TK.subject,
        _TK.status,
        _TK.priority,
        _TK.customer_id,
        _TK.organization_id,
        _TK.created_at,
        _TK.updated_at,
        _TK.kind,
        _TK.department_id,
        _TK.assignee_agent_id,
        sa.func.coalesce(ag.c.name, "").label("assignee_name"),
        cu.c.email.label("requester_email"),
        cu.c.name.label("requester_name"),
        _TK.custom_fields,
    ).select_from(
        tk.join(cu, cu.c.id == tk.c.customer_id).outerjoin(ag, ag.c.id == tk.c.assignee_agent_id)
    )


TICKET_SELECT = ticket_select()
TICKET_BY_ID = TICKET_SELECT.where(
    _TK.tenant_id == sa.bindparam("tenant_id"), _TK.id == sa.bindparam("ticket_id")
)
TICKET_BY_KEY = TICKET_SELECT.where(
    _TK.tenant_id == sa.bindparam("tenant_id"), _TK.idempotency_key == sa.bindparam("key")
)


def ticket_from_row(row: Any) -> Ticket:
    """A `Ticket` from a row of `TICKET_SELECT` (its columns are the fields, in order)."""
    return Ticket(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        aware(row[8]),
        aware(row[9]),
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
        dict(row[16] or {}),
    )


@cache
def ticket_list_statements(scope: str, state: str, search: bool) -> tuple[sa.Select, sa.Select]:
    """(count, page) for one shape of ticket list, built once, with bound parameters."""
    c = _TK
    where = [c.tenant_id == sa.bindparam("tenant_id")]
    if scope == "customer":
        where.append(c.customer_id == sa.bindparam("scope_id"))
    elif scope == "organization":
        where.append(c.organization_id == sa.bindparam("scope_id"))
    # (A list of equalities rather than IN: the statement then has no expanding parameter, so
    # SQLite runs it as compiled once; both databases plan the two the same.)
    if state == "open":
        where.append(sa.or_(*(c.status == status for status in OPEN_STATUSES)))
    elif state == "closed":
        where.append(sa.or_(*(c.status == status for status in CLOSED_STATUSES)))
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
    page = TICKET_SELECT.where(c.id.in_(page_ids.scalar_subquery())).order_by(*order)
    return count, page


# ------------------------------------------------------------------ replies
def _author_name() -> Any:
    cu, ag = t.customers, t.agents
    return sa.func.coalesce(
        sa.case((_R.author_type == "agent", ag.c.name), else_=None),
        sa.func.nullif(cu.c.name, ""),
        cu.c.email,
        "",
    ).label("author_name")


def _replies(include_internal: bool) -> sa.Select:
    cu, ag = t.customers, t.agents
    query = (
        sa.select(t.ticket_replies, _author_name())
        .select_from(
            t.ticket_replies.outerjoin(
                cu, (_R.author_type == "customer") & (cu.c.id == _R.author_id)
            ).outerjoin(ag, (_R.author_type == "agent") & (ag.c.id == _R.author_id))
        )
        .where(_R.ticket_id == sa.bindparam("ticket_id"))
        .order_by(_R.created_at, _R.id)
    )
    return query if include_internal else query.where(_R.internal.is_(False))


REPLIES = {True: _replies(True), False: _replies(False)}
TICKET_ATTACHMENTS = (
    sa.select(t.attachments)
    .where(t.attachments.c.ticket_id == sa.bindparam("ticket_id"))
    .order_by(t.attachments.c.id)
)
REPLY_BY_KEY = sa.select(_R.id).where(
    _R.ticket_id == sa.bindparam("ticket_id"), _R.idempotency_key == sa.bindparam("key")
)
# What a new reply shows as its author: an agent's name, else a customer's name or email.
AUTHOR_NAMES = {
    "customer": sa.select(sa.func.coalesce(sa.func.nullif(_CU.name, ""), _CU.email)).where(
        _CU.id == sa.bindparam("author_id")
    ),
    "agent": sa.select(_AG.name).where(_AG.id == sa.bindparam("author_id")),
}
DEPARTMENT_IN_TENANT = sa.select(t.departments.c.id).where(
    t.departments.c.id == sa.bindparam("department_id"),
    t.departments.c.tenant_id == sa.bindparam("tenant_id"),
)
# A customer who first wrote without a name gets the one a later ticket brings (rare).
CUSTOMER_NAME_FILL = (
    t.customers.update()
    .where(_CU.id == sa.bindparam("customer_id"), _CU.name == "")
    .values(name=sa.bindparam("new_name"))
)
# The tenant a ticket's UPDATEs are for: an UPDATE reserves its columns' names for parameters,
# so `tenant_id` cannot name it there.
UPDATED_TENANT = "of_tenant"
# When another writer took numbers past the counter: move it to the tenant's highest number.
NUMBER_REPAIR = (
    t.ticket_numbers.update()
    .where(t.ticket_numbers.c.tenant_id == sa.bindparam(UPDATED_TENANT))
    .values(
        last_number=sa.select(sa.func.coalesce(sa.func.max(_TK.number), 0))
        .where(_TK.tenant_id == sa.bindparam(UPDATED_TENANT))
        .scalar_subquery()
    )
)


@dataclass(frozen=True)
class TicketWrites:
    """The statements that make a ticket (four in one transaction, or `whole`; and the mark of
    the form visit it came from) and a reply (three)."""

    # The requester by email: made if new, (id, organization_id, email, name) either way.
    customer: Any
    # The tenant's next ticket number (its counter made at 1 if it has none).
    number: Any
    # SQLite's first statement for a ticket: one row, whatever is known. The tenant's counter
    # (NULL: none yet), the id of its ticket with this idempotency key (NULL: none) and the
    # requester's four columns (NULLs: new). A taken key is seen before anything is written.
    lookup: Any
    # The counter moved on, for a tenant that has one: a plain UPDATE where `number` first
    # tries an INSERT. (SQLite: no RETURNING; the number is the counter read, plus one.)
    next_number: Any
    # The ticket, or none when the tenant has one with this idempotency key already.
    ticket: Any
    # A reply, or none when the ticket has one with this idempotency key already.
    reply: Any
    # The ticket's `updated_at` (and a customer's reply reopens it); none when not the tenant's.
    touch: Any
    # The suggestions opened in the form visit (`visit`) the ticket was sent from, marked as
    # followed by a ticket.
    visit_ticketed: Any
    # PostgreSQL only: the four as one statement (data-modifying CTEs), one round trip where
    # each costs this process more than the database's work. One row: the customer's four
    # columns, the number, then the ticket's and its first reply's ids (NULL: the key is taken).
    whole: Any = None


@cache
def ticket_writes(dialect: str) -> TicketWrites:
    """The write statements for `dialect` ("sqlite" or "postgresql").

    `ticket`, `reply`, `touch` and `next_number` are run by `engine.inserted_id` and
    `changed_rows`: with RETURNING on PostgreSQL, without on SQLite, where it costs more than
    the statement's own work."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    bind = sa.bindparam

    def returning(statement: Any, *columns: Any) -> Any:
        return statement.returning(*columns) if dialect == "postgresql" else statement

    # A no-op update of a known customer makes RETURNING answer for it as for a new one: one
    # statement either way, where a SELECT first would be two for a new customer.
    customer = (
        insert(t.customers)
        .values(
            tenant_id=bind("tenant_id"),
            email=bind("email"),
            name=bind("name"),
            created_at=bind("now"),
        )
        .on_conflict_do_update(index_elements=[_CU.tenant_id, _CU.email], set_={"name": _CU.name})
        .returning(_CU.id, _CU.organization_id, _CU.email, _CU.name)
    )
    counter = t.ticket_numbers
    number = (
        insert(counter)
        .values(tenant_id=bind("tenant_id"), last_number=1)
        .on_conflict_do_update(
            index_elements=[counter.c.tenant_id], set_={"last_number": counter.c.last_number + 1}
        )
        .returning(counter.c.last_number)
    )
    ticket = returning(
        insert(t.tickets)
        .values(_new_ticket(bind("number"), bind("customer_id"), bind("organization_id")))
        .on_conflict_do_nothing(index_elements=[_TK.tenant_id, _TK.idempotency_key]),
        _TK.id,
    )
    reply = returning(
        insert(t.ticket_replies)
        .values(_new_reply(bind("ticket_id"), bind("author_id"), key="key"))
        .on_conflict_do_nothing(index_elements=[_R.ticket_id, _R.idempotency_key]),
        _R.id,
    )
    closed = sa.or_(*(_TK.status == status for status in CLOSED_STATUSES))
    reopen = sa.and_(bind("reopen", type_=sa.Boolean), closed)
    touch = returning(
        t.tickets.update()
        .where(_TK.id == bind("touch_id"), _TK.tenant_id == bind("touch_tenant"))
        .values(
            updated_at=bind("touch_now"),
            status=sa.case((reopen, "open"), else_=_TK.status),
        ),
        _TK.id,
    )
    visit_ticketed = (
        t.kb_deflections.update()
        .where(_D.tenant_id == bind(UPDATED_TENANT), _D.visit_key == bind("visit"))
        .values(ticket_sent=True)
    )
    next_number = returning(
        counter.update()
        .where(counter.c.tenant_id == bind(UPDATED_TENANT))
        .values(last_number=counter.c.last_number + 1),
        counter.c.last_number,
    )
    current_number = sa.select(counter.c.last_number).where(
        counter.c.tenant_id == bind("tenant_id")
    )
    taken = sa.select(_TK.id).where(
        _TK.tenant_id == bind("tenant_id"), _TK.idempotency_key == bind("key")
    )
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    requester = (_CU.tenant_id == bind("tenant_id")) & (_CU.email == bind("email"))
    lookup = sa.select(
        current_number.scalar_subquery(),
        taken.scalar_subquery(),
        *(_CU.id, _CU.organization_id, _CU.email, _CU.name),
    ).select_from(one.outerjoin(t.customers, requester))
    whole = _whole_ticket(customer, number) if dialect == "postgresql" else None
    return TicketWrites(
        customer,
        number,
        lookup,
        next_number,
        ticket,
        reply,
        touch,
        visit_ticketed,
        whole,
    )


def _typed(name: str, column: sa.Column[Any]) -> Any:
    """A parameter with its column's type: asyncpg's statements say every parameter's type,
    and in a SELECT list (`_whole_ticket`) nothing else gives it one."""
    return sa.bindparam(name, type_=column.type)


def _new_ticket(number: Any, customer_id: Any, organization_id: Any) -> dict[str, Any]:
    """A new ticket's columns: its number and requester as given (parameters, or what the
    earlier parts of `_whole_ticket` return), the rest parameters."""
    return {
        "tenant_id": _typed("tenant_id", _TK.tenant_id),
        "number": number,
        "customer_id": customer_id,
        "organization_id": organization_id,
        "department_id": _typed("department_id", _TK.department_id),
        "subject": _typed("subject", _TK.subject),
        "kind": _typed("kind", _TK.kind),
        "status": sa.literal("open", _TK.status.type),
        "priority": _typed("priority", _TK.priority),
        "source": _typed("source", _TK.source),
        "custom_fields": _typed("custom_fields", _TK.custom_fields),
        "idempotency_key": _typed("key", _TK.idempotency_key),
        "created_at": _typed("now", _TK.created_at),
        "updated_at": _typed("now", _TK.updated_at),
    }


def _new_reply(ticket_id: Any, author_id: Any, *, key: str) -> dict[str, Any]:
    """A new reply's columns: its ticket and author as given, its idempotency key the
    parameter named `key`, the rest parameters."""
    return {
        "ticket_id": ticket_id,
        "author_type": _typed("author_type", _R.author_type),
        "author_id": author_id,
        "body": _typed("body", _R.body),
        "internal": _typed("internal", _R.internal),
        "idempotency_key": _typed(key, _R.idempotency_key),
        "created_at": _typed("now", _R.created_at),
    }


def _inserted(table: sa.Table, columns: dict[str, Any], source: Any) -> Any:
    """INSERT INTO `table` (the columns) SELECT their values FROM `source`."""
    return postgresql.insert(table).from_select(
        list(columns), sa.select(*columns.values()).select_from(source)
    )


def _whole_ticket(customer: Any, number: Any) -> Any:
    """The ticket's four statements as one: the ticket takes the requester's id and the number
    from what their statements return, the reply the ticket's id (its foreign key is checked at
    the statement's end, when the ticket exists)."""
    requester, counted = customer.cte("requester"), number.cte("counted")
    made = (
        _inserted(
            t.tickets,
            _new_ticket(counted.c.last_number, requester.c.id, requester.c.organization_id),
            requester.join(counted, sa.true()),
        )
        .on_conflict_do_nothing(index_elements=[_TK.tenant_id, _TK.idempotency_key])
        .returning(_TK.id)
        .cte("made")
    )
    first = (
        _inserted(
            t.ticket_replies,
            _new_reply(made.c.id, requester.c.id, key="reply_key"),
            made.join(requester, sa.true()),
        )
        .returning(_R.id)
        .cte("first_reply")
    )
    return sa.select(
        requester.c.id,
        requester.c.organization_id,
        requester.c.email,
        requester.c.name,
        counted.c.last_number,
        made.c.id.label("ticket_id"),
        first.c.id.label("reply_id"),
    ).select_from(
        requester.join(counted, sa.true()).outerjoin(made, sa.true()).outerjoin(first, sa.true())
    )
