"""``swarm-route bench routing``: quality and cost of ant-colony routing on routing matrices.

It builds a replay pool from the files' models, warms the real router up on ``--train`` (pheromone and the
ability model, through the same code the service runs, against a real Redis), then routes every ``--test``
prompt. The router sees only the prompt: ``eval_name`` is a training label for the intent classifier and the
pheromone specialists, never an input at test time. Quality is the mean recorded score of the chosen model
(an unrecorded score counts as 0, for every router alike), cost the summed recorded USD.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer

from swarm_route.agents.replay import RoutingMatrix, Row, replay_dirs, replay_pool
from swarm_route.bench.aiq import aiq, aiq_draws, hull
from swarm_route.bench.report import ci95, console, interval_text, percentiles, table, write_json
from swarm_route.config import Settings
from swarm_route.core.classify.embedding import default_embedder
from swarm_route.core.classify.intent import IntentClassifier, LabelledExamples
from swarm_route.core.dispatch.verify import short_answer
from swarm_route.core.learn.updater import PheromoneUpdater
from swarm_route.core.messages import SOURCE, FinishedRequest, IntentResult, Query, RouteRequest, edge_id, node_id
from swarm_route.core.pipeline import Dispatch, EventSink, Pipeline
from swarm_route.core.registry import AgentSpec, ModelOption, as_name
from swarm_route.core.route.ability import AbilityEstimate, AbilityModel
from swarm_route.core.route.outcomes import AbilityMemory, OutcomeLog
from swarm_route.core.route.router import ReasoningRouter
from swarm_route.keys import Keys
from swarm_route.store import client_on
from swarm_route.warmup import warm_up
from swarm_route.wiring import (
    Agents,
    AggregateStage,
    DispatchStage,
    FixedAgents,
    RouteStage,
    ability_model,
    dispatcher,
    pheromone_store,
    pheromone_updater,
    quality_gate,
    reasoning_router,
)

# λ is relative to the mean candidate cost, so one geometric sweep fits any price level; its far end
# (e^(−100·cost/c̄)) leaves nothing but the cheapest path, so the curve spans the whole cost range.
DEFAULT_LAMBDAS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.07, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
KNN_BASELINE = {"k": 50, "shrinkage": 5.0}  # neighbours shrunk toward each node's overall mean (no intent)
CASCADE_CHEAP = 4  # the agreement cascade baseline draws its pairs and triples from the cheapest models, these many
SCORER_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # the scorer cascade's bars: 0.05 … 0.95
SCORER_ANSWER_CHARS = 2000  # of each recorded answer the scorer reads
EMBEDDED_BLOCK = 1024  # test prompts whose cosines to every training prompt the embedding kNN holds at once


def split_holdout(rows: Sequence[Row], fraction: float) -> tuple[list[Row], list[Row]]:
    """Deterministic by sample id, so the same prompt lands on the same side in every run."""
    train, test = [], []
    for r in rows:
        bucket = int(hashlib.blake2b(r.sample_id.encode(), digest_size=8).hexdigest(), 16) % 10_000
        (test if bucket < fraction * 10_000 else train).append(r)
    return train, test


@dataclass
class Outcomes:
    """Quality and cost of one router's choices over the test prompts, and per task (for ``--by-task``)."""

    scores: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    def add(self, row: Row, model: str, paid: float | None = None) -> tuple[float, float]:
        """``paid``: what answering cost when more than ``model`` was asked (a cascade's every stage)."""
        rec = row.records[model]
        score, cost = rec.score or 0.0, (rec.cost_usd or 0.0) if paid is None else paid
        self.record(row, score, cost)
        return score, cost

    def record(self, row: Row, score: float, cost: float) -> None:
        self.scores.append(score)
        self.costs.append(cost)
        self.tasks.append(row.task)

    def point(self, **extra: Any) -> Point:
        by_task: dict[str, dict[str, Any]] = {}
        for task in sorted(set(self.tasks)):
            mine = [i for i, t in enumerate(self.tasks) if t == task]
            by_task[task] = _figures([self.scores[i] for i in mine], [self.costs[i] for i in mine])
        point = Point({**extra, **_figures(self.scores, self.costs), "by_task": by_task})
        point.outcomes = (np.array(self.scores, dtype=float), np.array(self.costs, dtype=float))
        return point


class Point(dict):
    """A router's figures at one setting, as the JSON holds them; ``outcomes``, the per-prompt scores and
    costs behind them (in test order, not written), for the bootstrap of AIQ."""

    outcomes: tuple[np.ndarray, np.ndarray]


