"""Intent classification: a query's weights over the registered task types, plus an out-of-scope score.

Intents are the skills that registered agents declare; each skill's examples and description are its
training data, so a new agent's intents are learned from its registration alone. This first classifier
is lexical (word and character n-gram TF-IDF, nearest example per intent): cheap, offline, and good enough
for the distinct skills of a small pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix, diags, hstack
from sklearn.feature_extraction.text import TfidfVectorizer

from swarm_route.core.registry import AgentSpec


@dataclass(frozen=True)
class IntentResult:
    weights: dict[str, float]  # intent → weight, summing to 1 over the intents kept; empty when out of scope
    similarity: dict[str, float]  # intent → best cosine similarity to its examples
    oos_score: float  # 1 − best similarity: high means no intent fits
    out_of_scope: bool

    def top(self) -> str | None:
        return max(self.weights, key=self.weights.__getitem__) if self.weights else None


@dataclass
class LabelledExamples:
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def add(self, label: str, texts: Iterable[str]) -> None:
        for t in texts:
            if t.strip():
                self.texts.append(t)
                self.labels.append(label)

    @classmethod
    def from_agents(cls, agents: Iterable[AgentSpec]) -> LabelledExamples:
        data = cls()
        for agent in agents:
            for skill in agent.skills:
                data.add(skill.name, [*skill.examples, skill.description or agent.description])
        return data


class IntentClassifier:
    """Nearest-example intent weights; retrained from scratch whenever the labelled data changes."""

    MIN_WEIGHT = 0.01

    def __init__(self, oos_threshold: float = 0.3, temperature: float = 0.05) -> None:
        self.oos_threshold = oos_threshold
        self.temperature = temperature
        self._intents: list[str] = []
        self._label_idx = np.zeros(0, dtype=int)
        self._word: TfidfVectorizer | None = None
        self._char: TfidfVectorizer | None = None
        self._matrix: csr_matrix | None = None

    @property
    def intents(self) -> list[str]:
        return list(self._intents)

    def fit(self, data: LabelledExamples) -> IntentClassifier:
        if not data.texts:
            self._intents, self._matrix = [], None
            return self
        self._intents = sorted(set(data.labels))
        index = {name: i for i, name in enumerate(self._intents)}
        self._label_idx = np.array([index[label] for label in data.labels])
        self._word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english")
        self._char = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
        try:
            words = self._word.fit_transform(data.texts)
        except ValueError:  # every text was stop words only
            self._word = None
            words = None
        chars = self._char.fit_transform(data.texts)
        self._matrix = self._normalise(hstack([m for m in (words, chars) if m is not None]).tocsr())
        return self

    @staticmethod
    def _normalise(m: csr_matrix) -> csr_matrix:
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return (diags(1.0 / norms) @ m).tocsr()

    def _vector(self, query: str) -> csr_matrix:
        parts = [v.transform([query]) for v in (self._word, self._char) if v is not None]
        return self._normalise(hstack(parts).tocsr())

    def classify(self, query: str) -> IntentResult:
        if self._matrix is None:
            return IntentResult({}, {}, 1.0, True)
        sims = (self._matrix @ self._vector(query).T).toarray().ravel()
        best = np.full(len(self._intents), 0.0)
        np.maximum.at(best, self._label_idx, sims)
        similarity = {name: round(float(s), 4) for name, s in zip(self._intents, best, strict=True)}
        top = float(best.max())
        oos = top < self.oos_threshold
        weights: dict[str, float] = {}
        if not oos:
            z = np.exp((best - top) / self.temperature)
            z /= z.sum()
            kept = {name: float(w) for name, w in zip(self._intents, z, strict=True) if w >= self.MIN_WEIGHT}
            total = sum(kept.values())
            weights = {name: round(w / total, 4) for name, w in kept.items()}
        return IntentResult(weights, similarity, round(1.0 - top, 4), oos)
