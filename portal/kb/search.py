"""Knowledge-base search: one whoosh index per tenant, kept current from the core's change feed."""

from __future__ import annotations

import asyncio
import heapq
import html
import json
import logging
import os
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh import scoring
from whoosh.analysis import Analyzer
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher, _lenfield
from whoosh.fields import ID, STORED, TEXT, Schema
from whoosh.index import FileIndex
from whoosh.matching.wrappers import FilterMatcher
from whoosh.qparser import (
    GroupPlugin,
    MultifieldPlugin,
    OperatorsPlugin,
    OrGroup,
    PhrasePlugin,
    PlusMinusPlugin,
    QueryParser,
)
from whoosh.query import And, AndMaybe, AndNot, Not, NullQuery, Or, Phrase, Query, Term
from whoosh.reading import IndexReader
from whoosh.searching import Searcher
from whoosh.util.numeric import byte_to_length
from whoosh.writing import CLEAR

from portal.core.contract import EVENTS_RESUMED, Article, Event, HelpdeskCore
from portal.i18n import normalize_language
from portal.kb.analysis import (
    ARABIC_MARKS,
    CJK_CHARS,
    analysis_language,
    analyzer_for,
    arabic_locator,
)

logger = logging.getLogger(__name__)

# Analysis language -> suffix of its fields (whoosh field names stay plain identifiers).
FIELD_SUFFIX = {"en": "en", "nb": "nb", "zh-Hans": "zh", "ja": "ja", "ar": "ar"}
# 2: Arabic fields. A different version rebuilds the index from the core at start.
SCHEMA_VERSION = 2
META_FILE = "search-meta.json"
TITLE_BOOST = 3.0
SNIPPET_SOURCE_CHARS = 4000
SNIPPET_WIDTH = 160
MAX_QUERY_CHARS = 256
QUERY_GROUP = OrGroup
WEIGHTING = scoring.BM25F()


def build_schema() -> Schema:
    """The index schema: stored hit data plus analysed title/body fields per language."""
    fields = {
        "id": ID(stored=True, unique=True),
        "language": STORED(),
        "lang_key": ID(),
        "slug": STORED(),
        "title": STORED(),
        "text": STORED(),
    }
    for language, suffix in FIELD_SUFFIX.items():
        analyzer = analyzer_for(language)
        fields[f"title_{suffix}"] = TEXT(analyzer=analyzer, phrase=True)
        # No positions in bodies: they triple the index and slow every query; quoted phrases
        # still match titles exactly and bodies as all-of-the-words (see _prepare).
        fields[f"body_{suffix}"] = TEXT(analyzer=analyzer, phrase=False)
    return Schema(**fields)


SCHEMA = build_schema()

# --------------------------------------------------------------------------- markdown to text
_FENCE = re.compile(r"^[ \t]*(?:```|~~~).*$", re.M)
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->", re.S)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])")
_REF_DEF = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S.*$", re.M)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]*|[ \t]+#+[ \t]*$", re.M)
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+", re.M)
_RULE = re.compile(r"^[ \t]*(?:[-*_=][ \t]*){3,}$|^[ \t|:-]*-{3,}[ \t|:-]*$", re.M)
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+", re.M)
_STAR_EMPHASIS = re.compile(r"(\*{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)(_{1,3})(?=\S)(.+?)(?<=\S)\1(?!\w)")


def markdown_to_text(markdown: str) -> str:
    """Roughly strip Markdown (and inline HTML) down to one line of plain text."""
    text = _FENCE.sub(" ", markdown)
    text = _SCRIPT.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_DEF.sub(" ", text)
    text = _HEADING.sub(" ", text)
    text = _QUOTE.sub(" ", text)
    text = _RULE.sub(" ", text)
    text = _BULLET.sub(" ", text)
    text = _STAR_EMPHASIS.sub(r"\2", text)
    text = _UNDERSCORE_EMPHASIS.sub(r"\2", text)
    text = text.replace("`", "").replace("|", " ")
    return " ".join(html.unescape(text).split())


