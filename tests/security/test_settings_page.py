"""Tenant settings on a real `portal serve`: an admin changes only their tenant, at once."""

from __future__ import annotations

from portal.admin.settings import SETTINGS, shown
from portal.core.contract import FormDraft
from tests.agent.test_console import TOKEN_RE, hidden, log_in
from tests.forms.helpers import send_form
from tests.security.conftest import ADMIN_PASSWORD, Served, fresh_ip

PATH = "/admin/settings"


def page_defaults(**changes: str) -> dict[str, str]:
    values = {s.key: shown(s, {}) for s in SETTINGS}
    return {**{k: v for k, v in values.items() if v}, **changes}


async def test_an_admin_changes_only_their_tenant_and_it_applies_without_a_restart(
    served: Served, served_core
) -> None:
    forms = {
        slug: await served_core.forms.save_form(tenant.id, FormDraft("Contact"))
        for slug, tenant in served.tenants.items()
    }
    ip = fresh_ip()  # one visitor address for both tenants: the limit is per tenant
    async with (
        served.client("acme", ip=ip) as acme,
        served.client("globex", ip=ip) as globex,
        served.client("acme") as admin,
    ):
        # Both tenants are served (and cached) with the default limit before the change.
        assert (await send_form(acme, forms["acme"].id)).status_code == 303
        assert (await send_form(globex, forms["globex"].id)).status_code == 303

        assert (await log_in(admin, "admin@acme.test", ADMIN_PASSWORD)).status_code == 303
        token = hidden(TOKEN_RE, (await admin.get(PATH)).text)
        data = page_defaults(form_ip_limit_per_minute="1", csrf_token=token)
        saved = await admin.post(PATH, data=data)
        assert saved.status_code == 303

        # The very next requests follow the new limit on acme, and globex keeps its default.
        assert (await send_form(acme, forms["acme"].id)).status_code == 303
        assert (await send_form(acme, forms["acme"].id)).status_code == 429
        for _ in range(2):
            assert (await send_form(globex, forms["globex"].id)).status_code == 303

        # acme's session and token are worth nothing on globex's host.
        async with served.client("globex", cookies=admin.cookies) as crossed:
            refused = await crossed.post(PATH, data=data)
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/admin/login?")

    acme_settings = (await served_core.tenants.get_tenant("acme")).settings
    assert acme_settings["form_ip_limit_per_minute"] == 1
    assert (
        "form_ip_limit_per_minute" not in (await served_core.tenants.get_tenant("globex")).settings
    )
