"""Article Markdown to safe HTML: markdown-it-py renders, nh3 sanitises, an LRU cache keeps it."""

from __future__ import annotations

import functools
import html
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

from portal.core.contract import Article
from portal.core.slugs import slugify

# Prefix for heading anchors; raw-HTML ids get it too, so article content can never clobber
# an element id the page template relies on (e.g. a form or the CSRF token field).
HEADING_ID_PREFIX = "h-"

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div",
        "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
        "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span",
        "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
        "u", "ul", "var",
    }
)  # fmt: skip

# Dropped together with everything inside them, not just unwrapped.
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math",
        "textarea", "select", "title", "frameset", "frame", "applet", "noembed", "xmp",
    }
)  # fmt: skip

ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "code": {"class"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    **{f"h{level}": {"id"} for level in range(1, 7)},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_ALIGN = {"align": {"left", "center", "right"}}
_CODE_LANGUAGE = re.compile(r"language-[\w+#.-]{1,40}")
_TEXT_ALIGN = re.compile(r"text-align:\s*(left|center|right)")
_SPACES = re.compile(r"\s+")


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "id":
        return value if value.startswith(HEADING_ID_PREFIX) else HEADING_ID_PREFIX + value
    if attr == "class":
        # Only the fence's `language-xyz` survives, for syntax highlighting on the client.
        kept = [name for name in value.split() if _CODE_LANGUAGE.fullmatch(name)]
        return " ".join(kept) or None
    return value


def _cleaner(**options: Any) -> Callable[[str], str]:
    if hasattr(nh3, "Cleaner"):  # nh3 >= 0.3 compiles the policy once
        return nh3.Cleaner(**options).clean
    return functools.partial(nh3.clean, **options)  # pragma: no cover - older nh3


_sanitize = _cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(DROPPED_WITH_CONTENT),
    attributes=ALLOWED_ATTRIBUTES,
    tag_attribute_values={"td": _ALIGN, "th": _ALIGN},
    attribute_filter=_attribute_filter,
    url_schemes=set(URL_SCHEMES),
    link_rel="noopener noreferrer",
    strip_comments=True,
)
# Summaries skip code blocks: commands and config make poor meta descriptions.
_strip_tags = _cleaner(tags=set(), clean_content_tags={"pre", *DROPPED_WITH_CONTENT})


def _heading_ids(state: StateCore) -> None:
    """Give each heading an `id` from its text, unique within the document."""
    seen: dict[str, int] = {}
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or index + 1 >= len(tokens):
            continue
        inline = tokens[index + 1]
        text = "".join(
            child.content
            for child in inline.children or ()
            if child.type in ("text", "code_inline")
        )
        base = slugify(text or inline.content)
        count = seen.get(base, 0) + 1
        seen[base] = count
        token.attrSet("id", HEADING_ID_PREFIX + (base if count == 1 else f"{base}-{count}"))


def _table_align(state: StateCore) -> None:
    """Turn markdown-it's `style="text-align:x"` on cells into `align`, as style is stripped."""
    for token in state.tokens:
        if token.type not in ("th_open", "td_open"):
            continue
        style = token.attrGet("style")
        if style is None:
            continue
        token.attrs.pop("style", None)
        match = _TEXT_ALIGN.search(str(style))
        if match:
            token.attrSet("align", match.group(1))


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("heading_ids", _heading_ids)
    md.core.ruler.push("table_align", _table_align)
    return md


_MD = _parser()


def render_markdown(text: str) -> str:
    """Render article Markdown to HTML that is safe to put in a page as is."""
    return _sanitize(_MD.render(text))


def plain_text(text: str, max_chars: int = 300) -> str:
    """A plain-text summary of Markdown, at most `max_chars` long, cut at a word boundary."""
    return html_summary(_MD.render(text), max_chars)


def html_summary(rendered: str, max_chars: int = 300) -> str:
    """`plain_text` of Markdown already rendered (sanitised or not: the text is the same)."""
    plain = html.unescape(_strip_tags(rendered))
    plain = _SPACES.sub(" ", plain).strip()
    if max_chars < 2:
        return plain[: max(max_chars, 0)]
    if len(plain) <= max_chars:
        return plain
    ellipsis = "…"
    cut = plain[: max_chars - len(ellipsis) + 1]
    space = cut.rfind(" ")
    # Chinese and Japanese have no spaces between words: cut at the limit rather than
    # throwing away most of the text.
    cut = cut[:space] if space > max_chars // 2 else cut[:-1]
    return cut.rstrip(" ,.;:!?-–—、，。；：") + ellipsis


class MarkdownCache:
    """An LRU of rendered article bodies, one slot per article, valid for one revision."""

    def __init__(self, maxsize: int = 2048) -> None:
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[int, int], tuple[tuple[int, datetime], str]] = (
            OrderedDict()
        )
        # Sync endpoints run in a thread pool; OrderedDict reordering is not thread-safe.
        self._lock = threading.Lock()

    def render(self, article: Article) -> str:
        """The article's body as safe HTML, rendered only when its revision is new to the cache."""
        key = (article.tenant_id, article.id)
        # updated_at too, so a core that leaves revision at 0 still invalidates on edits.
        stamp = (article.revision, article.updated_at)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == stamp:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            self.misses += 1
        rendered = render_markdown(article.body_md)
        with self._lock:
            self._entries[key] = (stamp, rendered)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return rendered

    def clear(self) -> None:
        """Forget every rendered article."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
