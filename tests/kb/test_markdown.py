"""Article Markdown renders to useful HTML and hostile input comes out harmless."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from portal.core.contract import Article
from portal.kb.markdown import MarkdownCache, plain_text, render_markdown

SAFE_SCHEMES = ("http://", "https://", "mailto:")


class Collector(HTMLParser):
    """Every start tag with its attributes, and the text outside tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Collector:
    collector = Collector()
    collector.feed(html)
    collector.close()
    return collector


def tags(html: str, name: str) -> list[dict[str, str]]:
    return [attrs for tag, attrs in parse(html).tags if tag == name]


def assert_harmless(html: str) -> None:
    """No active tag, no event handler, no style, no URL outside http(s)/mailto/relative."""
    for tag, attrs in parse(html).tags:
        assert tag not in {"script", "iframe", "style", "svg", "object", "embed", "form"}, html
        for name, value in attrs.items():
            assert not name.startswith("on"), html
            assert name != "style", html
            if name in ("href", "src"):
                scheme = value.split(":", 1)[0].lower().strip() if ":" in value else ""
                assert scheme in ("", "http", "https", "mailto"), html
                assert "javascript" not in value.lower(), html


HOSTILE = {
    "script block": "<script>alert(1)</script>",
    "script inline": "Hello <script>alert(1)</script> world",
    "img onerror": "<img src=x onerror=alert(1)>",
    "img onerror inline": "text <img src=x onerror=alert(1)> text",
    "javascript link": "[x](javascript:alert(1))",
    "mixed-case javascript link": "[x](JaVaScRiPt:alert(1))",
    "entity javascript link": "[x](&#106;avascript:alert(1))",
    "data html link": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "data image": "![x](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAA)",
    "vbscript link": "[x](vbscript:msgbox(1))",
    "raw javascript anchor": '<a href="javascript:alert(1)">x</a>',
    "raw encoded javascript anchor": '<a href="&#106;avascript:alert(1)">x</a>',
    "raw tab javascript anchor": '<a href="java\tscript:alert(1)">x</a>',
    "raw data anchor": '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "onclick": '<a href="http://ok" onclick="x()">ok</a>',
    "iframe": '<iframe src="https://evil.example/"></iframe>',
    "style block": "<style>body { display: none }</style>",
    "style attribute": '<p style="position:fixed;top:0">x</p>',
    "svg onload": "<svg onload=alert(1)><circle r=1 /></svg>",
    "object": '<object data="https://evil.example/x.swf"></object>',
    "form": '<form action="https://evil.example/"><input name=password></form>',
    "javascript autolink": "<javascript:alert(1)>",
    "data autolink": "<data:text/html,alert(1)>",
    "reference link": "[x][evil]\n\n[evil]: javascript:alert(1)",
    "image javascript": "![x](javascript:alert(1))",
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "base href": '<base href="javascript:alert(1)//">',
}


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_markdown_is_neutralised(source: str) -> None:
    html = render_markdown(source)
    assert_harmless(html)
    assert "<script" not in html.lower()
    assert "onerror" not in html.lower()
    assert "onload" not in html.lower()


def test_script_content_is_dropped_not_shown() -> None:
    html = render_markdown("Hello <script>alert(1)</script> world\n\n<style>p{}</style>")
    text = "".join(parse(html).text)
    assert "alert" not in text
    assert "p{}" not in text
    assert "Hello" in text and "world" in text