# --------------------------------------------------------------------------------- snippets
# Arabic marks belong to their word: `كَلِمَة` is one word, not four letters.
_WORDS = re.compile(rf"[\w{ARABIC_MARKS}]+")
_WORD_CHAR = re.compile(rf"[^\W{CJK_CHARS}]|[{ARABIC_MARKS}]")
_CJK_START = re.compile(rf"[{CJK_CHARS}]")


@lru_cache(maxsize=1024)
def _locators(terms: frozenset[str]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """Regexes for the (analysed) terms in raw text: CJK bigrams, and candidate words."""
    by_length = sorted(terms, key=len, reverse=True)
    bigrams = [re.escape(term) for term in by_length if _CJK_START.match(term)]
    # Stems are (nearly) prefixes of their words: `happi` <- `happy`, `reset` <- `resets`.
    prefixes = [
        arabic_locator(term) or re.escape(term[:-1] if len(term) > 3 else term)
        for term in by_length
        if not _CJK_START.match(term)
    ]
    return (
        # A lookahead, so that overlapping bigrams (パス, スワ, ...) are all found.
        re.compile(f"(?=({'|'.join(bigrams)}))") if bigrams else None,
        re.compile(f"(?:{'|'.join(prefixes)})[\\w{ARABIC_MARKS}]*", re.I) if prefixes else None,
    )


def _term_spans(
    text: str,
    terms: frozenset[str],
    analyzer: Analyzer,
    start: int = 0,
    end: int | None = None,
    first: bool = False,
) -> list[tuple[int, int]]:
    """Sorted (start, end) spans of `text[start:end]` whose analysed form is one of `terms`."""
    end = len(text) if end is None else end
    bigrams, words = _locators(terms)
    spans: list[tuple[int, int]] = []
    if bigrams is not None:
        for match in bigrams.finditer(text, start, end):
            at = match.start()
            spans.append((at, min(end, at + len(match.group(1)))))
            if first:
                break
    if words is not None:
        for candidates, match in enumerate(words.finditer(text, start, end)):
            at = match.start()
            if (first and spans and at > spans[0][0]) or candidates >= 200:
                break
            if at and _WORD_CHAR.match(text, at - 1):
                continue  # the middle of a longer word
            found = match.group()
            if found.lower() in terms:
                spans.append((at, match.end()))
            else:
                spans.extend(
                    (at + token.startchar, at + token.endchar)
                    for token in analyzer(found, chars=True)
                    if token.text in terms
                )
            if first and spans:
                break
    spans.sort()
    return spans


def build_snippet(
    text: str, terms: frozenset[str], analyzer: Analyzer, width: int = SNIPPET_WIDTH
) -> str:
    """HTML: an escaped window of `text` around the first term match, terms in `<mark>`."""
    text = text[:SNIPPET_SOURCE_CHARS]
    found = _term_spans(text, terms, analyzer, first=True) if terms else []
    position = found[0][0] if found else 0
    start = 0
    if position > width // 3:
        start = position - width // 3
        space = text.find(" ", start, position)
        if space != -1:
            start = space + 1
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start + width * 2 // 3, end)
        if space != -1:
            end = space
    merged: list[list[int]] = []
    for span_start, span_end in _term_spans(text, terms, analyzer, start, end) if terms else []:
        if merged and span_start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span_end)
        else:
            merged.append([span_start, span_end])
    out = ["… "] if start > 0 else []
    previous = start
    for span_start, span_end in merged:
        out.append(html.escape(text[previous:span_start]))
        out.append(f"<mark>{html.escape(text[span_start:span_end])}</mark>")
        previous = span_end
    out.append(html.escape(text[previous:end]))
    if end < len(text):
        out.append(" …")
    return "".join(out)


# ------------------------------------------------------------------------------------ index
@dataclass(frozen=True)
class SearchHit:
    article_id: int
    language: str
    slug: str
    title: str
    snippet_html: str
    score: float


def _lang_key(language: str) -> str:
    return normalize_language(language) or language.strip().lower()


def _suffix(language: str) -> str:
    return FIELD_SUFFIX[analysis_language(language)]


class _Unsupported(Exception):
    """The query needs whoosh's own matchers (phrases, NOT, ...)."""


