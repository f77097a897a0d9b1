"""Per-query ability of each (agent, model) node, learned from past graded outcomes.

AMRO-S's heuristic η needs how well a candidate will do on *this* query, not only on its task. This model
keeps the graded history (query text, node, score, cost), finds the query's nearest past queries by TF-IDF
cosine (each past query kept as its ``row_terms`` heaviest terms), and predicts each node's score and cost
as a similarity-weighted mean of what that node did on its own k nearest graded ones (served traffic grades
only the nodes a query went to, so a near query graded on other nodes is no neighbour of this one), shrunk
toward what the node did on the query's intent (itself shrunk toward the node's overall mean, or a prior for
a node never graded) so that a node with little history is neither trusted nor starved, and a query with
few close neighbours is judged by its task: on RouterBench the per-task mean alone out-predicted the
neighbours (AIQ 0.8287 vs 0.8231).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix, vstack
from sklearn.feature_extraction.text import TfidfVectorizer

from swarm_route.core.classify.tfidf import TfidfRows

NEIGHBOUR_POOL = 4  # nearest rows looked at per query, in multiples of k, for each node to find its k graded among


@dataclass(frozen=True)
class AbilityEstimate:
    score: np.ndarray  # predicted score per requested node, in [0, 1]
    cost: np.ndarray  # predicted USD cost per requested node; NaN where the node has no cost history
    support: np.ndarray  # similarity-weighted number of graded neighbours behind each score
    graded: np.ndarray  # outcomes graded per node on the query's intent (on any, when none is given)


class Graded(NamedTuple):
    """One graded outcome: a node's score (and cost) on a query, and the query's intent when known."""

    text: str
    node: str
    score: float
    cost: float | None = None
    intent: str | None = None
    answer: str | None = None  # its short answer (``verify.short_answer``), where kept: for ``agreement``


class AbilityModel:
    """kNN over graded history; refit (vocabulary and IDF) explicitly, append online cheaply."""

    def __init__(
        self,
        k: int = 50,
        shrinkage: float = 20.0,
        prior: float = 0.7,
        max_history: int = 20_000,
        row_terms: int = 128,
        intent_shrinkage: float = 20.0,
    ) -> None:
        """``max_history``: graded texts kept in memory, newest; older ones are forgotten (a replica's
        memory must not grow with its traffic). ``row_terms``: each past text keeps its heaviest TF-IDF
        terms, renormalised; a text's common words weigh little each but are most of its nonzeros, and
        the product with the history is the largest part of a prediction. On RouterBench history (1,567
        prompts of ~300 words, ~270 terms each) 128 terms kept 96.5% of the exact 50 neighbours at 40% of
        the time (0.12 vs 0.31 ms); 64 kept 93% at a fifth, and lost 0.5 points of frontier area."""
        self.k, self.shrinkage, self.prior, self.max_history = k, shrinkage, prior, max_history
        self.row_terms, self.intent_shrinkage = row_terms, intent_shrinkage
        self._forgotten = 0  # texts dropped from the front so far, so a refit in a thread can line up
        # featuriser and the history's vectors, swapped as one so a refit in a thread never mixes them.
        # Row-major float32, multiplied by the query as a dense vector: one pass over the history's nonzeros.
        # Selecting the query's columns of a column-major copy instead was 2.5x slower on RouterBench
        # history (0.80 vs 0.31 ms, 1,567 prompts): long prompts share their template's words with most
        # rows, so the columns a query selects hold most of the nonzeros anyway, and the slicing costs more.
        self._index: tuple[TfidfRows, csr_matrix] | None = None
        # a refit runs in a thread: swapping in its index and appending or merging rows take this lock
        self._swap = threading.Lock()
        self._texts: list[str] = []
        self._row_of: dict[str, int] = {}  # text → its row, counted from the first text ever kept
        self._intent_codes: dict[str, int] = {}  # intent → its number (only grows: intents are few)
        self._intents: list[int] = []  # each row's query intent as its number, -1 where unknown
        self._rows: list[csr_matrix] = []
        self._nodes: dict[str, int] = {}
        self._scores = np.zeros((0, 0))
        self._costs = np.zeros((0, 0))
        self._tables: _Tables | None = None  # derived from the grades; dropped whenever history changes
        self._columns_of: tuple[tuple[str, ...], dict[str, int], int, np.ndarray] | None = None

    def blank(self) -> AbilityModel:
        """A model with these settings and no history (the store it learnt from was reset)."""
        return AbilityModel(
            self.k, self.shrinkage, self.prior, self.max_history, self.row_terms, self.intent_shrinkage
        )

    @property
    def size(self) -> int:
        return len(self._texts)

    def fit(
        self,
        texts: Sequence[str],
        nodes: Sequence[str],
        scores: np.ndarray,
        costs: np.ndarray | None = None,
        intents: Sequence[str | None] | None = None,
    ) -> AbilityModel:
        """``scores`` and ``costs`` are (len(texts), len(nodes)), NaN where a node was not graded on a text;
        ``intents``, each text's intent where known."""
        self._texts = list(texts)
        self._row_of = {text: self._forgotten + i for i, text in enumerate(self._texts)}  # a repeat: its last
        self._intents = self._coded(intents if intents is not None else [None] * len(self._texts))
        self._nodes = {n: i for i, n in enumerate(nodes)}
        self._scores = np.asarray(scores, dtype=float).reshape(len(texts), len(nodes))
        self._costs = np.full_like(self._scores, np.nan) if costs is None else np.asarray(costs, dtype=float).copy()
        self._tables = None
        self.refit()
        return self

    def refit(self) -> None:
        """Refit vocabulary and IDF on the whole history (safe in a thread beside ``predict``)."""
        texts, forgotten = list(self._texts), self._forgotten
        if not texts:
            self._index, self._rows = None, []
            return
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=200_000)
        matrix = self._heaviest(vectorizer.fit_transform(texts))
        featurise = TfidfRows(vectorizer)
        with self._swap:
            shift = self._forgotten - forgotten  # dropped from the front while fitting
            extra = self._texts[len(texts) - shift :]  # appended while fitting
            self._rows = [self._heaviest(featurise(extra))] if extra else []
            self._index = (featurise, matrix[shift:] if shift else matrix)

    def add(self, outcomes: Sequence[Graded]) -> None:
        """Append graded outcomes. A text graded before keeps its row: its cell for the node takes the
        newest grade (served traffic repeats queries, and a row per repeat would grow the history, and with
        it every prediction's product, with the traffic: on RouterBench prompts drawn with repeats the
        product took 0.54 ms per query inside the ingress after a few minutes of ``bench load``; and the k
        nearest would be copies of one query). A new text takes the first intent given with it.

        The vocabulary stays as it is until ``refit``, so appending is one transform of the new texts.
        """
        if not outcomes:
            return
        for o in outcomes:
            if o.node not in self._nodes:
                self._nodes[o.node] = len(self._nodes)
        width = len(self._nodes)
        texts: list[str] = []
        intents: list[str | None] = []
        new_row: dict[str, int] = {}
        cells: list[tuple[int, int, float, float | None]] = []  # (new row, node, score, cost)
        seen: list[tuple[int, int, float, float | None]] = []  # (row of a text graded before, ...)
        for o in outcomes:
            known = self._row_of.get(o.text)
            if known is not None:
                seen.append((known - self._forgotten, self._nodes[o.node], o.score, o.cost))
                continue
            if o.text not in new_row:
                new_row[o.text] = len(texts)
                texts.append(o.text)
                intents.append(o.intent)
            cells.append((new_row[o.text], self._nodes[o.node], o.score, o.cost))
        block = np.full((len(texts), width), np.nan)
        cost_block = block.copy()
        for row, col, score, cost in cells:
            block[row, col] = score
            cost_block[row, col] = np.nan if cost is None else cost
        pad = np.full((self._scores.shape[0], width - self._scores.shape[1]), np.nan)
        scores = np.vstack([np.hstack([self._scores, pad]), block])
        costs = np.vstack([np.hstack([self._costs, pad.copy()]), cost_block])
        for row, col, score, cost in seen:
            scores[row, col] = score
            costs[row, col] = np.nan if cost is None else cost
        self._scores, self._costs = scores, costs
        with self._swap:
            first = self._forgotten + len(self._texts)
            self._row_of.update((text, first + i) for i, text in enumerate(texts))
            self._texts.extend(texts)
            self._intents.extend(self._coded(intents))
            self._tables = None
            if self._index is not None and texts:
                self._rows.append(self._heaviest(self._index[0](texts)))
        if self._index is None:
            self.refit()
        if len(self._texts) > self.max_history * 1.1:  # a tenth of slack, so forgetting is not per call
            self._forget(len(self._texts) - self.max_history)

    def _coded(self, intents: Sequence[str | None]) -> list[int]:
        return [self._intent_codes.setdefault(t, len(self._intent_codes)) if t else -1 for t in intents]

    def _heaviest(self, rows: csr_matrix) -> csr_matrix:
        """Each row's ``row_terms`` largest weights, scaled back to unit length, as float32."""
        rows = csr_matrix(rows, dtype=np.float32)
        row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        order = np.lexsort((-rows.data, row_of))  # by row, heaviest first
        rank = np.arange(order.size) - rows.indptr[row_of[order]]
        keep = np.sort(order[rank < self.row_terms])
        kept_row = row_of[keep]
        data = rows.data[keep]
        norms = np.sqrt(np.bincount(kept_row, data.astype(float) ** 2, minlength=rows.shape[0]))
        data = (data / np.where(norms > 0, norms, 1.0)[kept_row]).astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(kept_row, minlength=rows.shape[0]))])
        return csr_matrix((data, rows.indices[keep], indptr), shape=rows.shape)

    def _forget(self, n: int) -> None:
        """Drop the ``n`` oldest texts, their grades and their vectors."""
        self._scores, self._costs = self._scores[n:], self._costs[n:]
        with self._swap:
            gone = self._forgotten + n  # rows numbered below this are dropped
            for text in self._texts[:n]:
                if self._row_of.get(text, gone) < gone:  # not a text ``fit`` was given twice, kept later
                    del self._row_of[text]
            self._texts, self._intents = self._texts[n:], self._intents[n:]
            self._forgotten += n
            self._tables = None
            if self._index is not None:
                featurise, matrix = self._index
                if self._rows:
                    matrix, self._rows = _stacked(matrix, self._rows), []
                self._index = (featurise, matrix[n:])

    def _derived(self) -> _Tables:
        """The grades without NaNs, their masks and each node's mean, kept until the history changes, so a
        prediction is a few products over its neighbours' rows."""
        tables = self._tables
        if tables is None or tables.scores.shape != self._scores.shape:  # or built from grades since replaced
            graded, has_cost = ~np.isnan(self._scores), ~np.isnan(self._costs)
            counts = graded.sum(axis=0)
            scores = np.nan_to_num(self._scores)
            mean = np.where(counts > 0, scores.sum(axis=0) / np.maximum(counts, 1), self.prior)
            codes = np.array(self._intents[: len(scores)], dtype=np.int64)
            rows = np.flatnonzero(codes >= 0)
            present = np.unique(codes[rows])
            # what each node did on each intent (one sparse product sums every intent's rows), shrunk
            # toward its overall mean
            member = csr_matrix(
                (np.ones(rows.size), (codes[rows], rows)), shape=(len(self._intent_codes), len(scores))
            )
            graded_per_intent = member @ graded.astype(float)
            per_intent = (member @ scores + self.intent_shrinkage * mean) / (
                graded_per_intent + self.intent_shrinkage
            )
            names = {code: name for name, code in self._intent_codes.items()}
            by_intent = {names[int(code)]: per_intent[code] for code in present}
            count_by_intent = {names[int(code)]: graded_per_intent[code] for code in present}
            tables = self._tables = _Tables(
                scores,
                graded.astype(float),
                np.nan_to_num(self._costs),
                has_cost.astype(float),
                mean,
                by_intent,
                counts.astype(float),
                count_by_intent,
            )
        return tables

    def _vectors(self) -> tuple[TfidfRows, csr_matrix] | None:
        if self._index is None:
            return None
        with self._swap:
            if self._rows:
                featurise, matrix = self._index
                rows, self._rows = self._rows, []
                self._index = (featurise, _stacked(matrix, rows))
            return self._index

    def _columns(self, nodes: Sequence[str]) -> np.ndarray:
        """Each node's column in the grade tables (-1: never graded). A router asks for the same nodes (its
        pool's) on every query, and a thousand names looked up took ~0.3 ms: the last answer is kept while
        the nodes asked for are the same and the model's nodes are the same mapping, grown by none."""
        key = tuple(nodes)
        kept = self._columns_of
        if kept is not None and kept[1] is self._nodes and kept[2] == len(self._nodes) and kept[0] == key:
            return kept[3]
        cols = np.array([self._nodes.get(node, -1) for node in nodes], dtype=int)
        self._columns_of = (key, self._nodes, len(self._nodes), cols)
        return cols

    def predict(self, query: str, nodes: Sequence[str], intent: str | None = None) -> AbilityEstimate:
        """``intent``: the query's (top) intent; the neighbours are shrunk toward each node's record on it."""
        n = len(nodes)
        cols = self._columns(nodes)
        known = cols >= 0
        score = np.full(n, self.prior)
        cost = np.full(n, np.nan)
        support = np.zeros(n)
        graded = np.zeros(n)
        index = self._vectors()
        if index is None or not known.any():
            return AbilityEstimate(score, cost, support, graded)
        featurise, matrix = index
        terms, weights = featurise.row(query)
        dense = np.zeros(matrix.shape[1], dtype=np.float32)
        dense[terms] = weights
        sims = matrix @ dense
        t, c = self._derived(), cols[known]
        wide = min(NEIGHBOUR_POOL * self.k, len(sims))
        top = np.argpartition(-sims, wide - 1)[:wide]
        top = top[np.argsort(-sims[top], kind="stable")]
        near = sims[top].astype(float) ** 2
        k = min(self.k, len(sims))
        first = top[:k]
        support_k, cost_support, scored, priced = _weighed(t, first, c, near[:k])
        # served traffic grades only the nodes a query went to: a node with fewer than k graded among the
        # k nearest finds its own k nearest graded in the wider pool, instead of falling back on its record
        short = np.flatnonzero(t.graded[first].sum(axis=0)[c] < np.minimum(k, t.count[c]))
        if short.size:
            graded_wide = t.graded[np.ix_(top, c[short])]
            mine = graded_wide * (np.cumsum(graded_wide, axis=0) <= self.k)
            support_k[short], cost_support[short], scored[short], priced[short] = _weighed(
                t, top, c[short], near, mine
            )
        shrunk = support_k + self.shrinkage  # 0 only unshrunk with no similar neighbour: the node's mean
        target = t.by_intent.get(intent or "", t.mean)[c]
        on_intent = t.count if intent is None else t.count_by_intent.get(intent)
        graded[known] = 0.0 if on_intent is None else on_intent[c]
        with np.errstate(invalid="ignore", divide="ignore"):
            mixed = (scored + self.shrinkage * target) / shrunk
            cost[known] = np.where(cost_support > 0, priced / cost_support, np.nan)
        score[known] = np.where(shrunk > 0, mixed, target)
        support[known] = support_k
        return AbilityEstimate(score, cost, support, graded)


