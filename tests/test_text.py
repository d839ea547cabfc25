"""Text from strangers: names on one line, without the characters that hide or reorder."""

from __future__ import annotations

from portal.text import clean_name


def test_clean_name_drops_controls_and_bidi_characters():
    assert clean_name("  Kari \u202eNord\u200bmann\r\n\t ") == "Kari Nordmann"
    assert clean_name("\u2067Admin\u2069") == "Admin"
    assert clean_name("") == ""
