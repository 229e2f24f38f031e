"""The words BM25 indexes and a question is matched by: lowercased, stop words out, stemmed.

One tokenizer serves retrieval, the coverage test, answer verification and the reader, so a
word counts as "said" in the same way everywhere.
"""

from __future__ import annotations

import re
from typing import Any

import bm25s

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN) | {"what", "how", "why", "does", "can"}


def _stemmer() -> Any:
    try:
        import Stemmer

        return Stemmer.Stemmer("english").stemWord
    except ImportError:  # PyStemmer is a declared dependency; degrade rather than fail
        return lambda w: w[:-1] if w.endswith("s") and not w.endswith("ss") else w


_STEM = _stemmer()


def tokenize(text: str) -> list[str]:
    """Lowercased, stop-word-free, stemmed terms: shared by BM25 and answer verification."""
    return [_STEM(t) for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


# Lucene's 33 stop words keep "which", "who", "did", "your": words of the asking, not of the
# asked. As query terms they match "a language which ..." in nearly every glossary entry and
# count against a short question's coverage ("Who makes GPT?" is 2 terms, not 3).
_ASKING = frozenset(
    _STEM(w)
    for w in (
        "which", "who", "whom", "whose", "when", "where", "do", "did", "could", "would",
        "should", "may", "might", "must", "has", "have", "had", "were", "been", "being", "am",
        "i", "me", "my", "you", "your", "we", "our", "us",
        # chat spelling of the same: "wat r lora and qlora for"
        "wat", "wut", "whats", "wats", "hw", "ur", "pls", "plz", "thx",
    )
)  # fmt: skip


def query_terms(question: str) -> list[str]:
    """A question's terms for BM25 and for the coverage test: its words of the asking out."""
    return [t for t in tokenize(question) if t not in _ASKING]
