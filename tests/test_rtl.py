"""Arabic, the right-to-left UI language: negotiation, `<html dir>`, search and the chat's texts."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from portal.i18n import (
    LANGUAGES,
    negotiate,
    normalize_language,
    text_direction,
    translations,
    use_language,
)
from portal.kb.analysis import analyzer_for, normalize_arabic
from portal.kb.snippets import build_snippet
from portal.messenger.strings import agent_strings, visitor_strings

ROOT = Path(__file__).parent.parent
HTML_TAG = re.compile(r"<html\b[^>]*>")
ARABIC = re.compile("[\u0600-\u06ff]")

# "How to reset the password", written with full tashkeel and a tatweel, as some writers do.
VOWELLED_TITLE = "كَيْفَ تُعِيدُ تَعْيِينَ كَلِمَةِ المُرُورِ"
BODY = "افتح صفحة تسـجيل الدخول واختر «نسيت كلمة المرور»، ثم اتبع الرابط في البريد الإلكتروني."


def html_tag(text: str) -> str:
    match = HTML_TAG.search(text)
    assert match, "no <html> tag"
    return match.group()


async def wait_searchable(client, query: str, lang: str = "ar", timeout: float = 5.0) -> list:
    """The index follows core events in the background; wait until `query` finds something."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        results = (await client.get("/kb/search.json", params={"q": query, "lang": lang})).json()
        if results["results"]:
            return results["results"]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{query!r} never became searchable")
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------------- without a server
def test_arabic_is_a_right_to_left_language():
    assert LANGUAGES["ar"] == "ar"
    assert text_direction("ar") == "rtl"
    assert {text_direction(code) for code in LANGUAGES if code != "ar"} == {"ltr"}
    assert text_direction("xx") == "ltr"


@pytest.mark.parametrize("header", ["ar", "ar-SA", "ar-EG,ar;q=0.9,en;q=0.5", "fr, ar-LB;q=0.5"])
def test_arabic_is_negotiated(header):
    assert negotiate(header) == "ar"


def test_arabic_aliases():
    assert normalize_language("ar_AE") == "ar"
    assert normalize_language("AR-ma") == "ar"


def test_arabic_catalog_has_six_plural_forms():
    catalog = translations("ar")
    assert catalog.gettext("Search") == "بحث"
    forms = [
        catalog.ngettext("%(num)d ticket", "%(num)d tickets", n) % {"num": n}
        for n in (0, 1, 2, 3, 11, 100)
    ]
    assert len(set(forms)) == 6
    assert forms[3] == "3 تذاكر" and forms[4] == "11 تذكرة"


def test_messenger_strings_are_arabic():
    with use_language("ar"):  # as LanguageMiddleware sets it for an Arabic page
        for strings in (visitor_strings(), agent_strings()):
            for key, text in strings.items():
                assert ARABIC.search(text), f"{key}: {text!r} is not Arabic"
        assert visitor_strings()["typing"] == "%(name)s يكتب…"


def test_arabic_analyzer_drops_tashkeel_tatweel_and_article():
    analyzer = analyzer_for("ar")
    plain = [token.text for token in analyzer("كيف تعيد تعيين كلمة المرور")]
    vowelled = [token.text for token in analyzer(VOWELLED_TITLE)]
    assert vowelled == plain == ["تعيد", "تعيين", "كلمه", "مرور"]  # كيف is a stop word
    assert [token.text for token in analyzer("تسـجيل بالبريد Passwords")] == [
        "تسجيل",
        "بريد",
        "password",
    ]
    assert normalize_arabic("إِلَى") == "الي"


def test_snippet_marks_vowelled_words_as_written():
    analyzer = analyzer_for("ar")
    snippet = build_snippet(VOWELLED_TITLE, frozenset({"مرور", "كلمه"}), analyzer)
    assert "<mark>كَلِمَةِ</mark> <mark>المُرُورِ</mark>" in snippet