@dataclass(frozen=True)
class _Tables:
    scores: np.ndarray  # grades, 0 where none
    graded: np.ndarray  # 1.0 where graded
    costs: np.ndarray  # costs, 0 where none
    has_cost: np.ndarray  # 1.0 where a cost was recorded
    mean: np.ndarray  # each node's mean grade, the prior where it has none
    by_intent: dict[str, np.ndarray]  # each node's grade on an intent, shrunk toward its mean
    count: np.ndarray  # each node's graded outcomes
    count_by_intent: dict[str, np.ndarray]  # each node's graded outcomes on an intent


def _weighed(
    t: _Tables, rows: np.ndarray, cols: np.ndarray, near: np.ndarray, within: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Similarity-weighted sums over ``rows`` for the nodes ``cols``: graded neighbours, neighbours with a
    cost, their grades and their costs (grades and costs are 0 where there are none); ``within``: only
    these cells count. Unmasked, each table's rows are summed over every node and the nodes picked after:
    gathering the (rows × nodes) block first took ~0.7 ms a query with a thousand nodes."""
    tables = (t.graded, t.has_cost, t.scores, t.costs)
    if within is None:
        graded, has_cost, scores, costs = ((near @ table[rows])[cols] for table in tables)
    else:
        graded, has_cost, scores, costs = (near @ (table[np.ix_(rows, cols)] * within) for table in tables)
    return graded, has_cost, scores, costs


def _stacked(matrix: csr_matrix, rows: list[csr_matrix]) -> csr_matrix:
    return vstack([matrix, *rows], format="csr", dtype=np.float32)
