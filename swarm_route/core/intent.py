"""Intent classification: a query's weights over the registered task types, plus an out-of-scope score.

Intents are the skills registered agents declare (their examples and descriptions are the training data)
or the labels of a loaded intent file. The classifier is a linear SVM over word and character n-gram
TF-IDF: cheap to train (seconds for 15k examples), ~0.1 ms a query in a batch, offline, no model download.
Out of scope is decided by a threshold on the best intent's score, chosen from data to maximise the
harmonic mean of in-scope accuracy and out-of-scope recall: on validation data when it has out-of-scope
examples; otherwise on a simulation (held-out folds as in-scope, each intent's examples scored by a model
trained without that intent as out-of-scope).
Examples labelled ``oos`` train an explicit out-of-scope class as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn import config_context
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import KFold
from sklearn.svm import LinearSVC

OOS = "oos"
ACCEPT_IN_SCOPE = 0.95  # without out-of-scope data, the threshold keeps this share of in-scope queries
CV_LIMIT = 5000  # above this many examples, cross-validation would cost more than it tells
LEAVE_OUT_INTENTS = 20  # intents held out in turn to simulate out-of-scope queries


@dataclass(frozen=True)
class IntentResult:
    weights: dict[str, float]  # intent → weight, summing to 1 over the intents kept; empty when out of scope
    similarity: dict[str, float]  # intent → classifier score (higher fits better)
    oos_score: float  # in (0, 1): above 0.5 means the best intent scored below the out-of-scope threshold
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

    def extend(self, pairs: Iterable[Sequence[str]]) -> LabelledExamples:
        for text, label in pairs:
            self.add(label, [text])
        return self

    @classmethod
    def from_agents(cls, agents: Iterable) -> LabelledExamples:  # type: ignore[type-arg]
        data = cls()
        for agent in agents:
            for skill in agent.skills:
                data.add(skill.name, [*skill.examples, skill.description or agent.description])
        return data


class _Model:
    """Vectorisers and SVM fitted together; kept as one object so a refit swaps all at once."""

    def __init__(self, data: LabelledExamples, c: float) -> None:
        self.word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)
        features = hstack([self.word.fit_transform(data.texts), self.char.fit_transform(data.texts)]).tocsr()
        self.labels = sorted(set(data.labels))
        if len(self.labels) >= 2:
            self.svm: LinearSVC | None = LinearSVC(C=c).fit(features, data.labels)
            self.classes = [str(x) for x in self.svm.classes_]
        else:  # one intent: score by similarity to its examples
            self.svm, self.classes, self._examples = None, self.labels, features

        if self.svm is not None:  # the decision function by hand: sklearn's input checks cost more than it
            coef = np.asarray(self.svm.coef_)
            self._weights = coef.T if coef.shape[0] > 1 else np.column_stack([-coef[0], coef[0]])
            b = np.atleast_1d(self.svm.intercept_)
            self._bias = b if b.size > 1 else np.array([-b[0], b[0]])

    def features(self, texts: Sequence[str]) -> csr_matrix:
        with config_context(assume_finite=True, skip_parameter_validation=True):
            return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        f = self.features(texts)
        if self.svm is not None:
            return np.asarray(f @ self._weights) + self._bias
        sims = (f @ self._examples.T).toarray() / 2  # two unit-norm blocks: cosine in [0, 1]
        return sims.max(axis=1, keepdims=True) * 2 - 1  # onto the SVM's rough [-1, 1] scale


def _best_split(inside: np.ndarray, right: np.ndarray, outside: np.ndarray) -> float:
    """The threshold that maximises the harmonic mean of in-scope accuracy (accepted and right) and
    out-of-scope recall (rejected)."""

    def merit(th: float) -> float:
        acc = float(np.mean((inside >= th) & right))
        recall = float(np.mean(outside < th))
        return 2 * acc * recall / (acc + recall) if acc + recall else 0.0

    candidates = np.unique(np.round(np.concatenate([inside, outside[np.isfinite(outside)]]), 3))
    return float(max(candidates, key=merit)) if candidates.size else 0.0


class IntentClassifier:
    def __init__(self, oos_threshold: float | None = None, temperature: float = 0.1, c: float = 1.0) -> None:
        self.oos_threshold = oos_threshold  # None: choose from data at fit time
        self.threshold = oos_threshold if oos_threshold is not None else 0.0
        self.temperature = temperature
        self.c = c
        self._model: _Model | None = None

    @property
    def intents(self) -> list[str]:
        return [c for c in self._model.classes if c != OOS] if self._model else []

    def fit(self, data: LabelledExamples, val: LabelledExamples | None = None) -> IntentClassifier:
        if not [label for label in data.labels if label != OOS]:
            self._model = None
            return self
        model = _Model(data, self.c)
        if self.oos_threshold is None:
            self.threshold = self._choose_threshold(model, data, val)
        self._model = model
        return self

    def _choose_threshold(self, model: _Model, data: LabelledExamples, val: LabelledExamples | None) -> float:
        if val is not None and val.texts:
            best, labels = self._best_scores(model, val.texts)
            truth = np.array(val.labels)
            inside = truth != OOS
            if (~inside).any() and inside.any():
                return _best_split(best[inside], np.array(labels)[inside] == truth[inside], best[~inside])
            if inside.any():
                return float(np.quantile(best[inside], 1 - ACCEPT_IN_SCOPE))
        if len(data.texts) <= CV_LIMIT and len(model.labels) >= 2:
            return self._simulated_threshold(data)
        return self.threshold

    def _simulated_threshold(self, data: LabelledExamples) -> float:
        """Without validation data, simulate it: in-scope queries are held-out folds of the training
        examples; out-of-scope queries are the examples of one intent, scored by a model trained without
        that intent (leave-one-intent-out) and, when the data has any, the ``oos`` examples themselves."""
        texts, labels = np.array(data.texts, dtype=object), np.array(data.labels)
        inside_scores: list[float] = []
        inside_right: list[bool] = []
        folds = KFold(n_splits=min(5, len(texts)), shuffle=True, random_state=0)
        for train, test in folds.split(texts):
            part = LabelledExamples(list(texts[train]), list(labels[train]))
            if len({label for label in part.labels if label != OOS}) < 2:
                continue
            best, predicted = self._best_scores(_Model(part, self.c), list(texts[test]))
            keep = labels[test] != OOS
            inside_scores.extend(best[keep])
            inside_right.extend(np.array(predicted)[keep] == labels[test][keep])
        outside: list[float] = []
        intents = sorted(set(labels) - {OOS})
        rng = np.random.default_rng(0)
        for intent in rng.permutation(intents)[:LEAVE_OUT_INTENTS] if len(intents) >= 3 else []:
            rest = labels != intent
            model = _Model(LabelledExamples(list(texts[rest]), list(labels[rest])), self.c)
            outside.extend(self._best_scores(model, list(texts[~rest]))[0])
        if not inside_scores:
            return self.threshold
        if not outside:
            return float(np.quantile(inside_scores, 1 - ACCEPT_IN_SCOPE))
        return _best_split(np.array(inside_scores), np.array(inside_right), np.array(outside))

    @classmethod
    def _best_scores(cls, model: _Model, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        return cls._best_of(model, model.scores(texts))

    @staticmethod
    def _best_of(model: _Model, scores: np.ndarray) -> tuple[np.ndarray, list[str]]:
        in_scope = [i for i, c in enumerate(model.classes) if c != OOS]
        sub = scores[:, in_scope]
        labels = [model.classes[in_scope[j]] for j in sub.argmax(axis=1)]
        oos = [i for i, c in enumerate(model.classes) if c == OOS]
        best = sub.max(axis=1)
        if oos:  # an explicit out-of-scope class that outscores every intent vetoes
            best = np.where(scores[:, oos[0]] > best, -np.inf, best)
        return best, labels

    def classify(self, query: str) -> IntentResult:
        return self.classify_many([query])[0]

    def classify_many(self, queries: Sequence[str]) -> list[IntentResult]:
        model = self._model
        if model is None:
            return [IntentResult({}, {}, 1.0, True) for _ in queries]
        scores = model.scores(list(queries))
        best, _ = self._best_of(model, scores)
        in_scope = [i for i, c in enumerate(model.classes) if c != OOS]
        results = []
        for row, top in zip(scores, best, strict=True):
            similarity = {model.classes[i]: round(float(row[i]), 4) for i in in_scope}
            oos_score = round(float(1 / (1 + np.exp(np.clip((top - self.threshold) / 0.1, -50, 50)))), 4)
            if top < self.threshold:
                results.append(IntentResult({}, similarity, oos_score, True))
                continue
            z = row[in_scope] / self.temperature
            z = np.exp(z - z.max())
            z /= z.sum()
            kept = {model.classes[i]: float(w) for i, w in zip(in_scope, z, strict=True) if w >= 0.01}
            total = sum(kept.values())
            results.append(
                IntentResult({k: round(v / total, 4) for k, v in kept.items()}, similarity, oos_score, False)
            )
        return results


@dataclass
class IntentFiles:
    train: LabelledExamples = field(default_factory=LabelledExamples)
    val: LabelledExamples = field(default_factory=LabelledExamples)


def labelled_split(data: dict, name: str, into: LabelledExamples | None = None) -> LabelledExamples:  # type: ignore[type-arg]
    """One split of a CLINC150-layout file: ``name`` as labelled, ``oos_<name>`` as out of scope."""
    into = into if into is not None else LabelledExamples()
    into.extend((t, lbl) for t, lbl in data.get(name, []))
    return into.extend((t, OOS) for t, _ in data.get(f"oos_{name}", []))


def load_intent_files(paths: Iterable[str]) -> IntentFiles:
    """Labelled files in the CLINC150 layout: ``train``/``val`` (+ ``oos_*``) lists of [text, label]."""
    files = IntentFiles()
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        labelled_split(data, "train", files.train)
        labelled_split(data, "val", files.val)
    return files
