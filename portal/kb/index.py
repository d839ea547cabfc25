"""One tenant's whoosh index on disk: writes from the change feed, and searches."""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh import scoring
from whoosh.index import FileIndex
from whoosh.qparser import (
    GroupPlugin,
    MultifieldPlugin,
    OperatorsPlugin,
    OrGroup,
    PhrasePlugin,
    PlusMinusPlugin,
    QueryParser,
)
from whoosh.query import NullQuery, Query, Term
from whoosh.searching import Searcher
from whoosh.writing import CLEAR

from portal.core.contract import Article
from portal.kb.analysis import analyzer_for
from portal.kb.fast_scorer import FastScorer, Unsupported
from portal.kb.plaintext import markdown_to_text
from portal.kb.queries import WORDS, MultitokenParser, has_positive_terms, prepare
from portal.kb.schema import FIELD_SUFFIX, SCHEMA, SCHEMA_VERSION, field_suffix, lang_key
from portal.kb.snippets import SNIPPET_SOURCE_CHARS, build_snippet

logger = logging.getLogger(__name__)

META_FILE = "search-meta.json"
TITLE_BOOST = 3.0
MAX_QUERY_CHARS = 256
QUERY_GROUP = OrGroup
WEIGHTING = scoring.BM25F()
# Unique in the process, across indexes opened, closed and opened again: a generation number
# never names two states of a tenant's index.
_GENERATIONS = itertools.count(1)


@dataclass(frozen=True)
class SearchHit:
    article_id: int
    language: str
    slug: str
    title: str
    snippet_html: str
    score: float


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
        # What the searcher sees: a new number whenever it changes, for results kept outside.
        self.generation = next(_GENERATIONS)
        self._parsers: dict[tuple[str | None, str], QueryParser] = {}
        self._filters: dict[str, set[int] | None] = {}
        self._foreign_keys: set[str] | None = None
        self._fast: FastScorer | None = None
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
            self.generation = next(_GENERATIONS)

    # ----------------------------------------------------------------------------- writes
    @staticmethod
    def _document(article: Article) -> dict[str, str]:
        suffix = field_suffix(article.language)
        text = markdown_to_text(article.body_md)
        return {
            "id": str(article.id),
            "language": article.language,
            "lang_key": lang_key(article.language),
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
            parser = MultitokenParser(SCHEMA, plugins, QUERY_GROUP, multitoken)
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
        if query is None or query is NullQuery or not has_positive_terms(query):
            query = self._parse_plain(text, suffix)
        return None if query is None or query is NullQuery else prepare(query)

    def _parse_plain(self, text: str, suffix: str | None) -> Query | None:
        plain = " ".join(WORDS.findall(text))
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
        suffix = field_suffix(language) if language else None
        with self._lock:
            searcher = self._searcher
            if searcher is None:
                raise RuntimeError("the search index is closed")
            parsed = self._parse(text, suffix)
            if parsed is None:
                return []
            allow = self._language_filter(searcher, lang_key(language)) if language else None
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
                    self._fast = FastScorer(searcher)
                return self._fast.top(parsed, limit, allow)
            except Unsupported:
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
            results = searcher.search(prepare(plain), limit=limit, filter=allow)
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
            suffix = field_suffix(language)
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