def _figures(scores: Sequence[float], costs: Sequence[float]) -> dict[str, Any]:
    return {"quality": round(float(np.mean(scores)), 4), "cost": round(float(np.sum(costs)), 6)}


def mean_score(rows: Sequence[Row], m: str) -> float:
    return float(np.mean([r.records[m].score or 0.0 for r in rows])) if rows else 0.0


def mean_cost(rows: Sequence[Row], m: str) -> float:
    return float(np.mean([r.records[m].cost_usd or 0.0 for r in rows])) if rows else 0.0


def _fixed(rows: Sequence[Row], choose) -> Outcomes:  # type: ignore[no-untyped-def]
    out = Outcomes()
    for r in rows:
        out.add(r, choose(r))
    return out


def _history(settings: Settings, rows: Sequence[Row], node_model: dict[str, str], with_costs: bool) -> AbilityModel:
    """An ability model fitted on recorded rows, node by node (a node is one model's agent/model path)."""
    nodes = list(node_model)
    scores = np.array([[r.records[node_model[n]].score for n in nodes] for r in rows], dtype=float)
    costs = (
        np.array([[r.records[node_model[n]].cost_usd for n in nodes] for r in rows], dtype=float)
        if with_costs
        else None
    )
    return ability_model(settings).fit([r.prompt for r in rows], nodes, scores, costs, [r.intent for r in rows])


class _Classified:
    """The classifier stage of the benchmark: each test prompt classified once, up front."""

    def __init__(self, classifier: IntentClassifier, known: dict[str, IntentResult]) -> None:
        self._classifier, self._known = classifier, known

    async def classify(self, query: str) -> IntentResult:
        known = self._known.get(query)
        return known if known is not None else self._classifier.classify(query)


class LearnInLine:
    """The online runs' event sink: each finished request graded and deposited before the next query."""

    def __init__(self, updater: PheromoneUpdater) -> None:
        self._updater = updater

    async def finished(self, event: FinishedRequest) -> str:
        await self._updater.handle(event)
        return "learnt"


