"""axe-core in Chromium: no serious or critical accessibility violation on the pages people use.

The widget's panel, a knowledge base article, a web form and the portal's ticket list, in
English and in a right-to-left language. axe-core comes from the npm registry (package.json;
`make test` installs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.core.contract import FormDraft, TicketDraft
from portal.i18n import LANGUAGES
from tests.conftest import customer_cookie, service_missing

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")
RUN_AXE = """() => axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
    .filter(v => ["serious", "critical"].includes(v.impact))
    .map(v => v.id + ": " + v.help + " @ " + v.nodes.map(n => n.target.join(" ")).join(", ")))"""


def languages() -> list[str]:
    return [lang for lang in ("en", "ar") if lang in LANGUAGES]


async def violations(page, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    answer = await page.goto(url)
    assert answer is not None and answer.status == 200, url
    await page.add_script_tag(path=str(AXE))
    return await page.evaluate(RUN_AXE)


@pytest.mark.parametrize("lang", languages())
async def test_pages_have_no_serious_accessibility_violations(server, browser, settings, lang):
    if not AXE.exists():
        service_missing(f"axe-core is not installed at {AXE} (npm ci)")
    tenant = await server.core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    await server.article(tenant, "Reset your password", "Open **Settings**.", slug="reset")
    if lang != "en":
        await server.article(tenant, "إعادة تعيين كلمة المرور", "افتح الإعدادات.", language=lang,
                             slug="reset")  # fmt: skip
    form = await server.core.forms.save_form(tenant.id, FormDraft("Contact us"))
    await server.core.tickets.create_ticket(
        tenant.id, TicketDraft("Printer on fire", "Help!", "kim@example.com"), "t1"
    )
    customer = await server.core.customers.find_customer(tenant.id, "kim@example.com")
    cookie = await customer_cookie(server.core, settings.secret_key, customer)
    name, value = cookie.split("=", 1)
    # bypass_csp: axe is added as a script element, which our own CSP would refuse.
    context = await browser.new_context(locale=lang, bypass_csp=True)
    await context.add_cookies([{"name": name, "value": value, "url": server.url + "/portal"}])
    page = await context.new_page()
    try:
        found = {}
        for url in (
            f"/widget/panel?lang={lang}",
            f"/kb/{lang}/articles/reset",
            f"/forms/{form.id}?lang={lang}",
            "/portal/tickets",
        ):
            found[url] = await violations(page, server.url + url)
        assert found == {url: [] for url in found}
    finally:
        await context.close()
