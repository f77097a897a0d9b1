"""TF-IDF rows of fitted ``TfidfVectorizer``s for the few texts of a request.

``TfidfVectorizer.transform`` spends most of its time on one short text in input validation, dataframe
checks and sparse bookkeeping: ~2.7 ms for a 2 kB prompt, where its analyzer and arithmetic take ~0.8 ms.
Routing featurises every query twice (intent, ability), so the request path computes the same rows here
from the vectorizers' public fitted state (analyzer, vocabulary, idf); fitting stays with scikit-learn.

Character n-grams within word boundaries (``char_wb``) never cross a word, so a text's n-gram counts are
the sum of its words' and each word's are computed once and kept: a long prompt's ~7,000 n-grams were
most of the intent stage's time, and the words of a language repeat across queries.

Word n-grams are counted once per text for every vectorizer that analyses text alike: the intent classifier
and the ability model both read a query's word 1–2-grams (~0.2 ms of a 300-word prompt each).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain, repeat

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import TfidfVectorizer

WORD_CACHE = 50_000  # words whose char_wb n-gram columns are kept; cleared whole when full
DENSE_SUM = 8  # a text with at least 1/8 as many n-grams as the vocabulary has columns: summed over all of them
TEXT_CACHE = 128  # texts whose word n-gram counts are kept (a request's classify and route read the same)
DEFAULT_TOKENS = TfidfVectorizer().token_pattern


class _Block:
    def __init__(self, vectorizer: TfidfVectorizer, offset: int) -> None:
        if vectorizer.norm not in ("l2", None) or not vectorizer.use_idf:
            raise ValueError("TfidfRows supports use_idf=True with norm 'l2' or None")
        v = vectorizer
        self.terms: Callable[[str], Counter[str]]
        if v.analyzer == "word" and v.get_stop_words() is None and v.input == "content":
            self.terms = _word_terms(v)
        else:
            analyze = v.build_analyzer()
            self.terms = lambda text: Counter(analyze(text))
        self.vocabulary = vectorizer.vocabulary_
        self.idf = vectorizer.idf_
        self.sublinear = vectorizer.sublinear_tf
        self.normalise = vectorizer.norm == "l2"
        self.offset = offset
        self.per_word = vectorizer.analyzer == "char_wb"
        self.lower = vectorizer.build_preprocessor()
        self.words: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Vocabulary columns of the text's terms and how often each occurs."""
        terms = self.terms(text)
        cols = np.fromiter(map(self.vocabulary.get, terms, repeat(-1)), dtype=np.int64, count=len(terms))
        counts = np.fromiter(terms.values(), dtype=np.float64, count=len(terms))
        known = cols >= 0
        return cols[known], counts[known]

    def word_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``counts`` for char_wb, summed over the text's distinct words from the per-word cache."""
        words = Counter(self.lower(text).split())
        if not words:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        parts = []
        for word in words:
            hit = self.words.get(word)
            if hit is None:
                if len(self.words) >= WORD_CACHE:
                    self.words.clear()
                hit = self.words[word] = self.counts(word)
            parts.append(hit)
        cols = np.concatenate([c for c, _ in parts])
        repeats = np.repeat(np.fromiter(words.values(), dtype=np.float64, count=len(words)), [c.size for c, _ in parts])
        counts = np.concatenate([n for _, n in parts]) * repeats
        if self.idf.size <= DENSE_SUM * cols.size:  # a small vocabulary: summed in place, no sort
            summed = np.bincount(cols, counts, minlength=self.idf.size)
            cols = np.flatnonzero(summed)
            return cols, summed[cols]
        cols, where = np.unique(cols, return_inverse=True)
        return cols, np.bincount(where, counts, minlength=cols.size)

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        cols, tf = self.word_counts(text) if self.per_word else self.counts(text)
        weights = (1 + np.log(tf) if self.sublinear else tf) * self.idf[cols]
        norm = float(np.sqrt(weights @ weights)) if self.normalise else 0.0
        return cols + self.offset, (weights / norm if norm > 0 else weights)


def _word_terms(v: TfidfVectorizer) -> Callable[[str], Counter[str]]:
    """The word analyzer's term counts, its n-grams joined by ``zip`` and ``map`` rather than scikit-learn's
    loop over every position (a 2 kB prompt's word 1–2-grams in half the time), kept for the last
    ``TEXT_CACHE`` texts and shared by every vectorizer that analyses alike (so the Counter returned is
    shared: read it, never change it)."""
    tokenize = v.build_tokenizer()
    if v.tokenizer is None and v.token_pattern == DEFAULT_TOKENS:
        tokenize = re.compile(r"\w\w+").findall  # the same tokens: a greedy run of 2+ is always a whole word
    terms = lru_cache(TEXT_CACHE)(_counter(v.build_preprocessor(), tokenize, v.ngram_range))
    if v.preprocessor is not None or v.tokenizer is not None:  # custom callables: no key says two match
        return terms
    return _SHARED.setdefault((v.lowercase, v.strip_accents, v.token_pattern, tuple(v.ngram_range)), terms)


_SHARED: dict[tuple[object, ...], Callable[[str], Counter[str]]] = {}


def _counter(
    preprocess: Callable[[str], str], tokenize: Callable[[str], list[str]], ngram_range: tuple[int, int]
) -> Callable[[str], Counter[str]]:
    low, high = ngram_range

    def terms(text: str) -> Counter[str]:
        tokens = tokenize(preprocess(text))
        shifted = [tokens[i:] for i in range(high)]
        grams = [map(" ".join, zip(*shifted[:n], strict=False)) for n in range(max(low, 2), high + 1)]
        return Counter(chain(tokens if low == 1 else (), *grams))

    return terms


class TfidfRows:
    """Equal to ``hstack([v.transform(texts) for v in vectorizers])`` (l2 norm or none, sublinear tf or
    not), without the checks and without the stacking."""

    def __init__(self, *vectorizers: TfidfVectorizer) -> None:
        self._blocks, width = [], 0
        for v in vectorizers:
            self._blocks.append(_Block(v, width))
            width += v.idf_.size
        self.width = width

    def __call__(self, texts: Sequence[str]) -> csr_matrix:
        indptr, indices, data = [0], [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
        for text in texts:
            cols, weights = self.row(text)
            indices.append(cols)
            data.append(weights)
            indptr.append(indptr[-1] + cols.size)
        return csr_matrix(
            (np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=(len(texts), self.width)
        )

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One text's columns and weights, without building a sparse matrix (a routing decision needs no more)."""
        if len(self._blocks) == 1:
            return self._blocks[0].row(text)
        parts = [block.row(text) for block in self._blocks]
        return np.concatenate([c for c, _ in parts]), np.concatenate([w for _, w in parts])