class _FastScorer:
    """BM25F top-k over whole posting lists, for queries made only of terms, ORs and ANDs.

    whoosh walks a tree of matcher objects per matching document (several microseconds each) and
    its block-max skipping rarely helps OR queries over common words, so a query such as
    `reset password` over 50,000 articles took ~200 ms. Reading each term's postings a block at
    a time into arrays, scoring them with the same BM25F formula and summing them in a dict is
    about ten times faster; the per-term scores are cached until the index next changes.
    """

    def __init__(self, searcher: Searcher, cache_postings: int = 1_000_000) -> None:
        self.searcher = searcher
        self.cache_postings = cache_postings
        self._cache: OrderedDict[tuple[str, str], tuple[array, array]] = OrderedDict()
        self._cached = 0
        self._lengths: dict[tuple[int, str], bytes] = {}
        self._leaves = [(leaf.reader(), offset) for leaf, offset in searcher.leaf_searchers()]
        model = searcher.weighting
        if type(model) is not scoring.BM25F:
            raise _Unsupported(f"no fast path for {type(model).__name__}")
        self._model = model

    def top(self, query: Query, limit: int, allow: set[int] | None) -> list[tuple[int, float]]:
        """The best `limit` (docnum, score) pairs, or _Unsupported."""
        scores = self._evaluate(query)
        items = scores.items()
        if allow is not None:
            items = [(docnum, score) for docnum, score in items if docnum in allow]
        return heapq.nlargest(limit, items, key=itemgetter(1))

    def _evaluate(self, query: Query) -> dict[int, float]:
        """{docnum: score} for every document the query matches, scored as whoosh would."""
        kind = type(query)
        if kind is Term:
            ids, scores = self._term_scores(query.fieldname, query.text)
            total = dict(zip(ids, scores, strict=True))
        elif kind is Or and not query.scale and not query.minmatch:
            parts = sorted(map(self._evaluate, query.subqueries), key=len, reverse=True)
            total = parts[0] if parts else {}
            for part in parts[1:]:
                get = total.get
                for docnum, score in part.items():
                    total[docnum] = get(docnum, 0.0) + score
        elif kind is And:
            positive = [q for q in query.subqueries if type(q) is not Not]
            if not positive:
                raise _Unsupported("a purely negative AND")
            parts = sorted(map(self._evaluate, positive), key=len)
            total = parts[0]
            for part in parts[1:]:
                total = {d: s + part[d] for d, s in total.items() if d in part}
            for negative in query.subqueries:
                if type(negative) is Not:
                    total = self._exclude(total, negative.query)
        elif kind is AndNot:
            total = self._exclude(self._evaluate(query.a), query.b)
        elif kind is AndMaybe:
            total = self._evaluate(query.a)
            optional = self._evaluate(query.b)
            total = {d: s + optional.get(d, 0.0) for d, s in total.items()}
        else:
            raise _Unsupported(kind.__name__)
        if query.boost != 1.0:
            boost = query.boost
            total = {docnum: score * boost for docnum, score in total.items()}
        return total

    def _exclude(self, scores: dict[int, float], query: Query) -> dict[int, float]:
        excluded = self._evaluate(query)
        return {d: s for d, s in scores.items() if d not in excluded}

    def _term_scores(self, fieldname: str, text: str) -> tuple[array, array]:
        key = (fieldname, text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        searcher = self.searcher
        ids = array("i")
        scores = array("d")
        leaves = [
            (index, leaf, offset)
            for index, (leaf, offset) in enumerate(self._leaves)
            if (fieldname, text) in leaf
        ]
        if not leaves:
            self._cache[key] = (ids, scores)
            return ids, scores
        model = self._model
        k1 = model.K1
        b = model._field_B.get(fieldname, model.B)
        idf = searcher.idf(fieldname, text)
        average = searcher.avg_field_length(fieldname) or 1
        # BM25's length normalisation for each of whoosh's 256 quantised field lengths.
        norm = [k1 * ((1 - b) + b * length / average) for length in _BYTE_TO_LENGTH]
        factor = idf * (k1 + 1)
        for index, leaf, offset in leaves:
            lengths = self._field_lengths(index, leaf, fieldname)
            for block_ids, weights in _posting_blocks(leaf, fieldname, text):
                pairs = zip(block_ids, weights, strict=True)
                scores.extend([factor * w / (w + norm[lengths[d]]) for d, w in pairs])
                ids.extend([d + offset for d in block_ids] if offset else block_ids)
        self._cache[key] = (ids, scores)
        self._cached += len(ids)
        while self._cached > self.cache_postings and len(self._cache) > 1:
            _, (old_ids, _) = self._cache.popitem(last=False)
            self._cached -= len(old_ids)
        return ids, scores

    def _field_lengths(self, index: int, leaf: IndexReader, fieldname: str) -> bytes:
        """One whoosh length byte per document of the segment."""
        key = (index, fieldname)
        lengths = self._lengths.get(key)
        if lengths is None:
            count = leaf.doc_count_all()
            column = leaf._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
            raw = b"" if column is None else column._dbfile.get(column._basepos, column._count)
            lengths = self._lengths[key] = bytes(raw[:count]) + bytes(max(0, count - len(raw)))
        return lengths


_BYTE_TO_LENGTH = [byte_to_length(byte) for byte in range(256)]


def _posting_blocks(
    leaf: IndexReader, fieldname: str, text: str
) -> Iterator[tuple[Sequence[int], Sequence[float]]]:
    """A term's (docnums, weights) in the segment, a block at a time, deleted docs left out."""
    matcher = leaf.postings(fieldname, text)
    deleted: frozenset[int] = frozenset()
    if isinstance(matcher, FilterMatcher):
        deleted = leaf.deleted_docs_set
        matcher = matcher.child
    if isinstance(matcher, W3LeafMatcher):
        while matcher.is_active():
            matcher._read_ids()
            matcher._read_weights()
            ids, weights = matcher._ids, matcher._weights
            if deleted:
                kept = [i for i, docnum in enumerate(ids) if docnum not in deleted]
                ids, weights = [ids[i] for i in kept], [weights[i] for i in kept]
            yield ids, weights
            matcher._next_block()
        return
    ids, weights = [], []
    while matcher.is_active():
        if matcher.id() not in deleted:
            ids.append(matcher.id())
            weights.append(matcher.weight())
        matcher.next()
    yield ids, weights


class TenantIndex:
    """One tenant's whoosh index in a folder, with the change-feed cursor it has reached."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        # Searches hold _lock only briefly; writers (in worker threads) serialize on _write_lock.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        meta = self._read_meta()
        ix: FileIndex | None = None
        self._cursor = 0
        if meta.get("schema") == SCHEMA_VERSION and whoosh_index.exists_in(str(self.path)):
            try:
                ix = whoosh_index.open_dir(str(self.path), schema=SCHEMA)
                self._cursor = int(meta.get("cursor", 0))
            except Exception:
                # The index only mirrors the core: start it again rather than refuse to run.
                logger.warning("search index at %s is unreadable, recreating it", self.path)
        if ix is None:
            ix = whoosh_index.create_in(str(self.path), SCHEMA)
            self._write_meta()
        self._ix: FileIndex = ix
        self._searcher: Searcher | None = self._ix.searcher(weighting=WEIGHTING)
        self._parsers: dict[tuple[str | None, str], QueryParser] = {}
        self._filters: dict[str, set[int] | None] = {}
        self._foreign_keys: set[str] | None = None
        self._fast: _FastScorer | None = None
        self.use_fast_scorer = True
        # Parsed queries depend only on the schema, so they outlive index changes.
        self._parsed: OrderedDict[tuple[str, str | None, bool], Query | None] = OrderedDict()

    # ----------------------------------------------------------------------------- state
    @property
    def cursor(self) -> int:
        """The largest article revision applied so far."""
        return self._cursor

    def _read_meta(self) -> dict[str, int]:
        try:
            return json.loads((self.path / META_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _write_meta(self) -> None:
        tmp = self.path / f"{META_FILE}.tmp"
        tmp.write_text(json.dumps({"schema": SCHEMA_VERSION, "cursor": self._cursor}))
        os.replace(tmp, self.path / META_FILE)

    def _refresh(self) -> None:
        with self._lock:
            if self._searcher is not None:
                # Not Searcher.refresh(): it fails when the old reader saw an empty index.
                old, self._searcher = self._searcher, self._ix.searcher(weighting=WEIGHTING)
                old.close()
            self._filters.clear()
            self._foreign_keys = None
            self._fast = None

    # ----------------------------------------------------------------------------- writes
    @staticmethod
    def _document(article: Article) -> dict[str, str]:
        suffix = _suffix(article.language)
        text = markdown_to_text(article.body_md)
        return {
            "id": str(article.id),
            "language": article.language,
            "lang_key": _lang_key(article.language),
            "slug": article.slug,
            "title": article.title,
            "text": text[:SNIPPET_SOURCE_CHARS],
            f"title_{suffix}": article.title,
            f"body_{suffix}": text,
        }

    def apply(self, articles: list[Article]) -> None:
        """Upsert published articles, delete unpublished ones, in one commit; advance the cursor."""
        if not articles:
            return
        latest: dict[int, Article] = {}
        for article in articles:
            seen = latest.get(article.id)
            if seen is None or article.revision >= seen.revision:
                latest[article.id] = article
        with self._write_lock:
            writer = self._ix.writer(limitmb=128, timeout=30.0)
            try:
                for article in latest.values():
                    if article.published:
                        writer.update_document(**self._document(article))
                    else:
                        writer.delete_by_term("id", str(article.id))
            except BaseException:
                writer.cancel()
                raise
            writer.commit()
            self._cursor = max(self._cursor, max(a.revision for a in articles))
            self._write_meta()
        self._refresh()

    def clear(self) -> None:
        """Remove every document and reset the cursor to 0."""
        with self._write_lock:
            writer = self._ix.writer(timeout=30.0)
            writer.commit(mergetype=CLEAR)
            self._cursor = 0
            self._write_meta()
        self._refresh()

    def close(self) -> None:
        """Close the searcher and the index."""
        with self._lock:
            if self._searcher is not None:
                self._searcher.close()
                self._searcher = None
            self._ix.close()

    # ---------------------------------------------------------------------------- queries
    def _parser(self, suffix: str | None, mode: str) -> QueryParser:
        parser = self._parsers.get((suffix, mode))
        if parser is None:
            suffixes = [suffix] if suffix else list(FIELD_SUFFIX.values())
            fields = [f"{kind}_{s}" for s in suffixes for kind in ("title", "body")]
            boosts = {f"title_{s}": TITLE_BOOST for s in suffixes}
            plugins: list = [MultifieldPlugin(fields, fieldboosts=boosts)]
            if mode != "plain":
                plugins[:0] = [PhrasePlugin(), GroupPlugin(), OperatorsPlugin(), PlusMinusPlugin()]
            multitoken = "or" if mode == "loose" else "and"
            parser = _Parser(SCHEMA, plugins, QUERY_GROUP, multitoken)
            self._parsers[(suffix, mode)] = parser
        return parser

    def _parse(self, text: str, suffix: str | None, loose: bool = False) -> Query | None:
        """The query for `text`; syntax that makes no sense falls back to its plain words."""
        key = (text, suffix, loose)
        if key in self._parsed:
            self._parsed.move_to_end(key)
            return self._parsed[key]
        query = self._parse_uncached(text, suffix, loose)
        self._parsed[key] = query
        if len(self._parsed) > 512:
            self._parsed.popitem(last=False)
        return query

    def _parse_uncached(self, text: str, suffix: str | None, loose: bool) -> Query | None:
        query: Query | None
        try:
            query = self._parser(suffix, "loose" if loose else "strict").parse(text)
        except Exception:
            query = None
        if query is None or query is NullQuery or not _has_positive_terms(query):
            query = self._parse_plain(text, suffix)
        return None if query is None or query is NullQuery else _prepare(query)

    def _parse_plain(self, text: str, suffix: str | None) -> Query | None:
        plain = " ".join(_WORDS.findall(text))
        return self._parser(suffix, "plain").parse(plain) if plain else None

    def _language_filter(self, searcher: Searcher, lang_key: str) -> set[int] | None:
        """Allowed doc numbers for a language, or None when its fields hold only that language."""
        if lang_key in FIELD_SUFFIX and lang_key != "en":
            return None
        if lang_key == "en":
            if self._foreign_keys is None:
                self._foreign_keys = {
                    key.decode() if isinstance(key, bytes) else key
                    for key in searcher.lexicon("lang_key")
                } - set(FIELD_SUFFIX)
            if not self._foreign_keys:
                return None
        if lang_key not in self._filters:
            self._filters[lang_key] = set(searcher.docs_for_query(Term("lang_key", lang_key)))
        return self._filters[lang_key]

    def search(self, query: str, language: str | None = None, limit: int = 10) -> list[SearchHit]:
        """The best `limit` published articles for `query`, optionally in one language only."""
        text = query.strip()[:MAX_QUERY_CHARS]
        if not text or limit <= 0:
            return []
        suffix = _suffix(language) if language else None
        with self._lock:
            searcher = self._searcher
            if searcher is None:
                raise RuntimeError("the search index is closed")
            parsed = self._parse(text, suffix)
            if parsed is None:
                return []
            allow = self._language_filter(searcher, _lang_key(language)) if language else None
            if allow is not None and not allow:
                return []
            top = self._top(searcher, parsed, text, suffix, limit, allow)
            if not top:
                # A CJK word is all of its bigrams at first; with no hits, any of them will do.
                loose = self._parse(text, suffix, loose=True)
                if loose is not None and loose != parsed:
                    parsed = loose
                    top = self._top(searcher, parsed, text, suffix, limit, allow)
            found = [(score, searcher.stored_fields(docnum)) for docnum, score in top]
        return self._hits(parsed, found)

    def _top(
        self,
        searcher: Searcher,
        parsed: Query,
        text: str,
        suffix: str | None,
        limit: int,
        allow: set[int] | None,
    ) -> list[tuple[int, float]]:
        if self.use_fast_scorer:
            try:
                if self._fast is None:
                    self._fast = _FastScorer(searcher)
                return self._fast.top(parsed, limit, allow)
            except _Unsupported:
                pass
            except AttributeError:
                # The fast path reads whoosh internals; should they change, whoosh still works.
                logger.warning("fast search scorer disabled", exc_info=True)
                self.use_fast_scorer = False
        try:
            results = searcher.search(parsed, limit=limit, filter=allow)
        except Exception:
            # Odd syntax can parse into a query whoosh cannot run; retry as plain words.
            plain = self._parse_plain(text, suffix)
            if plain is None or plain is NullQuery:
                return []
            results = searcher.search(_prepare(plain), limit=limit, filter=allow)
        return [(hit.docnum, hit.score) for hit in results]

    def _hits(self, parsed: Query, found: list[tuple[float, dict[str, str]]]) -> list[SearchHit]:
        terms: dict[str, set[str]] = {}
        for fieldname, term in parsed.iter_all_terms(phrases=True):
            word = term.decode() if isinstance(term, bytes) else term
            terms.setdefault(fieldname.partition("_")[2], set()).add(word)
        frozen = {suffix: frozenset(words) for suffix, words in terms.items()}
        hits = []
        for score, fields in found:
            language = fields["language"]
            suffix = _suffix(language)
            suffix_terms = frozen.get(suffix, frozenset())
            snippet = build_snippet(fields["text"], suffix_terms, analyzer_for(language))
            hits.append(
                SearchHit(
                    article_id=int(fields["id"]),
                    language=language,
                    slug=fields["slug"],
                    title=fields["title"],
                    snippet_html=snippet,
                    score=float(score),
                )
            )
        return hits


class _Parser(QueryParser):
    """A multi-field parser whose words that analyse to several tokens become AND or OR groups."""

    def __init__(self, schema: Schema, plugins: list, group: type, multitoken: str) -> None:
        super().__init__(None, schema, plugins=plugins, group=group)
        self._multitoken = multitoken

    def multitoken_query(
        self, spec: str, texts: list[str], fieldname: str, termclass: type, boost: float
    ) -> Query:
        return super().multitoken_query(self._multitoken, texts, fieldname, termclass, boost)


def _prepare(query: Query) -> Query:
    """Phrases on (position-less) body fields become ANDs; ORs use the skipping union matcher."""
    if any(isinstance(leaf, Phrase) for leaf in query.leaves()):
        query = _without_body_phrases(query)
    for node in _nodes(query):
        if isinstance(node, Or):
            # whoosh preloads and scores every posting of an OR on small segments; the binary
            # union matcher can skip blocks that cannot reach the top `limit` instead.
            node.matcher_type = Or.DEFAULT_MATCHER
    return query


def _without_body_phrases(query: Query) -> Query:
    if isinstance(query, Phrase) and query.fieldname.startswith("body_"):
        return And([Term(query.fieldname, word) for word in query.words], boost=query.boost)
    return query if query.is_leaf() else query.apply(_without_body_phrases)


def _nodes(query: Query) -> Iterator[Query]:
    yield query
    for child in query.children():
        yield from _nodes(child)


def _has_positive_terms(query: Query) -> bool:
    """False for queries like `NOT x` or `-x` that would otherwise rank the whole index."""
    if isinstance(query, Not):
        return False
    children = list(query.children())
    if not children:
        return query.is_leaf() and query is not NullQuery
    return any(_has_positive_terms(child) for child in children)


# ---------------------------------------------------------------------------------- service
class SearchService:
    """Every tenant's index, kept current from `articles_changed_since` and core events."""

    def __init__(
        self,
        index_root: Path,
        core: HelpdeskCore,
        *,
        batch_size: int = 1000,
        commit_size: int = 5000,
    ) -> None:
        self.index_root = Path(index_root)
        self.core = core
        self.batch_size = batch_size
        self.commit_size = commit_size
        self._indexes: dict[int, TenantIndex] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def index_for(self, tenant_id: int) -> TenantIndex:
        """The tenant's index, opened (or created) on first use."""
        index = self._indexes.get(tenant_id)
        if index is None:
            index = self._indexes[tenant_id] = TenantIndex(self.index_root / str(tenant_id))
        return index

    def _lock_for(self, tenant_id: int) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    async def _catch_up(self, tenant_id: int) -> int:
        index = self.index_for(tenant_id)
        cursor = index.cursor
        applied = 0
        pending: list[Article] = []
        while True:
            articles, next_cursor = await self.core.articles_changed_since(
                tenant_id, cursor, self.batch_size
            )
            done = not articles or next_cursor <= cursor
            pending.extend(articles)
            cursor = max(cursor, next_cursor)
            # Fewer, larger commits: each commit is a segment, and merging segments costs as
            # much as indexing, so a full rebuild in 1,000-article commits took 50% longer.
            if pending and (done or len(pending) >= self.commit_size):
                await asyncio.to_thread(index.apply, pending)
                applied += len(pending)
                pending = []
            if done:
                return applied

    async def catch_up(self, tenant_id: int) -> int:
        """Apply every article change since the index's cursor; the number of changes applied."""
        async with self._lock_for(tenant_id):
            return await self._catch_up(tenant_id)

    async def rebuild(self, tenant_id: int) -> int:
        """Empty the tenant's index and index every article again."""
        async with self._lock_for(tenant_id):
            await asyncio.to_thread(self.index_for(tenant_id).clear)
            return await self._catch_up(tenant_id)

    def search(
        self, tenant_id: int, query: str, language: str | None = None, limit: int = 10
    ) -> list[SearchHit]:
        """Search one tenant's published articles."""
        return self.index_for(tenant_id).search(query, language=language, limit=limit)

    async def follow_events(self, events: AsyncIterator[Event] | None = None) -> None:
        """Catch up a tenant's index whenever an article changes (run as a task).

        `events` defaults to the core's own; the app passes the events of every process."""
        events = events if events is not None else self.core.events()
        try:
            async for event in events:
                if event.type == "article.changed":
                    tenants = [event.tenant_id]
                elif event.type == EVENTS_RESUMED:  # changes may have gone unheard
                    tenants = list(self._indexes)
                else:
                    continue
                for tenant_id in tenants:
                    try:
                        await self.catch_up(tenant_id)
                    except Exception:
                        logger.exception("search catch-up failed for tenant %s", tenant_id)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def close(self) -> None:
        """Close every open index."""
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