@pytest.mark.parametrize(
    "source",
    ["[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "<a href='javascript:1'>x</a>"],
)
def test_javascript_links_lose_their_href(source: str) -> None:
    for attrs in tags(render_markdown(source), "a"):
        assert "href" not in attrs


def test_data_image_loses_its_src() -> None:
    images = tags(render_markdown("![pixel](data:image/png;base64,AAAA)"), "img")
    assert images and all("src" not in attrs for attrs in images)
    assert images[0]["alt"] == "pixel"


def test_onclick_is_stripped_but_link_kept() -> None:
    links = tags(render_markdown('<a href="http://ok" onclick="x()">ok</a>'), "a")
    assert links == [{"href": "http://ok", "rel": "noopener noreferrer"}]


def test_img_onerror_is_stripped_but_image_kept() -> None:
    images = tags(render_markdown("<img src=x onerror=alert(1)>"), "img")
    assert images == [{"src": "x"}]


@pytest.mark.parametrize(
    ("source", "href"),
    [
        ("[Demo Co](https://demo.example/help)", "https://demo.example/help"),
        ("[plain](http://demo.example/)", "http://demo.example/"),
        ("[mail us](mailto:support@demo.example)", "mailto:support@demo.example"),
        ("<https://demo.example/status>", "https://demo.example/status"),
        ("<support@demo.example>", "mailto:support@demo.example"),
        ("[next article](/kb/en/attach-files)", "/kb/en/attach-files"),
    ],
)
def test_safe_links_keep_href_and_get_rel(source: str, href: str) -> None:
    links = tags(render_markdown(source), "a")
    assert len(links) == 1
    assert links[0]["href"] == href
    assert set(links[0]["rel"].split()) == {"noopener", "noreferrer"}


def test_bare_urls_are_not_linkified() -> None:
    assert tags(render_markdown("See https://demo.example/ for more."), "a") == []


def test_link_title_survives_and_query_is_escaped() -> None:
    html = render_markdown('[ok](https://demo.example/?a=1&b=2 "Status page")')
    assert tags(html, "a")[0]["href"] == "https://demo.example/?a=1&b=2"
    assert tags(html, "a")[0]["title"] == "Status page"
    assert "&amp;b=2" in html


def test_table_renders_with_alignment_but_no_style() -> None:
    source = "| Plan | Files |\n|:-----|------:|\n| Free | 5 |\n| Pro | 20 |\n"
    html = render_markdown(source)
    names = [tag for tag, _ in parse(html).tags]
    assert names.count("table") == 1
    assert names.count("th") == 2 and names.count("td") == 4
    assert [attrs.get("align") for attrs in tags(html, "td")] == ["left", "right"] * 2
    assert "style=" not in html


def test_fenced_code_block_keeps_language_and_escapes_html() -> None:
    html = render_markdown("```python\nprint('<b>hi</b>')\n```\n")
    assert tags(html, "pre") == [{}]
    assert tags(html, "code") == [{"class": "language-python"}]
    assert "&lt;b&gt;" in html
    assert tags(html, "b") == []


def test_inline_code_and_kbd_and_emphasis() -> None:
    html = render_markdown(
        "Press <kbd>Ctrl</kbd>+<kbd>K</kbd>, run `portal demo`, **bold** ~~old~~"
    )
    names = [tag for tag, _ in parse(html).tags]
    assert names.count("kbd") == 2
    assert {"code", "strong", "s"} <= set(names)


def test_common_article_structure_survives() -> None:
    source = (
        "# Title\n\nIntro.\n\n## Steps\n\n1. One\n2. Two\n\n- a\n- b\n\n> Note\n\n---\n\n"
        '![Screenshot](https://demo.example/s.png "Shot")\n\nLine one  \nline two\n'
    )
    names = {tag for tag, _ in parse(render_markdown(source)).tags}
    assert {"h1", "h2", "p", "ol", "ul", "li", "blockquote", "hr", "img", "br"} <= names


def test_headings_get_unique_prefixed_ids() -> None:
    html = render_markdown("## Before you start\n\n## Before you start\n\n## 重置密码\n")
    assert [attrs["id"] for attrs in tags(html, "h2")] == [
        "h-before-you-start",
        "h-before-you-start-2",
        "h-重置密码",
    ]


def test_raw_html_ids_cannot_clobber_page_ids() -> None:
    html = render_markdown('<h2 id="csrf_token">x</h2>\n\n<p id="main">y</p>')
    assert tags(html, "h2") == [{"id": "h-csrf_token"}]
    assert tags(html, "p") == [{}]


def test_classes_other_than_code_language_are_dropped() -> None:
    html = render_markdown('<span class="btn">x</span> <code class="language-sh evil">y</code>')
    assert tags(html, "span") == [{}]
    assert tags(html, "code") == [{"class": "language-sh"}]


def test_plain_text_strips_markup_and_collapses_whitespace() -> None:
    source = (
        "# Reset your password\n\nOpen **Settings** &amp; choose\n*Security*.\n\n```\ncode\n```\n"
    )
    assert plain_text(source) == "Reset your password Open Settings & choose Security."


def test_plain_text_cuts_at_word_boundary_with_ellipsis() -> None:
    summary = plain_text("word " * 200, max_chars=42)
    assert len(summary) <= 42
    assert summary.endswith("word…")


def test_plain_text_cuts_cjk_text_without_spaces() -> None:
    summary = plain_text("打开客户门户并选择忘记密码。" * 40, max_chars=50)
    assert len(summary) == 50
    assert summary.endswith("…")


def test_plain_text_keeps_short_text_whole() -> None:
    assert plain_text("Just a *short* note.") == "Just a short note."


def test_plain_text_does_not_leak_script() -> None:
    assert plain_text("Hi <script>alert(1)</script> there") == "Hi there"


def make_article(body: str, revision: int = 1, article_id: int = 1) -> Article:
    return Article(
        id=article_id, tenant_id=1, category_id=None, language="en", slug="a", title="A",
        body_md=body, published=True, updated_at=datetime(2025, 1, 1, tzinfo=UTC),
        revision=revision,
    )  # fmt: skip


def test_cache_returns_same_html_without_rerendering() -> None:
    cache = MarkdownCache()
    article = make_article("# Hello\n\nWorld")
    first = cache.render(article)
    second = cache.render(replace(article))
    assert first == second == render_markdown(article.body_md)
    assert second is first
    assert (cache.hits, cache.misses) == (1, 1)


def test_cache_rerenders_on_new_revision() -> None:
    cache = MarkdownCache()
    article = make_article("Old text", revision=1)
    assert "Old text" in cache.render(article)
    newer = replace(article, body_md="New text", revision=2)
    assert "New text" in cache.render(newer)
    assert cache.misses == 2
    assert len(cache) == 1  # the old revision's slot was reused


def test_cache_evicts_least_recently_used() -> None:
    cache = MarkdownCache(maxsize=2)
    one, two, three = (make_article(f"article {n}", article_id=n) for n in (1, 2, 3))
    cache.render(one)
    cache.render(two)
    cache.render(one)  # one is now the most recent
    cache.render(three)  # evicts two
    assert len(cache) == 2
    misses = cache.misses
    cache.render(one)
    assert cache.misses == misses
    cache.render(two)
    assert cache.misses == misses + 1
