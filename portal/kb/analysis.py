"""Whoosh analyzers for the knowledge base: words for alphabetic text, bigrams for CJK text.

Arabic words are normalised (no diacritics or tatweel, one form of alef, yeh and teh marbuta) and
lose a leading definite article, so that the spellings people type find the spellings in articles.
"""

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

# Arabic short-vowel and other combining marks (tashkeel), the superscript alef, and tatweel (the
# stretching stroke). The marks are not `\w`, so plain word runs would cut a vowelled word apart.
ARABIC_MARKS = "\u0640\u064b-\u065f\u0670"
_ARABIC_RUNS = re.compile(rf"([{CJK_CHARS}]+)|((?:[^\W{CJK_CHARS}]|[{ARABIC_MARKS}])+)")
_ARABIC_DROP = re.compile(f"[{ARABIC_MARKS}]+")
# Hamza-carrying alefs (and alef wasla) -> bare alef, alef maksura -> yeh, teh marbuta -> heh:
# writers and searchers use these forms interchangeably.
_ARABIC_FOLD = str.maketrans("أإآٱىة", "اااايه")
# The definite article, alone or after the prepositions/conjunction written joined to it.
_ARABIC_ARTICLES = ("وال", "بال", "كال", "فال", "لل", "ال")
_ARABIC_LETTER = re.compile("[\u0620-\u064a\u066e-\u06d3]")

# Content language -> whoosh stemmer language. Latin words in Chinese and Japanese articles are
# mostly English product terms, so they get the English stemmer.
_STEMMER_LANGUAGE = {"en": "en", "nb": "no", "zh-Hans": "en", "ja": "en", "ar": "en"}

# Arabic function words, as normalize_arabic leaves them (whoosh ships no Arabic list).
ARABIC_STOP_WORDS = frozenset(
    """
    في من على الى إلى عن مع هل كيف ما ماذا لماذا متى أين اين هذا هذه ذلك تلك هناك هنا التي الذي
    الذين اللذان اللتان هو هي هم هن أنا انا نحن أنت انت أنتم كان كانت يكون تكون أن إن ان أو او ثم
    لا لم لن قد كل بعض عند حتى إذا اذا لكن بين أي اي و ف ب ل ك يا عبر دون منذ بعد قبل أيضا ايضا
    """.split()
)


def analysis_language(language: str) -> str:
    """The supported language whose analyzer handles `language` (English if unsupported)."""
    normalized = normalize_language(language) if language else None
    return normalized if normalized in _STEMMER_LANGUAGE else "en"


class CJKBigramTokenizer(Tokenizer):
    """Splits text into lowercased `\\w+` words and overlapping bigrams of CJK runs."""

    runs = _RUNS

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
        for match in self.runs.finditer(value):
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


def normalize_arabic(text: str) -> str:
    """Drop tashkeel and tatweel, fold alef/yeh/teh marbuta variants; other text is unchanged."""
    return _ARABIC_DROP.sub("", text).translate(_ARABIC_FOLD)


def strip_arabic_article(word: str) -> str:
    """`المرور` -> `مرور`, `بالبريد` -> `بريد`: a light stem, so `كلمة مرور` finds `كلمة المرور`."""
    for article in _ARABIC_ARTICLES:
        # Keep two letters at least, like Lucene's light stemmer: `الم` is no article plus `م`.
        if word.startswith(article) and len(word) - len(article) >= 2:
            return word[len(article) :]
    return word


def arabic_locator(term: str) -> str | None:
    """A regex for where analysed Arabic `term` may stand in raw text, or None if not Arabic.

    Raw text can carry marks between any two letters, the variants normalize_arabic folds, and an
    article the analyser removed; snippets need the words as written.
    """
    if not _ARABIC_LETTER.search(term):
        return None
    variants = {"ا": "اأإآٱ", "ي": "يى", "ه": "هة"}
    marks = f"[{ARABIC_MARKS}]*"
    letters = marks.join(
        f"[{variants[char]}]" if char in variants else re.escape(char) for char in term
    )
    return f"(?:[وبكف]?{marks}ا{marks}ل{marks}|ل{marks}ل{marks})?{letters}"


class ArabicTokenizer(CJKBigramTokenizer):
    """CJKBigramTokenizer whose words keep their Arabic marks (ArabicNormalizeFilter drops them)."""

    runs = _ARABIC_RUNS


class ArabicNormalizeFilter(Filter):
    """Normalises Arabic tokens (see normalize_arabic); other tokens pass unchanged."""

    def __call__(self, tokens: Iterator[Token]) -> Iterator[Token]:
        for token in tokens:
            token.text = normalize_arabic(token.text)
            if token.text:  # empty: the run was tatweel only
                yield token


class ArabicArticleFilter(Filter):
    """Strips the definite article from Arabic words (see strip_arabic_article)."""

    is_morph = True

    def __call__(self, tokens: Iterator[Token]) -> Iterator[Token]:
        for token in tokens:
            if not token.stopped:
                token.text = strip_arabic_article(token.text)
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
            # CJK bigrams and Arabic words have nothing to stem here (whoosh's stemmers are for
            # Latin words) and would only flood the stem cache.
            first = token.text[0]
            if not token.stopped and (first < "\u0600" or "\u0900" <= first < "\u1100"):
                token.text = stem(token.text)
            yield token


@cache
def _analyzer(language: str) -> Analyzer:
    stemmer_language = _STEMMER_LANGUAGE[language]
    # Stop words make up a third of running text: dropping them keeps the index small and stops
    # "how do I ..." queries from scoring every document. minsize=1 keeps single CJK characters.
    stop_words = frozenset(stopwords_for_language(stemmer_language))
    if language == "ar":
        # Stop words are matched before the article is stripped, so `الذي` stays a stop word.
        arabic_stops = {normalize_arabic(word) for word in ARABIC_STOP_WORDS}
        return (
            ArabicTokenizer()
            | ArabicNormalizeFilter()
            | StopFilter(stop_words | arabic_stops, minsize=1)
            | ArabicArticleFilter()
            | LanguageStemFilter(stemmer_language)
        )
    stops = StopFilter(stop_words, minsize=1)
    return CJKBigramTokenizer() | stops | LanguageStemFilter(stemmer_language)


def analyzer_for(language: str) -> Analyzer:
    """The analyzer for text in `language` (a code from LANGUAGES; anything else -> English)."""
    return _analyzer(analysis_language(language))
