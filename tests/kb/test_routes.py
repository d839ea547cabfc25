"""Knowledge base pages, search, feedback and SEO over real HTTP."""

import asyncio
import re
from html.parser import HTMLParser

import pytest


async def wait_searchable(client, query, lang="en", timeout=5.0):
    """Index updates follow core events in the background; wait until `query` finds something."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        results = (await client.get("/kb/search.json", params={"q": query, "lang": lang})).json()
        if results["results"]:
            return results["results"]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{query!r} never became searchable")
        await asyncio.sleep(0.05)


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []
        self.metas = []

    def handle_starttag(self, tag, attrs):
        if tag == "link":
            self.links.append(dict(attrs))
        if tag == "meta":
            self.metas.append(dict(attrs))


def parse(html):
    parser = Links()
    parser.feed(html)
    return parser


@pytest.fixture
async def acme(server):
    tenant = await server.tenant("acme", "Acme")
    await server.article(
        tenant,
        "Reset your password",
        "Open **Settings** and choose *Reset password*.",
        slug="reset-password",
        category="Account",
    )
    await server.article(
        tenant,
        "Tilbakestill passordet",
        "Gå til kundeportal og velg passord.",
        slug="reset-password",
        language="nb",
        category="Konto",
    )
    await server.article(tenant, "Draft article", "Not yet public.", slug="draft", published=False)
    return tenant


async def test_root_redirects_to_the_visitors_language(server, acme):
    async with server.client() as client:
        first = await client.get("/")
        assert first.status_code == 302 and first.headers["location"] == "/kb/"
        nb = await client.get("/kb/", headers={"accept-language": "nb-NO,nb;q=0.9,en;q=0.5"})
        assert nb.headers["location"] == "/kb/nb/" and "Accept-Language" in nb.headers["vary"]
        ja = await client.get("/kb/", headers={"accept-language": "fr, ja;q=0.4"})
        assert ja.headers["location"] == "/kb/ja/"


async def test_language_aliases_redirect_and_unknown_languages_are_404(server, acme):
    async with server.client() as client:
        alias = await client.get("/kb/no/articles/reset-password")
        assert alias.status_code == 301
        assert alias.headers["location"] == "/kb/nb/articles/reset-password"
        assert (await client.get("/kb/xx/")).status_code == 404


async def test_home_lists_categories_and_popular_articles(server, acme):
    async with server.client() as client:
        for _ in range(3):
            await client.get("/kb/en/articles/reset-password")
        home = await client.get("/kb/en/")
    assert home.status_code == 200
    assert "Account" in home.text and "Reset your password" in home.text
    assert "Konto" not in home.text  # categories are per language
    assert "Draft article" not in home.text


async def test_article_page_renders_markdown_and_seo_tags(server, acme):
    async with server.client() as client:
        page = await client.get("/kb/en/articles/reset-password")
    assert page.status_code == 200
    assert "<strong>Settings</strong>" in page.text
    tags = parse(page.text)
    canonical = [link["href"] for link in tags.links if link.get("rel") == "canonical"]
    assert canonical == ["http://acme.portal.test/kb/en/articles/reset-password"]
    hreflang = {link["hreflang"]: link["href"] for link in tags.links if link.get("hreflang")}
    assert hreflang["nb"] == "http://acme.portal.test/kb/nb/articles/reset-password"
    description = [m["content"] for m in tags.metas if m.get("name") == "description"]
    assert description and description[0].startswith("Open Settings and choose Reset")
    assert "<title>Reset your password · Acme</title>" in page.text


async def test_unpublished_articles_are_404(server, acme):
    async with server.client() as client:
        assert (await client.get("/kb/en/articles/draft")).status_code == 404


async def test_ui_strings_follow_the_page_language(server, acme):
    async with server.client() as client:
        nb = await client.get("/kb/nb/articles/reset-password")
        ja = await client.get("/kb/ja/")
    assert 'lang="nb"' in nb.text and "Var denne artikkelen nyttig?" in nb.text
    assert 'lang="ja"' in ja.text and "ヘルプセンター" in ja.text


async def test_feedback_is_stored_once_per_key(server, acme):
    async with server.client() as client:
        page = await client.get("/kb/en/articles/reset-password")
        key = re.search(r'name="key" value="([^"]+)"', page.text).group(1)
        for _ in range(2):
            sent = await client.post(
                "/kb/en/articles/reset-password/feedback", data={"helpful": "no", "key": key}
            )
            assert sent.status_code == 303
        thanks = await client.get(sent.headers["location"])
        assert "Thank you for your feedback" in thanks.text
        bad = await client.post(
            "/kb/en/articles/reset-password/feedback", data={"helpful": "maybe", "key": key}
        )
        assert bad.status_code == 400 and "helpful=yes" in bad.json()["error"]
        missing = await client.post(
            "/kb/en/articles/nope/feedback", data={"helpful": "yes", "key": key}
        )
        assert missing.status_code == 404
    [summary] = await server.core.kb.feedback_summary(acme.id)
    assert (summary.title, summary.helpful, summary.not_helpful) == ("Reset your password", 0, 1)


async def test_search_page_highlights_and_records_misses(server, acme):
    async with server.client() as client:
        await wait_searchable(client, "password")
        found = await client.get("/kb/en/search", params={"q": "password"})
        assert found.status_code == 200
        assert "<mark>" in found.text and "Reset your password" in found.text
        missed = await client.get("/kb/en/search", params={"q": "refund <b>policy</b>"})
        assert "No articles match" in missed.text
        assert "<b>policy</b>" not in missed.text  # the query is escaped
    missed_queries = await server.core.kb.missed_searches(acme.id)
    assert [(m.query, m.language) for m in missed_queries] == [("refund <b>policy</b>", "en")]


@pytest.mark.both_databases
async def test_search_json_for_the_widget(server, acme):
    async with server.client() as client:
        results = await wait_searchable(client, "password")
        assert results[0]["title"] == "Reset your password"
        assert results[0]["url"] == "http://acme.portal.test/kb/en/articles/reset-password"
        assert results[0]["language"] == "en" and "<mark>" in results[0]["snippet"]
        # Articles are indexed in the background one event at a time: wait for the nb one too.
        await wait_searchable(client, "kundeportalen", lang="nb")
        nb_response = await client.get(
            "/kb/search.json", params={"q": "kundeportalen", "lang": "no"}
        )
        assert nb_response.headers["access-control-allow-origin"] == "*"
        assert [r["language"] for r in nb_response.json()["results"]] == ["nb"]
        # The draft was saved last: once an article saved after it is found, the index has
        # handled the draft too (it applies changes in order).
        await server.article(acme, "Zebra crossings", "Stripes on the road.", slug="zebra")
        await wait_searchable(client, "zebra")
        draft = (await client.get("/kb/search.json", params={"q": "public"})).json()
        assert draft["results"] == []
        bad_lang = await client.get("/kb/search.json", params={"q": "x", "lang": "klingon"})
        assert bad_lang.status_code == 400 and "not supported" in bad_lang.json()["error"]
        too_long = await client.get("/kb/search.json", params={"q": "x" * 300})
        assert too_long.status_code == 400
        # type-ahead prefixes are not recorded; the final query with record=1 is
        await client.get("/kb/search.json", params={"q": "refu"})
        await client.get("/kb/search.json", params={"q": "refund", "record": "1", "lang": "en"})
    assert [m.query for m in await server.core.kb.missed_searches(acme.id)] == ["refund"]


async def test_sitemap_lists_published_articles_with_alternates(server, acme):
    async with server.client() as client:
        sitemap = await client.get("/sitemap.xml")
        robots = await client.get("/robots.txt")
    assert sitemap.headers["content-type"].startswith("application/xml")
    assert "<loc>http://acme.portal.test/kb/en/articles/reset-password</loc>" in sitemap.text
    assert 'hreflang="nb"' in sitemap.text
    assert "draft" not in sitemap.text
    assert "Sitemap: http://acme.portal.test/sitemap.xml" in robots.text


async def test_category_page_shows_its_articles(server, acme):
    async with server.client() as client:
        page = await client.get("/kb/en/categories/account")
        missing = await client.get("/kb/en/categories/nothing-here")
    assert page.status_code == 200 and "Reset your password" in page.text
    assert missing.status_code == 404


async def test_renaming_a_category_refreshes_cached_article_pages(server, acme):
    async with server.client() as client:
        before = await client.get("/kb/en/articles/reset-password")
        assert "Account" in before.text
        category = await server.core.kb.get_category_by_slug(acme.id, "en", "account")
        await server.core.kb.update_category(
            acme.id, category.id, name="Your account", description="", parent_id=None, position=0
        )
        for _ in range(50):
            after = await client.get("/kb/en/articles/reset-password")
            if "Your account" in after.text:
                break
            await asyncio.sleep(0.02)
        assert "Your account" in after.text


async def test_language_links_on_an_article_lead_to_its_translations(server, acme):
    async with server.client() as client:
        page = await client.get("/kb/en/articles/reset-password")
    footer = page.text.split('class="languages"', 1)[1]
    assert 'href="http://acme.portal.test/kb/nb/articles/reset-password"' in footer
    assert 'href="/kb/ja/"' in footer  # no Japanese translation: that language's home