class Bench:
    def __init__(
        self, settings: Settings, train: list[Row], test: list[Row], models: list[str], files: list[str], seed: int = 0
    ):
        self.settings, self.train, self.test, self.models, self.seed = settings, train, test, models, seed
        matrix = RoutingMatrix(train, models)
        self.agents: dict[str, AgentSpec] = {a.name: a for a in replay_pool(matrix, files)}
        self.node_model = {node_id(as_name(m), m): m for m in models}
        tasks: dict[str, list[Row]] = {}
        for r in train:
            tasks.setdefault(r.intent, []).append(r)
        # each model's mean training score per task, in ``models`` order: the per-task baselines' evidence
        self.task_means = {t: np.array([mean_score(rs, m) for m in models]) for t, rs in tasks.items()}
        labelled = LabelledExamples()
        for r in train:
            labelled.add(r.intent, [r.prompt])
        # Out-of-scope is the intent issue's concern: here every prompt is in scope of the pool.
        self.classifier = IntentClassifier(oos_threshold=-np.inf, temperature=settings.intent.temperature).fit(labelled)
        self.intents: list[IntentResult] = [self.classifier.classify(r.prompt) for r in test]

    # -------------------------------------------------------------- baselines

    def baselines(self) -> dict[str, Any]:
        rng = random.Random(self.seed)
        test, train, models = self.test, self.train, self.models
        best = max(models, key=lambda m: mean_score(test, m))
        out: dict[str, Any] = {"best_single": _fixed(test, lambda r: best).point(model=best)}
        out["oracle"] = _fixed(
            test, lambda r: max(models, key=lambda m: (r.records[m].score or 0.0, -(r.records[m].cost_usd or 0.0)))
        ).point()
        out["random"] = _fixed(test, lambda r: rng.choice(models)).point()
        cheapest = min(models, key=lambda m: mean_cost(train, m))
        out["cheapest"] = _fixed(test, lambda r: cheapest).point(model=cheapest)
        task_best = {t: models[int(np.argmax(means))] for t, means in self.task_means.items()}
        predicted = {id(r): self.intents[i].top() for i, r in enumerate(test)}
        out["per_task_best"] = _fixed(test, lambda r: task_best.get(predicted[id(r)] or "", best)).point()
        knn = {id(r): models[int(np.argmax(e.score))] for r, e in zip(test, self._knn, strict=True)}
        out["knn"] = _fixed(test, lambda r: knn[id(r)]).point()
        return out

    @cached_property
    def _knn(self) -> list[AbilityEstimate]:
        """The kNN baselines' predictions on the test prompts, for ``self.models`` in order: their own fixed
        settings (``KNN_BASELINE``), so tuning swarm_route's never moves them."""
        knn = self.settings.ability.model_copy(update=KNN_BASELINE)
        model = _history(self.settings.model_copy(update={"ability": knn}), self.train, self.node_model, True)
        nodes = list(self.node_model)
        return [model.predict(r.prompt, nodes) for r in self.test]

    def curves(self, lambdas: Sequence[float]) -> dict[str, list[dict[str, Any]]]:
        """Baselines with a cost knob, each swept into a curve. The zero router: every single model (its hull
        is what mixing fixed models reaches). Then routers that take, per prompt, the highest predicted score
        less λ times the predicted cost relative to the candidates' mean (λ as swarm_route's), predicting the
        score by: the kNN over graded history (``knn``); a logistic regression per model on the prompt's
        TF-IDF, trained to tell a score ≥ 0.5 (``per_model_lr``); the mean score of the prompt's task,
        the task predicted by the classifier trained on ``--train`` (``per_task``); and, where the sentence
        encoder is installed, the kNN and the regressions on the prompt's embedding instead
        (``knn_embedding``, ``per_model_lr_embedding``). Costs come from the TF-IDF kNN's neighbours for
        all of them, so they differ only in how they predict the score."""
        models = self.models
        zero = [_fixed(self.test, lambda r, m=m: m).point(model=m) for m in models]
        costs = np.array([e.cost for e in self._knn])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():  # a prompt no node has a cost for
            warnings.simplefilter("ignore", RuntimeWarning)
            costs = np.nan_to_num(np.where(np.isnan(costs), np.nanmean(costs, axis=1, keepdims=True), costs))
        overall = np.array([mean_score(self.train, m) for m in models])
        per_task = np.array([self.task_means.get(intent.top() or "", overall) for intent in self.intents])

        def swept(scores: np.ndarray) -> list[dict[str, Any]]:
            relative = costs / np.maximum(costs.mean(axis=1, keepdims=True), 1e-12)
            points = []
            for lam in lambdas:
                choice = np.argmax(scores - lam * relative, axis=1)
                pick = {id(r): models[c] for r, c in zip(self.test, choice, strict=True)}
                points.append(_fixed(self.test, lambda r, pick=pick: pick[id(r)]).point(**{"lambda": lam}))
            return points

        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
        tfidf = (
            vectorizer.fit_transform([r.prompt for r in self.train]),
            vectorizer.transform([r.prompt for r in self.test]),
        )
        curves = {
            "zero_router": zero,
            "knn": swept(np.array([e.score for e in self._knn])),
            "per_model_lr": swept(self._per_model_lr(*tfidf)),
            "per_task": swept(per_task),
            "agreement_cascade": self._cascades(),
            "scorer_cascade": self._scorer_cascades(*tfidf),
        }
        embedded = self._embeddings()
        if embedded is not None:
            curves["knn_embedding"] = swept(self._knn_embedding(*embedded))
            curves["per_model_lr_embedding"] = swept(self._per_model_lr(*embedded))
        return curves

    def _embeddings(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The training and test prompts' sentence embeddings (the classifier's MiniLM, unit rows), or None
        where it is not installed (those baselines are then left out)."""
        embedder = default_embedder()
        if embedder is None:
            return None
        with console.status("embedding the prompts for the embedding baselines"):
            return embedder.encode([r.prompt for r in self.train]), embedder.encode([r.prompt for r in self.test])

    def _knn_embedding(self, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        """Each model's mean training score over the test prompt's ``KNN_BASELINE['k']`` nearest training
        prompts by embedding cosine, weighted by the cosine (a prompt with no positive neighbour: the
        model's overall mean)."""
        k = min(KNN_BASELINE["k"], len(self.train))
        scores = np.array([[r.records[m].score or 0.0 for m in self.models] for r in self.train])
        out = np.empty((len(test), len(self.models)))
        for start in range(0, len(test), EMBEDDED_BLOCK):  # a block of test rows at a time: sims stay small
            sims = test[start : start + EMBEDDED_BLOCK] @ train.T
            near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            weights = np.maximum(np.take_along_axis(sims, near, axis=1), 0.0)
            total = weights.sum(axis=1, keepdims=True)
            mixed = np.einsum("qk,qkm->qm", weights, scores[near]) / np.maximum(total, 1e-12)
            out[start : start + EMBEDDED_BLOCK] = np.where(total > 0, mixed, scores.mean(axis=0))
        return out

    def _per_model_lr(self, train: Any, test: Any) -> np.ndarray:
        """Each model's chance of a score ≥ 0.5 on each test prompt: a logistic regression on the training
        prompts' features (a model right or wrong on all of them: that, as a constant)."""
        from sklearn.linear_model import LogisticRegression

        models = self.models
        out = np.zeros((len(self.test), len(models)))
        for j, m in enumerate(models):
            y = np.array([(r.records[m].score or 0.0) >= 0.5 for r in self.train])
            if y.all() or not y.any():
                out[:, j] = float(y.all())
            else:
                out[:, j] = LogisticRegression(max_iter=2000).fit(train, y).predict_proba(test)[:, 1]
        return out

    @cached_property
    def _strongest(self) -> str:
        """The model with the best training score: what the fixed cascades escalate to."""
        return max(self.models, key=lambda m: mean_score(self.train, m))

    def _cascade(self, first: Sequence[str], accepted: Iterable[bool], **extra: Any) -> Point:
        """A fixed cascade over the test prompts: ``first`` answer each, and where ``accepted`` says no, the
        strongest model is asked too and its answer stands (paid for on top of the first stage's)."""
        strong, out, escalated = self._strongest, Outcomes(), 0
        for r, ok in zip(self.test, accepted, strict=True):
            answered, last = [r.records[m] for m in first], r.records[strong]
            cost = sum(x.cost_usd or 0.0 for x in answered)
            if ok:
                out.record(r, answered[0].score or 0.0, cost)
            else:
                escalated += 1
                out.record(r, last.score or 0.0, cost + (last.cost_usd or 0.0))
        return out.point(models=[*first, strong], **extra, escalated=round(escalated / max(len(self.test), 1), 4))

    def _cascades(self) -> list[dict[str, Any]]:
        """FrugalGPT-style fixed cascades without a learned scorer: two or three cheap models answer; when
        their short answers all agree the first one's stands, else the strongest model (best training
        score) is asked too and its answer stands. One point per pair and per triple of the
        ``CASCADE_CHEAP`` cheapest models (training cost)."""
        cheap = sorted((m for m in self.models if m != self._strongest), key=lambda m: mean_cost(self.train, m))
        panels = [p for k in (2, 3) for p in combinations(cheap[:CASCADE_CHEAP], k)]
        points = []
        for panel in panels:
            shorts = ({short_answer(r.records[m].response) for m in panel} for r in self.test)
            points.append(self._cascade(panel, (len(a) == 1 and "" not in a for a in shorts)))
        return points

    def _scorer_cascades(self, train: Any, test: Any) -> list[dict[str, Any]]:
        """FrugalGPT's cascade with its scorer learnt: a model cheaper than the strongest (best training
        score) answers; a logistic regression on the prompt's TF-IDF (``train``, ``test``), the answer's
        character n-grams and its length, trained on ``--train``'s recorded answers to tell a score ≥ 0.5,
        accepts the answer when its predicted chance reaches a bar (``SCORER_THRESHOLDS``), else the
        strongest model is asked too and its answer stands. One point per cheaper model and bar."""
        from sklearn.linear_model import LogisticRegression

        dear = mean_cost(self.train, self._strongest)
        points = []
        for m in (m for m in self.models if m != self._strongest and mean_cost(self.train, m) < dear):
            y = np.array([(r.records[m].score or 0.0) >= 0.5 for r in self.train])
            if y.all() or not y.any():  # nothing to learn: a constant scorer is the model alone or never asked
                continue
            (seen, seen_shape), (asked, asked_shape) = _answer_features(self.train, m), _answer_features(self.test, m)
            answers = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=2)
            fitted = hstack([train, answers.fit_transform(seen), seen_shape]).tocsr()
            scored = hstack([test, answers.transform(asked), asked_shape]).tocsr()
            chance = LogisticRegression(max_iter=2000).fit(fitted, y).predict_proba(scored)[:, 1]
            points += [self._cascade([m], chance >= bar, threshold=bar) for bar in SCORER_THRESHOLDS]
        return points

    # -------------------------------------------------------------- swarm_route

    async def warm(
        self, client: Any, namespace: str, online: bool = False, cascades: bool = False, without: str | None = None
    ) -> tuple[ReasoningRouter, PheromoneUpdater, AbilityMemory]:
        """``online``: trails read fresh for every prompt, since each answer is graded before the next
        prompt (the service's traffic spreads that over seconds, where its trails cache does not hide it).
        ``cascades``: the router may build them (``cascade.enabled``), whatever the settings say.
        ``without``: a model the history never graded (one that joins later)."""
        s = self.settings.model_copy(update={"namespace": namespace})
        if cascades:
            s = s.model_copy(update={"cascade": s.cascade.model_copy(update={"enabled": True})})
        if online:
            s = s.model_copy(update={"store": s.store.model_copy(update={"trails_refresh_s": 0.0})})
        store = pheromone_store(s, client)
        log = OutcomeLog(client, Keys(namespace))
        rows = self.train
        if without is not None:
            rows = [replace(r, records={m: v for m, v in r.records.items() if m != without}) for r in rows]
        await warm_up(rows, store, quality_gate(s), deposit_q=s.aco.deposit_q, epsilon=s.aco.epsilon, outcomes=log)
        memory = AbilityMemory(log, ability_model(s), interval_s=0.0)  # online: every graded answer is seen next
        await memory.refresh(force=True)
        # exploration is repeatable
        router = reasoning_router(s, store, memory.model, random.Random(self.seed), agreement=memory.agreement)
        return router, pheromone_updater(s, client, store), memory

    def pipeline(
        self,
        router: ReasoningRouter,
        memory: AbilityMemory | None,
        sink: EventSink | None,
        wrap: Callable[[DispatchStage], Dispatch] | None = None,
        agents: Agents | None = None,
    ) -> Pipeline:
        """The service's walk, in process: replay agents answer; no retries or fallbacks, so the path scored
        is the path chosen (a prompt a model has no recorded answer for scores 0, for every router alike).
        ``wrap``: what the dispatch stage is put inside (``bench drift`` breaks an agent there). ``agents``:
        the registry the router reads (default: every model's replay agent, never changing)."""
        pool = agents or FixedAgents(self.agents)
        settings = self.settings.model_copy(
            update={"dispatch": self.settings.dispatch.model_copy(update={"retries": 0, "fallbacks": 0})}
        )
        return Pipeline(
            _Classified(self.classifier, {r.prompt: i for r, i in zip(self.test, self.intents, strict=True)}),
            RouteStage(router, pool, memory=memory),
            (wrap or (lambda stage: stage))(DispatchStage(dispatcher(settings), pool)),
            AggregateStage(settings),
            sink,
        )

    async def frontier(
        self, client: Any, lambdas: Sequence[float], online: bool, cascades: bool = False
    ) -> tuple[list[dict], list[float]]:
        """Every test prompt walked at each λ: frozen (most probable path, no learning), or online (ACS
        exploration, and each finished request graded and deposited before the next prompt). ``cascades``:
        the router may choose a cascade, and each point counts those chosen, those whose first stage was
        three paths, and those that escalated."""
        points, latencies = [], []
        shared = None if online else await self.warm(client, f"bench-{uuid.uuid4().hex[:8]}", cascades=cascades)
        for lam in lambdas:
            namespace = f"bench-{uuid.uuid4().hex[:8]}"
            router, updater, memory = shared or await self.warm(client, namespace, online, cascades)
            pipeline = self.pipeline(router, memory if online else None, LearnInLine(updater) if online else None)
            out = Outcomes()
            tiers: list[str] = []
            for i, row in enumerate(self.test):
                walked = await pipeline.walk(Query(text=row.prompt, cost_weight=lam, explore=online), f"{lam}-{i}")
                latencies.append(walked.response.trace.stages_ms["route"])
                stands = walked.decision.candidates[walked.response.trace.chosen[0]]
                out.add(row, self.node_model[stands.path[0].node], walked.response.cost_usd)
                tiers += [(t.verdict, len(t.candidates)) for t in walked.response.trace.tiers[:1]]
            counts = (
                {
                    "cascades": len(tiers),
                    "of_three": sum(n == 3 for _, n in tiers),
                    "escalated": sum(v == "escalated" for v, _ in tiers),
                }
                if cascades
                else {}
            )
            points.append(out.point(**{"lambda": lam}, **counts))
            console.print(  # a sweep takes minutes: one line a λ, on a terminal or in a log
                f"  {'online' if online else 'frozen'}{', cascades' if cascades else ''} λ {lam}: quality "
                f"{points[-1]['quality']:.4f} at ${points[-1]['cost']:.3f} ({len(points)}/{len(lambdas)})"
            )
        return points, latencies

    async def latency_at_scale(self, client: Any, n_candidates: int, samples: int) -> dict[str, float]:
        """Decision latency with ``n_candidates`` paths: the pool's models cloned into synthetic agents."""
        per_agent = len(self.models)
        clones = -(-n_candidates // per_agent)
        agents: dict[str, AgentSpec] = {}
        node_model: dict[str, str] = {}
        for c in range(clones):
            for m in self.models:
                if len(node_model) >= n_candidates:
                    break
                base = self.agents[as_name(m)]
                name = f"c{c}-{as_name(m)}"[:64]
                spec = base.model_copy(update={"name": name, "models": [ModelOption(**base.models[0].model_dump())]})
                agents[name] = spec
                node_model[node_id(name, m)] = m
        nodes = list(node_model)
        history = self.train[:300]
        model = _history(self.settings, history, node_model, with_costs=False)
        store = pheromone_store(self.settings.model_copy(update={"namespace": f"bench-{uuid.uuid4().hex[:8]}"}), client)
        for r in history[:50]:
            await store.deposit(
                r.intent,
                {edge_id(SOURCE, n): 0.1 for n in nodes if (r.records[node_model[n]].score or 0) >= 0.5},
            )
        router = reasoning_router(self.settings, store, model)
        times = []
        for row, intent in list(zip(self.test, self.intents, strict=True))[:samples]:
            t0 = time.perf_counter()
            await router.route(RouteRequest(text=row.prompt, intent=intent, explore=False), agents)
            times.append((time.perf_counter() - t0) * 1000)
        return percentiles(times[5:] or times)


def _answer_features(rows: Sequence[Row], model: str) -> tuple[list[str], csr_matrix]:
    """``model``'s recorded answers (their first ``SCORER_ANSWER_CHARS``) and their shape: log length, lines,
    whether empty (a refusal or a malformed answer is often told by its shape alone)."""
    texts = [recorded[:SCORER_ANSWER_CHARS] for recorded in (r.records[model].response for r in rows)]
    shape = [[np.log1p(len(t)), t.count("\n") / 10, float(not t.strip())] for t in texts]
    return texts, csr_matrix(np.array(shape, dtype=float).reshape(len(texts), 3))


def _plot(path: str, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    scores = result["aiq"]["routers"]
    labels = {
        "frontier": "frozen",
        "online": "online",
        "cascades": "cascades, frozen",
        "cascades_online": "cascades, online",
    }
    for name, label in labels.items():
        pts = result["swarm_route"][name]
        label = f"swarm_route ({label})"
        ax.plot(
            [p["cost"] for p in pts],
            [p["quality"] for p in pts],
            marker="o",
            ms=3,
            label=f"{label}, AIQ {scores[label]:.3f}",
        )
    for name, pts in result["curves"].items():  # a λ sweep as swept; sets of fixed routers as their hull
        if not pts:
            continue
        points = [(p["cost"], p["quality"]) for p in pts]
        line = points if "lambda" in pts[0] else hull(points)
        ax.plot(*zip(*line, strict=True), linestyle="--", marker=".", label=f"{name}, AIQ {scores[name]:.3f}")
    for name, p in result["baselines"].items():
        ax.scatter([p["cost"]], [p["quality"]], marker="x" if name != "best_single" else "*", s=60)
        ax.annotate(name if "model" not in p else f"{name}\n{p['model']}", (p["cost"], p["quality"]), fontsize=7)
    ax.set_xlabel("total cost on the test prompts (USD)")
    ax.set_ylabel("mean recorded score")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_title("swarm_route: quality against cost")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    console.print(f"wrote {path}")


def _aiq(result: dict[str, Any], task: str | None = None) -> dict[str, Any]:
    """The AIQ of every router that is a curve, over one cost range: from the cheapest single model's cost to
    the best one's. The point baselines are left out: a point's hull is a step, 0 before its cost, so the
    best single model's (at the range's end) is 0 and says nothing. ``task``: the same on that task's test
    prompts alone, over its own range (its best single model may be another), for the report only."""

    def figures(point: dict[str, Any]) -> dict[str, Any]:
        return point if task is None else point["by_task"][task]

    singles = [figures(p) for p in result["curves"]["zero_router"]]
    best = figures(result["best_single"]) if task is None else max(singles, key=lambda f: f["quality"])
    low, high = min(f["cost"] for f in singles), best["cost"]

    def of(points: Sequence[dict[str, Any]]) -> float:
        return aiq([(figures(p)["cost"], figures(p)["quality"]) for p in points], low, high)

    routers = {name: of(points) for name, points in _routers(result).items()}
    return {"cost_range": [low, high], "best_single": {k: best[k] for k in ("quality", "cost")}, "routers": routers}


def _routers(result: dict[str, Any]) -> dict[str, list[Point]]:
    """Every router scored by AIQ, with its points."""
    return {
        "swarm_route (frozen)": result["swarm_route"]["frontier"],
        "swarm_route (online)": result["swarm_route"]["online"],
        "swarm_route (cascades, frozen)": result["swarm_route"]["cascades"],
        "swarm_route (cascades, online)": result["swarm_route"]["cascades_online"],
        **result["curves"],
        "oracle": [result["baselines"]["oracle"]],  # the ceiling: right and cheapest on every prompt
    }


OURS = (
    "swarm_route (frozen)",
    "swarm_route (online)",
    "swarm_route (cascades, frozen)",
    "swarm_route (cascades, online)",
    "oracle",
)


def _best_baseline(scores: dict[str, float]) -> str:
    return max((k for k in scores if k not in OURS), key=lambda k: scores[k])


def _aiq_spread(result: dict[str, Any], resamples: int, seed: int) -> dict[str, Any]:
    """How far each AIQ, and the gaps the targets compare, move with which test prompts were drawn: 95%
    percentile intervals over paired bootstrap draws (``aiq.aiq_draws``), and the share of draws in which
    each gap is above 0."""
    scores = result["aiq"]["routers"]
    draws = aiq_draws(
        {name: [p.outcomes for p in points] for name, points in _routers(result).items()},
        [p.outcomes for p in result["curves"]["zero_router"]],
        result["baselines"]["best_single"].outcomes,
        resamples,
        seed,
    )

    frozen, online, rival = "swarm_route (frozen)", "swarm_route (online)", _best_baseline(scores)
    cascades, learning = "swarm_route (cascades, frozen)", "swarm_route (cascades, online)"
    short = {frozen: "frozen", online: "online", cascades: "cascades", learning: "cascades online", rival: rival}
    gaps = {}
    for a, b in (
        (online, frozen),
        (frozen, rival),
        (online, rival),
        (cascades, frozen),
        (cascades, rival),
        (learning, online),
    ):
        diff = draws[a] - draws[b]
        gaps[f"{short[a]} − {short[b]}"] = {
            "aiq": round(scores[a] - scores[b], 4),
            "ci95": ci95(diff),
            "share_above_0": round(float((diff > 0).mean()), 3),
        }
    return {"resamples": resamples, "ci95": {name: ci95(v) for name, v in draws.items()}, "gaps": gaps}


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    best = result["baselines"]["best_single"]
    frontier = result["swarm_route"]["frontier"]

    def reached(dq: float, share: float) -> bool:
        return any(p["quality"] >= best["quality"] + dq and p["cost"] <= share * best["cost"] for p in frontier)

    def dominated_by_none() -> list[str]:
        beaten = []
        for name, b in result["baselines"].items():
            if name == "oracle":
                continue
            if not any(p["quality"] >= b["quality"] and p["cost"] <= b["cost"] for p in frontier):
                beaten.append(name)
        return beaten

    lat = result["decision_latency_ms"]
    scores = result["aiq"]["routers"]
    best_baseline = scores[_best_baseline(scores)]
    return {
        "aiq_frozen_above_every_baseline": scores["swarm_route (frozen)"] > best_baseline,
        "aiq_online_above_every_baseline": scores["swarm_route (online)"] > best_baseline,
        "aiq_online_ge_frozen": scores["swarm_route (online)"] >= scores["swarm_route (frozen)"],
        "quality_ge_best_at_40pct_cost": reached(0.0, 0.4),
        "quality_ge_best_at_25pct_cost": reached(0.0, 0.25),
        "quality_ge_best_plus_2pts_at_50pct_cost": reached(0.02, 0.5),
        "baselines_the_frontier_does_not_dominate": dominated_by_none(),
        "latency_pool_p50_le_1ms": lat[str(len(result["models"]))]["p50"] <= 1.0,
        "latency_1000_p50_le_5ms": lat["1000"]["p50"] <= 5.0,
    }


def load(
    train_files: Sequence[str], test_files: Sequence[str] | None, holdout: float, settings: Settings, seed: int
) -> tuple[Bench, str]:
    """The bench on the files: ``--test``'s prompts (those of ``--train`` left out of training), or a held-out
    slice of ``--train``; and how it was split."""
    policy = settings.agent_policy.model_copy(update={"replay_dirs": replay_dirs([*train_files, *(test_files or [])])})
    settings = settings.model_copy(update={"agent_policy": policy})  # the replay agents read the given files
    missing = [f for f in [*train_files, *(test_files or [])] if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"no such routing matrix: {', '.join(missing)}")
    train_m = RoutingMatrix.load(*train_files)
    if test_files and sorted(map(str, test_files)) != sorted(map(str, train_files)):
        test_m = RoutingMatrix.load(*test_files)
        held = {r.prompt for r in test_m.rows}
        train, test = [r for r in train_m.rows if r.prompt not in held], test_m.rows
        split = "files"
    else:
        train, test = split_holdout(train_m.rows, holdout)
        split = f"holdout {holdout:.0%} by sample_id"
    models = [m for m in train_m.models if all(m in r.records for r in test)]
    console.print(f"routing bench: {len(train)} train / {len(test)} test prompts ({split}), {len(models)} models")
    return Bench(settings, train, test, models, [str(f) for f in train_files], seed), split


async def run(
    train_files: Sequence[str],
    test_files: Sequence[str] | None,
    *,
    holdout: float = 0.3,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    json_path: str | None = None,
    plot_path: str | None = None,
    seed: int = 0,
    settings: Settings | None = None,
    by_task: bool = False,
    resamples: int = 1000,
) -> dict[str, Any]:
    """``by_task``: AIQ per ``eval_name`` too (a report: the routers never see the task). ``resamples``:
    bootstrap draws of the test prompts behind each AIQ's interval (0: none)."""
    bench, split = load(train_files, test_files, holdout, settings or Settings(), seed)
    settings, train, test, models = bench.settings, bench.train, bench.test, bench.models
    async with client_on(settings.redis_url) as client:
        baselines = bench.baselines()
        curves = bench.curves(lambdas)
        frontier, lat11 = await bench.frontier(client, lambdas, online=False)
        online, _ = await bench.frontier(client, lambdas, online=True)
        cascaded, _ = await bench.frontier(client, lambdas, online=False, cascades=True)
        learning, _ = await bench.frontier(client, lambdas, online=True, cascades=True)
        latency = {f"{len(models)}": percentiles(lat11), "1000": await bench.latency_at_scale(client, 1000, 200)}
    result: dict[str, Any] = {
        "train_prompts": len(train),
        "test_prompts": len(test),
        "split": split,
        "models": models,
        "baselines": baselines,
        "best_single": baselines["best_single"],
        "oracle": baselines["oracle"],
        "swarm_route": {"frontier": frontier, "online": online, "cascades": cascaded, "cascades_online": learning},
        "curves": curves,
        "decision_latency_ms": latency,
        "settings": {
            "aco": settings.aco.model_dump(),
            "ability": settings.ability.model_dump(),
            "updater": settings.updater.model_dump(),
        },
    }
    result["aiq"] = _aiq(result)
    if resamples:
        result["aiq"]["spread"] = _aiq_spread(result, resamples, seed)
    if by_task:
        result["aiq_by_task"] = {t: _aiq(result, t) for t in baselines["best_single"]["by_task"]}
    result["targets"] = _targets(result)
    best = baselines["best_single"]
    rows = [
        (name, p.get("model", ""), p["quality"], p["cost"], p["cost"] / best["cost"] if best["cost"] else 0.0)
        for name, p in baselines.items()
    ]
    rows += [
        (
            f"swarm_route λ={p['lambda']}",
            mode,
            p["quality"],
            p["cost"],
            p["cost"] / best["cost"] if best["cost"] else 0.0,
        )
        for mode, points in (
            ("frozen", frontier),
            ("online", online),
            ("cascades", cascaded),
            ("cascades, online", learning),
        )
        for p in points
    ]
    table(
        "routing: quality and cost on the test prompts",
        ["router", "model / mode", "quality", "cost USD", "cost / best single"],
        rows,
    )
    span = result["aiq"]["cost_range"]
    spread = result["aiq"].get("spread")
    intervals = spread["ci95"] if spread else {}
    table(
        f"AIQ: mean reachable quality over costs {span[0]:.4g}–{span[1]:.4g} USD (cheapest → best single model)"
        + (f"; 95% interval over {resamples} bootstrap draws of the test prompts" if spread else ""),
        ["router", "AIQ", "95% interval"],
        [(name, v, interval_text(intervals.get(name))) for name, v in result["aiq"]["routers"].items()],
    )
    if spread:
        table(
            "AIQ gaps, paired over the same draws",
            ["gap", "AIQ", "95% interval", "share of draws above 0"],
            [(g, f["aiq"], interval_text(f["ci95"]), f["share_above_0"]) for g, f in spread["gaps"].items()],
        )
    if by_task:
        tasks = result["aiq_by_task"]
        table(
            "AIQ per task, each over its own range (cheapest → best single model on the task)",
            ["router", *tasks],
            [(name, *(tasks[t]["routers"][name] for t in tasks)) for name in result["aiq"]["routers"]],
        )
    table(
        "decision latency (ms, in-process)",
        ["candidates", "p50", "p99"],
        [(k, v["p50"], v["p99"]) for k, v in latency.items()],
    )
    console.print(result["targets"])
    write_json(json_path, result)
    if plot_path:
        _plot(plot_path, result)
    return result
