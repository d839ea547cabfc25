"""What a visitor typed, as a whoosh query: the parser and the rewrites every query gets."""

from __future__ import annotations

import re
from collections.abc import Iterator

from whoosh.fields import Schema
from whoosh.qparser import QueryParser
from whoosh.query import And, Not, NullQuery, Or, Phrase, Query, Term

from portal.kb.analysis import ARABIC_MARKS

# Arabic marks belong to their word: `كَلِمَة` is one word, not four letters.
WORDS = re.compile(rf"[\w{ARABIC_MARKS}]+")


class MultitokenParser(QueryParser):
    """A multi-field parser whose words that analyse to several tokens become AND or OR groups."""

    def __init__(self, schema: Schema, plugins: list, group: type, multitoken: str) -> None:
        super().__init__(None, schema, plugins=plugins, group=group)
        self._multitoken = multitoken

    def multitoken_query(
        self, spec: str, texts: list[str], fieldname: str, termclass: type, boost: float
    ) -> Query:
        return super().multitoken_query(self._multitoken, texts, fieldname, termclass, boost)


def prepare(query: Query) -> Query:
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


def has_positive_terms(query: Query) -> bool:
    """False for queries like `NOT x` or `-x` that would otherwise rank the whole index."""
    if isinstance(query, Not):
        return False
    children = list(query.children())
    if not children:
        return query.is_leaf() and query is not NullQuery
    return any(has_positive_terms(child) for child in children)
