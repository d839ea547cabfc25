"""Locale negotiation and complete catalogs for every shipped language."""

import functools
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from portal.i18n import LANGUAGES, LOCALES_DIR, negotiate, normalize_language, translations

ROOT = Path(__file__).parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@functools.cache  # one extraction for every catalog's test
def source_messages() -> frozenset[str]:
    """Every msgid in the Python code and templates, extracted the way `make i18n` does."""
    found: set[str] = set()
    methods = [("**.py", "python")]
    for folder, method_map in [
        (ROOT / "portal", methods),
        (ROOT / "templates", [("**.html", "jinja2")]),
    ]:
        options = {"**.html": {"extensions": "jinja2.ext.i18n"}}
        for _file, _line, message, _comments, _context in extract_from_dir(
            folder, method_map, options_map=options
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return frozenset(found)


@pytest.mark.parametrize("catalog_name", [name for name in LANGUAGES.values() if name != "en"])
def test_every_ui_string_is_translated(catalog_name):
    with (LOCALES_DIR / catalog_name / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=catalog_name)
    missing, broken = [], []
    for msgid in source_messages():
        message = catalog.get(msgid)
        if (
            message is None
            or not message.string
            or not any(message.string if isinstance(message.string, tuple) else [message.string])
        ):
            missing.append(msgid)
            continue
        wanted = set(PLACEHOLDER.findall(msgid))
        for text in message.string if isinstance(message.string, tuple) else [message.string]:
            if set(PLACEHOLDER.findall(text)) - wanted:
                broken.append(msgid)
    assert not missing, f"{catalog_name} lacks translations (run `make i18n`): {sorted(missing)}"
    assert not broken, f"{catalog_name} translations use unknown placeholders: {broken}"


def test_catalogs_load_and_translate():
    assert translations("nb").gettext("Search") == "Søk"
    assert translations("ja").gettext("Search") == "検索"
    assert translations("zh-Hans").gettext("Search") == "搜索"
    assert translations("en").gettext("Search") == "Search"


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, "en"),
        ("nb-NO,nb;q=0.9,en;q=0.5", "nb"),
        ("no", "nb"),
        ("zh-CN,zh;q=0.9", "zh-Hans"),
        ("fr-FR, ja;q=0.3, en;q=0.2", "ja"),
        ("en;q=0.1, ja;q=0.8", "ja"),
        ("de, fr", "en"),
        ("*", "en"),
        ("ja;q=abc, nb", "nb"),
    ],
)
def test_negotiate(header, expected):
    assert negotiate(header) == expected


def test_normalize_language():
    assert normalize_language("zh_Hans") == "zh-Hans"
    assert normalize_language("NB") == "nb"
    assert normalize_language("ja-JP") == "ja"
    assert normalize_language("xx") is None
