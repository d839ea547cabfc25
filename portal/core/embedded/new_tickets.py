"""How the embedded core writes one new ticket in a transaction it is given: the statements for
each database, and the `Ticket` it answers with, which is what was written (nothing is read back).

`EmbeddedTickets` makes every ticket through `WriteBatches`, which gives each write its
transaction (on SQLite, with other tickets of the moment).
"""

from __future__ import annotations

from portal.core.contract import NotFound, Ticket, TicketDraft
from portal.core.embedded.engine import CoreConnection, changed_rows, fetch, inserted_id
from portal.core.embedded.rows import insert_attachments, utcnow
from portal.core.embedded.ticket_queries import (
    CUSTOMER_NAME_FILL,
    DEPARTMENT_IN_TENANT,
    UPDATED_TENANT,
    TicketWrites,
)


class KeyTaken(Exception):
    """The idempotency key is taken already (a ticket's here, a reply's in `add_reply`): nothing
    of this attempt is kept (rolled back)."""


async def write_ticket(
    conn: CoreConnection,
    writes: TicketWrites,
    tenant_id: int,
    draft: TicketDraft,
    idempotency_key: str,
) -> tuple[Ticket, bool]:
    """The ticket made in `conn`'s transaction, and whether its requester got a name by it.

    On SQLite a read (the tenant's counter, the key, the requester), the counter moved on,
    the requester made if new, the ticket and its first reply; on PostgreSQL the last four
    as one statement. Then one marking the form visit it came from. Nothing is read back:
    the ticket is what was written, its and the reply's ids what SQLite reports (RETURNING
    on PostgreSQL). Raises KeyTaken when the key is the tenant's already: on SQLite before
    anything is written, on PostgreSQL the caller rolls back what this wrote (the number
    too).
    """
    now = utcnow()
    if draft.department_id is not None:
        params = {"department_id": draft.department_id, "tenant_id": tenant_id}
        if not await fetch(conn, DEPARTMENT_IN_TENANT, params):
            raise NotFound("no such department")
    values = {
        "tenant_id": tenant_id,
        "email": draft.requester_email.strip().lower(),
        "name": draft.requester_name,
        "department_id": draft.department_id,
        "subject": draft.subject,
        "kind": draft.kind,
        "priority": draft.priority,
        "source": draft.source,
        "custom_fields": draft.custom_fields,
        "key": idempotency_key,
        "now": now,
        UPDATED_TENANT: tenant_id,
        "visit": draft.visit_key[:64],
    }
    # The first reply is the description, by the requester.
    reply = {"author_type": "customer", "body": draft.description, "internal": False}
    reply_key = f"{idempotency_key}:description"
    if writes.whole is not None:
        [row] = await fetch(conn, writes.whole, values | reply | {"reply_key": reply_key})
        customer_id, organization_id, email, stored_name, number, ticket_id, reply_id = row
        if ticket_id is None:
            raise KeyTaken  # rolls back the customer's and the counter's writes
    else:
        # One read first: the transaction holds SQLite's write lock from its start
        # (`WriteBatches`), so nothing changes between it and the writes. A taken key ends
        # here, before anything is written: a batch goes on without this ticket.
        [(counter, taken, customer_id, organization_id, email, stored_name)] = await fetch(
            conn, writes.lookup, values
        )
        if taken is not None:
            raise KeyTaken
        if counter is not None and await changed_rows(conn, writes.next_number, values):
            number = counter + 1
        else:  # the tenant's first ticket
            [(number,)] = await fetch(conn, writes.number, values)
        if customer_id is None:  # a new requester
            [(customer_id, organization_id, email, stored_name)] = await fetch(
                conn, writes.customer, values
            )
        values |= {
            "number": number,
            "customer_id": customer_id,
            "organization_id": organization_id,
        }
        made = await inserted_id(conn, writes.ticket, values)
        if made is None:  # (not under the lock; were it to, it wrote first: undone whole)
            raise KeyTaken
        ticket_id = made
        reply |= {"ticket_id": ticket_id, "author_id": customer_id}
        reply |= {"key": reply_key, "now": now}
        reply_id = await inserted_id(conn, writes.reply, reply)
        assert reply_id is not None  # (a new ticket has no reply whose key it could take)
    if draft.visit_key:
        await fetch(conn, writes.visit_ticketed, values)
    name = draft.requester_name
    renamed = bool(name) and not stored_name
    if renamed:
        fill = {"customer_id": customer_id, "new_name": name}
        await fetch(conn, CUSTOMER_NAME_FILL, fill)
    else:
        name = stored_name
    await insert_attachments(
        conn, tenant_id, draft.attachments, ticket_id=ticket_id, reply_id=reply_id
    )
    ticket = Ticket(
        id=ticket_id,
        tenant_id=tenant_id,
        number=number,
        subject=draft.subject,
        status="open",
        priority=draft.priority,
        customer_id=customer_id,
        organization_id=organization_id,
        created_at=now,
        updated_at=now,
        kind=draft.kind,
        department_id=draft.department_id,
        requester_email=email,
        requester_name=name,
        custom_fields=dict(draft.custom_fields),
    )
    return ticket, renamed
