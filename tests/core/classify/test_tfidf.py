import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from swarm_route.core.classify import tfidf
from swarm_route.core.classify.tfidf import TfidfRows

CORPUS = [
    "what's the weather in Berlin tomorrow",
    "compute 12 times 4, then add 7",
    "book a table for two at eight",
    "Weather, weather: rain or sun in Rome?",
]
QUERIES = [
    "rain in berlin",
    "unseen words only zzz",
    "",
    "  \t ",
    "table table table for 12 times",
    CORPUS[3],
    "RAIN\nrain  rain\tin Berlin",
    "naïve Café_au_lait x1 a b I 2024-12-03 ß_ rain—Berlin 東京 weather",  # what counts as a word, and a word of one
]


@pytest.mark.parametrize(
    "vectorizers",
    [
        [TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)],
        [TfidfVectorizer(ngram_range=(2, 3)), TfidfVectorizer(ngram_range=(1, 3), lowercase=False)],
        [TfidfVectorizer(stop_words=["the", "in"], ngram_range=(1, 2))],  # scikit-learn's own analyzer
        [TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))],
        [TfidfVectorizer(norm=None), TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)],
    ],
)
@pytest.mark.parametrize("dense_sum", [8, 0], ids=["summed-over-vocabulary", "sorted"])
def test_rows_equal_scikit_learns_transform(vectorizers, dense_sum, monkeypatch):
    """A text's char n-gram counts are summed over the whole vocabulary when it is small beside the text,
    else sorted and summed per column: the same rows either way."""
    monkeypatch.setattr(tfidf, "DENSE_SUM", dense_sum)
    for v in vectorizers:
        v.fit(CORPUS)
    expected = np.hstack([v.transform(QUERIES).toarray() for v in vectorizers])
    rows = TfidfRows(*vectorizers)
    got = rows(QUERIES)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.toarray(), expected, atol=1e-12)
    np.testing.assert_allclose(rows(QUERIES).toarray(), expected, atol=1e-12)  # again, from the word cache
    assert TfidfRows(*vectorizers)([]).shape == (0, expected.shape[1])
    for query, want in zip(QUERIES, expected, strict=True):  # one text's row, as a routing decision takes it
        cols, weights = rows.row(query)
        one = np.zeros(rows.width)
        one[cols] = weights
        np.testing.assert_allclose(one, want, atol=1e-12)


def test_vectorizers_analysing_alike_share_a_texts_counts_and_keep_their_own_vocabularies():
    """The intent classifier and the ability model read the same query's word n-grams: counted once, each
    vectorizer still maps them through its own vocabulary and IDF."""
    small = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(CORPUS[:2])
    large = TfidfVectorizer(ngram_range=(1, 2)).fit(CORPUS)
    other = TfidfVectorizer(ngram_range=(1, 2), lowercase=False).fit(CORPUS)
    first, second, third = TfidfRows(small), TfidfRows(large), TfidfRows(other)
    assert first._blocks[0].terms is second._blocks[0].terms is not third._blocks[0].terms
    for rows, v in ((first, small), (second, large), (third, other), (first, small)):
        np.testing.assert_allclose(rows(QUERIES).toarray(), v.transform(QUERIES).toarray(), atol=1e-12)


def test_unsupported_settings_are_refused():
    with pytest.raises(ValueError, match="use_idf"):
        TfidfRows(TfidfVectorizer(norm="l1").fit(CORPUS))
