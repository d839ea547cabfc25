"""The Jinja environment: translations kept per language, override templates seen when edited."""

from __future__ import annotations

import os

import jinja2
import pytest

from portal import templating
from portal.i18n import LANGUAGES, gettext, ngettext, use_language
from portal.templating import make_templates

SOURCE = (
    '{{ _("Search") }}|{{ _("Sign out") }}|{{ gettext("Search") }}|{{ _("100%% <sure>") }}|'
    '{{ _("Page %(page)d of %(pages)d", page=2, pages=3) }}|{{ _("Hi %(name)s", name=who) }}|'
    '{{ ngettext("%(num)d request", "%(num)d requests", 2) }}'
    '{% autoescape false %}|{{ _("Search") }}|{{ _("a < b") }}{% endautoescape %}'
)


def jinja_own() -> jinja2.Environment:
    """The environment as Jinja's i18n extension makes it, for comparison."""
    env = jinja2.Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_kept_translations_read_as_jinjas_own(language):
    ours = make_templates().env.from_string(SOURCE)
    theirs = jinja_own().from_string(SOURCE)
    for _ in range(2):  # the second time from what was kept
        with use_language(language):
            assert ours.render(who="<b>") == theirs.render(who="<b>")


def test_each_language_keeps_its_own_translations():
    template = make_templates().env.from_string('{{ _("Search") }}')
    pages = {}
    for language in ("en", "nb", "en", "ja", "nb"):
        with use_language(language):
            pages.setdefault(language, set()).add(template.render())
    assert pages == {"en": {"Search"}, "nb": {"Søk"}, "ja": {"検索"}}


def test_an_edited_override_template_is_seen(tmp_path, monkeypatch):
    monkeypatch.setattr(templating, "RECHECK_S", 0.0)  # no waiting for the next look
    page = tmp_path / "page.html"
    page.write_text("first")
    env = make_templates(tmp_path).env
    assert env.get_template("page.html").render() == "first"
    page.write_text("second")
    later = page.stat().st_mtime + 10  # a time the file's clock cannot have given it already
    os.utime(page, (later, later))
    assert env.get_template("page.html").render() == "second"


async def test_a_served_app_compiles_every_template_as_it_starts(settings, core):
    from portal.app import create_app

    served, plain = (create_app(settings, core=core, compile_templates=c) for c in (True, False))
    names = {n for n in make_templates().env.list_templates() if ":" not in n}
    for app, compiled in ((served, names), (plain, set())):
        async with app.router.lifespan_context(app) as state:
            env = state["services"].templates.env
            # Jinja keeps a compiled template under (its loader, its name).
            assert {key[1] for key in env.cache} == compiled
