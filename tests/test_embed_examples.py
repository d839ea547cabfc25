"""The host pages in embed-examples/pages: every address they name is one the service serves."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from portal.core.contract import FormDraft

PAGES = Path(__file__).resolve().parent.parent / "embed-examples" / "pages"
PLACEHOLDER = "https://support.example.com"


def addresses(page: Path) -> list[str]:
    """The help desk's paths a page links, frames or loads (the placeholder host's)."""
    text = page.read_text()
    found = re.findall(rf'(?:src|href)="{re.escape(PLACEHOLDER)}(/[^"]*)"', text)
    assert found, f"{page.name} names no address of the help desk"
    return found


@pytest.mark.parametrize("name", ["widget.html", "apps.html", "links.html"])
async def test_every_address_of_the_example_pages_is_served(server, name):
    acme = await server.tenant("acme", "Acme")
    form = await server.core.forms.save_form(acme.id, FormDraft("Contact us"))
    assert form.id == 1  # the pages name the first form
    async with server.client(follow_redirects=True) as client:
        for path in addresses(PAGES / name):
            response = await client.get(path)
            assert response.status_code == 200, path
            if "embed=1" in path:  # still the iframe variant after any redirect
                assert urlsplit(str(response.url)).query.endswith("embed=1"), path
                # No site chrome: neither the brand nor the site's menu (the portal keeps its own).
                assert 'class="brand"' not in response.text, path
                assert 'class="site-nav"' not in response.text, path


def test_the_frames_listener_trusts_only_the_help_desk():
    text = (PAGES / "apps.html").read_text()
    assert f'e.origin !== "{PLACEHOLDER}"' in text
    assert text.count("<iframe ") == text.count(" data-portal-frame></iframe>") == 4
