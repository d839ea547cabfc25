"""Whoosh analyzers for the knowledge base: words for alphabetic text, bigrams for CJK text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from typing import Any

from whoosh.analysis import Analyzer, Filter, StopFilter, Token, Tokenizer
from whoosh.lang import stemmer_for_language, stopwords_for_language

from portal.i18n import normalize_language

# Han (with the iteration mark), Hiragana, Katakana (full and half width) and Hangul.
CJK_CHARS = (
    "\u1100-\u11ff\u3005\u3040-\u309f\u30a0-\u30ff\u3130-\u318f\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
)
_RUNS = re.compile(rf"([{CJK_CHARS}]+)|([^\W{CJK_CHARS}]+)")

# Content language -> whoosh stemmer language. Latin words in Chinese and Japanese articles are
# mostly English product terms, so they get the English stemmer.
_STEMMER_LANGUAGE = {"en": "en", "nb": "no", "zh-Hans": "en", "ja": "en"}


def analysis_language(language: str) -> str:
    """The supported language whose analyzer handles `language` (English if unsupported)."""
    normalized = normalize_language(language) if language else None
    return normalized if normalized in _STEMMER_LANGUAGE else "en"


class CJKBigramTokenizer(Tokenizer):
    """Splits text into lowercased `\\w+` words and overlapping bigrams of CJK runs."""

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            token.original = token.text = value
            token.boost = 1.0
            if positions:
                token.pos = start_pos
            if chars:
                token.startchar = start_char
                token.endchar = start_char + len(value)
            yield token
            return
        pos = start_pos
        for match in _RUNS.finditer(value):
            start = match.start()
            if match.lastindex == 1:
                run = match.group()
                if len(run) == 1:
                    pieces: Iterator[tuple[int, str]] = iter(((start, run),))
                else:
                    pieces = ((start + i, run[i : i + 2]) for i in range(len(run) - 1))
            else:
                pieces = iter(((start, match.group().lower()),))
            for offset, text in pieces:
                token.text = text
                token.boost = 1.0
                token.stopped = False
                if keeporiginal:
                    token.original = text
                if positions:
                    token.pos = pos
                    pos += 1
                if chars:
                    token.startchar = start_char + offset
                    token.endchar = start_char + offset + len(text)
                yield token


class LanguageStemFilter(Filter):
    """Stems tokens with a whoosh language stemmer, behind a thread-safe cache."""

    is_morph = True

    def __init__(self, lang: str, cachesize: int = 100_000) -> None:
        self.lang = lang
        self.cachesize = cachesize
        self._setup()

    def _setup(self) -> None:
        # functools' cache, unlike whoosh's lfu_cache, is safe when the indexing thread and the
        # searching thread stem at the same time.
        self._stem: Callable[[str], str] = lru_cache(maxsize=self.cachesize)(
            stemmer_for_language(self.lang)
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"lang": self.lang, "cachesize": self.cachesize}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.lang = state["lang"]
        self.cachesize = state.get("cachesize", 100_000)
        self._setup()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LanguageStemFilter) and other.lang == self.lang

    def __hash__(self) -> int:
        return hash((type(self), self.lang))

    def __call__(self, tokens: Iterator[Token]) -> Iterator[Token]:
        stem = self._stem
        for token in tokens:
            # CJK bigrams have nothing to stem and would only flood the stem cache.
            if not token.stopped and token.text[0] < "\u1100":
                token.text = stem(token.text)
            yield token


@cache
def _analyzer(language: str) -> Analyzer:
    stemmer_language = _STEMMER_LANGUAGE[language]
    # Stop words make up a third of running text: dropping them keeps the index small and stops
    # "how do I ..." queries from scoring every document. minsize=1 keeps single CJK characters.
    stops = StopFilter(stopwords_for_language(stemmer_language), minsize=1)
    return CJKBigramTokenizer() | stops | LanguageStemFilter(stemmer_language)


def analyzer_for(language: str) -> Analyzer:
    """The analyzer for text in `language` (a code from LANGUAGES; anything else -> English)."""
    return _analyzer(analysis_language(language))
