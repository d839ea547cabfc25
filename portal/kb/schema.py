"""The search index's schema: stored hit data plus analysed title and body fields per language."""

from __future__ import annotations

from whoosh.fields import ID, STORED, TEXT, Schema

from portal.i18n import normalize_language
from portal.kb.analysis import analysis_language, analyzer_for

# Analysis language -> suffix of its fields (whoosh field names stay plain identifiers).
FIELD_SUFFIX = {"en": "en", "nb": "nb", "zh-Hans": "zh", "ja": "ja", "ar": "ar"}
# 2: Arabic fields. A different version rebuilds the index from the core at start.
SCHEMA_VERSION = 2


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
        # still match titles exactly and bodies as all-of-the-words (see queries.prepare).
        fields[f"body_{suffix}"] = TEXT(analyzer=analyzer, phrase=False)
    return Schema(**fields)


SCHEMA = build_schema()


def lang_key(language: str) -> str:
    """The language as stored in the `lang_key` field: canonical when we know it."""
    return normalize_language(language) or language.strip().lower()


def field_suffix(language: str) -> str:
    """The suffix of the fields that hold text in `language` (`title_zh`, `body_zh`)."""
    return FIELD_SUFFIX[analysis_language(language)]
