"""`portal demo`: the demo tenant, an admin account and the demo articles, loaded once."""

from __future__ import annotations

import logging

from portal.core.contract import Choice, Field, FormDraft, HelpdeskCore, NotFound, Tenant
from portal.demo.sample_site import sample_origin
from portal.kb.importer import import_folder
from portal.resources import DEMO_ARTICLES_DIR
from portal.security import hash_password
from portal.settings import Settings

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
DEMO_ADMIN_EMAIL = "admin@demo.test"
DEMO_ADMIN_PASSWORD = "demo-admin"
DEMO_CANNED = (
    ("hello", "Hi {{customer.name}}, this is {{agent.name}}. How can I help?"),
    ("bye", "Thanks for chatting with us, {{customer.name}}. Have a good day!"),
)
DEMO_DEPARTMENTS = ("Billing", "Technical support")
DEMO_FORM_TITLE = "Contact us"
# The sample site `make serve` shows the widget on: another origin than the help center.
DEMO_SITE = sample_origin()
# Set once the contact form was made, so a form or department the admin deletes stays deleted
# although `make serve` runs `portal demo` at every start; older demos get it on their next run.
CONTACT_DONE = "demo_contact_form"


async def load_demo(core: HelpdeskCore, settings: Settings) -> None:
    """Create the demo tenant on 127.0.0.1 and localhost; an existing one is left as it is,
    except that one made before the demo had a contact form gets it (`add_contact_form`)."""
    try:
        existing = await core.tenants.get_tenant(DEMO_SLUG)
    except NotFound:
        pass
    else:
        await add_contact_form(core, existing)
        print(f"demo tenant exists already; serving it on http://127.0.0.1:{settings.port}/")
        return
    tenant = await core.tenants.create_tenant(
        DEMO_SLUG, "Demo Co", domains=("127.0.0.1", "localhost")
    )
    await core.tenants.create_agent(
        tenant.id, DEMO_ADMIN_EMAIL, "Demo Admin", hash_password(DEMO_ADMIN_PASSWORD), "admin"
    )
    for shortcut, body in DEMO_CANNED:
        await core.chat.save_canned_response(tenant.id, shortcut, body)
    report = await import_folder(core, tenant.id, DEMO_ARTICLES_DIR)
    for problem in report.errors:
        log.error("demo article: %s", problem)
    form_id = await add_contact_form(core, tenant)
    print(
        f"demo tenant created with {report.created} articles.\n"
        f"  help center: http://127.0.0.1:{settings.port}/kb/\n"
        f"  admin:       http://127.0.0.1:{settings.port}/admin/ "
        f"({DEMO_ADMIN_EMAIL} / {DEMO_ADMIN_PASSWORD})\n"
        f"  live chat:   http://127.0.0.1:{settings.port}/messenger "
        f"(answer it at /agent/chats)\n"
        f"  contact form: http://127.0.0.1:{settings.port}/forms/{form_id}"
    )


def contact_form_draft(billing_id: int, support_id: int) -> FormDraft:
    """A form where the visitor picks the department, and each department asks its own things."""
    return FormDraft(
        title=DEMO_FORM_TITLE,
        department_id=None,  # the visitor picks: the form shows a department field
        fields=(
            Field(
                "invoice_number",
                "Invoice number",
                "text",
                help_text="At the top of the invoice, e.g. INV-2024-0042.",
                department_ids=(billing_id,),
            ),
            Field(
                "product",
                "Product",
                "choice",
                required=True,
                options=(
                    Choice("cloud", "Demo Cloud"),
                    Choice("desktop", "Demo Desktop"),
                    Choice("mobile", "Demo Mobile app"),
                ),
                department_ids=(support_id,),
            ),
            Field(
                "version",
                "Version",
                "text",
                help_text="In the app under Help > About.",
                department_ids=(support_id,),
            ),
        ),
    )


async def add_contact_form(core: HelpdeskCore, tenant: Tenant) -> int | None:
    """The departments, the contact form and the sample site as an embedding site, once.

    Returns the form's id, or None when an earlier run added them.
    """
    if CONTACT_DONE in tenant.settings:
        return None
    # Found by name, so a run interrupted half-way makes nothing twice on the next one.
    departments = {d.name: d.id for d in await core.forms.list_departments(tenant.id)}
    for name in DEMO_DEPARTMENTS:
        if name not in departments:
            departments[name] = (await core.forms.create_department(tenant.id, name)).id
    forms = [f for f in await core.forms.list_forms(tenant.id) if f.title == DEMO_FORM_TITLE]
    if forms:
        form = forms[0]
    else:
        draft = contact_form_draft(*(departments[name] for name in DEMO_DEPARTMENTS))
        form = await core.forms.save_form(tenant.id, draft)
    changes: dict[str, object] = {CONTACT_DONE: form.id}
    if not tenant.settings.get("embed_origins"):
        changes["embed_origins"] = [DEMO_SITE]
    await core.tenants.update_tenant_settings(tenant.id, changes)
    return form.id
