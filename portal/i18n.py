"""Locales: negotiation from the URL or Accept-Language, and Babel catalogs compiled at load."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).parent / "locales"

# URL/content language code -> Babel catalog name. The URL form is BCP 47 (what hreflang wants).
LANGUAGES: dict[str, str] = {
    "en": "en",
    "nb": "nb",
    "zh-Hans": "zh_Hans",
    "ja": "ja",
    "ar": "ar",
}
DEFAULT_LANGUAGE = "en"

_ALIASES = {
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "nb": "nb",
    "no": "nb",
    "nn": "nb",
    "nb-no": "nb",
    "no-no": "nb",
    "nn-no": "nb",
    "zh": "zh-Hans",
    "zh-hans": "zh-Hans",
    "zh-cn": "zh-Hans",
    "zh-sg": "zh-Hans",
    "zh-hans-cn": "zh-Hans",
    "zh_hans": "zh-Hans",
    "zh_cn": "zh-Hans",
    "ja": "ja",
    "ja-jp": "ja",
    "jp": "ja",
    # Browsers send Arabic with a region (ar-SA, ar-EG...); the catalog is Modern Standard Arabic,
    # which every region reads, so any `ar-*` falls back to it through the base-language rule.
    "ar": "ar",
    "ar-sa": "ar",
    "ar-eg": "ar",
    "ar-ae": "ar",
    "ar-ma": "ar",
    "ar-dz": "ar",
    "ar-jo": "ar",
    "ar-kw": "ar",
    "ar-qa": "ar",
    "ar-001": "ar",
}


def normalize_language(code: str) -> str | None:
    """Map `no`, `zh-CN`, `zh_Hans`, `ja-JP`... to one of LANGUAGES, or None if unsupported."""
    code = code.strip().replace("_", "-").lower()
    if code in _ALIASES:
        return _ALIASES[code]
    base = code.split("-", 1)[0]
    return _ALIASES.get(base) if base != "zh" else "zh-Hans"


def negotiate(accept_language: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """The best supported language for an Accept-Language header, honouring q-values."""
    if not accept_language:
        return default
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag.strip() == "*" or quality <= 0:
            continue
        language = normalize_language(tag)
        if language:
            choices.append((-quality, position, language))
    return min(choices)[2] if choices else default


@cache
def translations(language: str) -> NullTranslations:
    """Gettext translations for a language, compiled from its .po file on first use."""
    catalog_name = LANGUAGES.get(language, "en")
    po_path = LOCALES_DIR / catalog_name / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=catalog_name)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


@cache
def text_direction(language: str) -> str:
    """`rtl` or `ltr` for a language code, from CLDR; what pages put in `<html dir>`."""
    try:
        locale = Locale.parse(LANGUAGES.get(language, language).replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return "ltr"
    return locale.text_direction


@cache
def language_name(language: str) -> str:
    """The language's own name for itself, e.g. `norsk bokmål`, `日本語`."""
    return (
        Locale.parse(LANGUAGES.get(language, language).replace("-", "_")).display_name or language
    )
