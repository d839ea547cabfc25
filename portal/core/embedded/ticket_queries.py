"""The embedded core's ticket statements that are built once: the ticket with its names, and
each shape of the customer portal's ticket list."""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa

from portal.core.contract import CLOSED_STATUSES, OPEN_STATUSES
from portal.core.embedded import schema as t


def ticket_select() -> sa.Select:
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


TICKET_SELECT = ticket_select()


@cache
def ticket_list_statements(scope: str, state: str, search: bool) -> tuple[sa.Select, sa.Select]:
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
    page = TICKET_SELECT.where(c.id.in_(page_ids.scalar_subquery())).order_by(*order)
    return count, page
