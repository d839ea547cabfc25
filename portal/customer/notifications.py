"""Mail to the requester on each public agent reply and each status change of their ticket.

A background task of the app follows `core.events()`. Each mail carries a magic link that signs
in once and lands on the ticket (valid `notification_link_hours`, default 72); when the ticket is
resolved, the mail also carries signed one-click rating links (good / bad) if the core keeps
ratings. Mail is written in the tenant's default language (the portal does not store a customer's
language). A tenant can switch these mails off with the setting `customer_notifications: false`.
"""

from __future__ import annotations

import logging

from portal.core.contract import Event, HelpdeskCore, NotFound, Tenant, Ticket
from portal.customer import links
from portal.i18n import gettext as _
from portal.i18n import ngettext, use_language
from portal.labels import status_label
from portal.mail import Mailer
from portal.security import Signer
from portal.urls import TenantURLs

log = logging.getLogger(__name__)


class _Tenants:
    """Tenants by id, reloaded after a `tenant.changed` event or a miss."""

    def __init__(self, core: HelpdeskCore) -> None:
        self.core = core
        self._by_id: dict[int, Tenant] = {}

    async def get(self, tenant_id: int) -> Tenant | None:
        if tenant_id not in self._by_id:
            self._by_id = {t.id: t for t in await self.core.tenants.list_tenants()}
        return self._by_id.get(tenant_id)

    def forget(self) -> None:
        self._by_id = {}


async def notify_customers(
    core: HelpdeskCore, mailer: Mailer, signer: Signer, urls: TenantURLs
) -> None:
    """Run for the app's lifetime: turn ticket events into mail to the requester."""
    tenants = _Tenants(core)
    async for event in core.events():
        if event.type == "tenant.changed":
            tenants.forget()
            continue
        if event.type not in ("ticket.replied", "ticket.status_changed"):
            continue
        try:
            tenant = await tenants.get(event.tenant_id)
            if tenant is None or tenant.settings.get("customer_notifications", True) is False:
                continue
            message = await compose(core, signer, urls, tenant, event)
            if message is not None:
                to, subject, body = message
                await mailer.send(to, subject, body, sender_name=tenant.name)
        except NotFound:
            continue  # deleted meanwhile
        except Exception:
            log.exception("could not mail the customer about %s", event)


def _ticket_link(signer: Signer, urls: TenantURLs, tenant: Tenant, ticket: Ticket) -> str:
    token, _token_id = links.make_magic_link(
        signer,
        tenant,
        ticket.requester_email,
        minutes=links.notification_link_minutes(tenant),
        next_path=urls.path("customer_ticket", id=ticket.id),
    )
    return urls.url(tenant, "customer_magic_link", token=token)


def _link_paragraph(signer: Signer, urls: TenantURLs, tenant: Tenant, ticket: Ticket) -> str:
    hours = max(1, links.notification_link_minutes(tenant) // 60)
    url = _ticket_link(signer, urls, tenant, ticket)
    return (
        _("See the whole conversation and reply:")
        + "\n"
        + url
        + "\n"
        + ngettext(
            "The link signs you in once and works for %(num)d hour.",
            "The link signs you in once and works for %(num)d hours.",
            hours,
        )
        % {"num": hours}
    )


async def compose(
    core: HelpdeskCore, signer: Signer, urls: TenantURLs, tenant: Tenant, event: Event
) -> tuple[str, str, str] | None:
    """(to, subject, body) of the mail for `event`, or None when it needs none."""
    data = event.data
    ticket_id = data.get("ticket_id")
    if not isinstance(ticket_id, int):
        return None
    if event.type == "ticket.replied" and (
        data.get("internal") or data.get("author_type") != "agent"
    ):
        return None
    ticket = await core.tickets.get_ticket(tenant.id, ticket_id)
    if not ticket.requester_email:
        return None
    names = {"number": ticket.number, "subject": ticket.subject}
    with use_language(tenant.default_locale):
        if event.type == "ticket.replied":
            replies = await core.tickets.list_replies(tenant.id, ticket.id)
            reply = next((r for r in replies if r.id == data.get("reply_id")), None)
            if reply is None:
                return None
            subject = _("[#%(number)s] New reply: %(subject)s") % names
            parts = [
                _('%(name)s replied to your request #%(number)s "%(subject)s":')
                % {**names, "name": reply.author_name or tenant.name},
                reply.body,
            ]
            if reply.attachments:
                parts.append(
                    _("Attachments: %(names)s")
                    % {"names": ", ".join(a.filename for a in reply.attachments)}
                )
        else:
            status = str(data.get("status", ticket.status))
            previous = str(data.get("previous", ""))
            labels = {"status": status_label(status), "previous": status_label(previous)}
            subject = _("[#%(number)s] Status: %(status)s - %(subject)s") % {**names, **labels}
            parts = [
                _(
                    'The status of your request #%(number)s "%(subject)s" changed from '
                    "%(previous)s to %(status)s."
                )
                % {**names, **labels}
            ]
            if status == "resolved" and core.capabilities.ratings:
                good = links.make_rating_link(signer, tenant.id, ticket.id, True)
                bad = links.make_rating_link(signer, tenant.id, ticket.id, False)
                parts.append(
                    _("How did we do? Rate our help with one click:")
                    + "\n"
                    + _("Good: %(url)s")
                    % {"url": urls.url(tenant, "customer_rate_link", token=good)}
                    + "\n"
                    + _("Bad: %(url)s") % {"url": urls.url(tenant, "customer_rate_link", token=bad)}
                )
        parts.append(_link_paragraph(signer, urls, tenant, ticket))
        parts.append(
            _("You get this email because you asked %(name)s for help.") % {"name": tenant.name}
        )
    return ticket.requester_email, subject, "\n\n".join(parts) + "\n"