def test_stylesheets_use_logical_properties():
    for path in ("static/css/portal.css", "static/messenger/messenger.css"):
        css = (ROOT / path).read_text()
        physical = re.findall(r"(?:margin|padding|border)-(?:left|right)\b|\b(?:left|right):", css)
        assert not physical, f"{path}: {physical}"
        assert "text-align: left;" not in css.replace("direction: ltr; text-align: left;", "")


# ---------------------------------------------------------------------------- over HTTP
async def test_arabic_pages_are_right_to_left(server):
    tenant = await server.tenant()
    await server.article(
        tenant, "Reset your password", "Open the sign-in page.", slug="reset-password"
    )
    await server.article(
        tenant, VOWELLED_TITLE, BODY, language="ar", slug="reset-password", category="الحساب"
    )
    async with server.client() as client:
        home = await client.get("/kb/ar/")
        assert home.status_code == 200
        assert html_tag(home.text) == '<html lang="ar" dir="rtl">'
        assert "مركز المساعدة" in home.text or "بحث" in home.text

        article = await client.get("/kb/ar/articles/reset-password")
        assert html_tag(article.text) == '<html lang="ar" dir="rtl">'

        english = await client.get("/kb/en/")
        assert html_tag(english.text) == '<html lang="en" dir="ltr">'
        # the footer offers Arabic by its own name, marked up for its script
        assert 'lang="ar" hreflang="ar">العربية</a>' in english.text

        negotiated = await client.get("/kb/", headers={"accept-language": "ar-SA,ar;q=0.9"})
        assert negotiated.status_code in (302, 303, 307)
        assert negotiated.headers["location"] == "/kb/ar/"

        # error pages speak the browser's language
        missing = await client.get("/kb/ar/articles/nope", headers={"accept-language": "ar"})
        assert missing.status_code == 404
        assert html_tag(missing.text) == '<html lang="ar" dir="rtl">'

        sitemap = await client.get("/sitemap.xml")
        assert 'hreflang="ar" href="http://acme.portal.test/kb/ar/articles/reset-password"' in (
            sitemap.text
        )


async def test_arabic_article_is_found_with_and_without_diacritics(server):
    tenant = await server.tenant()
    await server.article(
        tenant, VOWELLED_TITLE, BODY, language="ar", slug="reset-password", category="الحساب"
    )
    async with server.client() as client:
        plain = await wait_searchable(client, "كلمة مرور")
        assert plain[0]["url"].endswith("/kb/ar/articles/reset-password")
        vowelled = await wait_searchable(client, "كَلِمَةُ المُرُور")
        assert vowelled[0]["url"].endswith("/kb/ar/articles/reset-password")
        # hamza and tatweel spelled differently in the query than in the body
        assert (await wait_searchable(client, "الالكترونى"))[0]["url"].endswith(
            "/kb/ar/articles/reset-password"
        )
        assert (await wait_searchable(client, "تسجيـــل"))[0]["url"].endswith(
            "/kb/ar/articles/reset-password"
        )

        page = await client.get("/kb/ar/search", params={"q": "المرور"})
        assert html_tag(page.text) == '<html lang="ar" dir="rtl">'
        assert "<mark>المرور</mark>" in page.text  # the snippet comes from the body


async def test_messenger_in_arabic(server):
    await server.tenant()
    async with server.client() as client:
        page = await client.get("/messenger", headers={"accept-language": "ar"})
    assert page.status_code == 200
    assert html_tag(page.text) == '<html lang="ar" dir="rtl">'
    config = json.loads(
        re.search(
            r'<script type="application/json" id="messenger-config">(.*?)</script>', page.text
        ).group(1)
    )
    assert config["lang"] == "ar"
    assert config["strings"]["intro"] == "اسألنا عن أي شيء، وسنجيبك هنا مباشرة."
    assert all(ARABIC.search(text) for text in config["strings"].values())
    assert "المحادثات السابقة" in page.text  # "Past conversations", rendered by the template
