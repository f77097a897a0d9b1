"""``swarm-route bench intent``: accuracy, out-of-scope detection, speed and training time of the classifier.

On a file in the CLINC150 layout it trains on ``train`` (+ ``oos_train``), chooses the out-of-scope
threshold on ``val``/``oos_val``, and reports on ``test``/``oos_test``. Empty ``oos_*`` lists are fine:
the out-of-scope figures are then null.

One intent (chosen by a seeded draw) is left out of that fit and then added as a new agent with
``REFIT_EXAMPLES`` of its examples, as a registration beside a fitted model is learnt: ``refit_seconds``
times that, and ``after_refit`` gives the figures over every intent with it learnt. The main figures are
over the test queries of the intents the fit knew (the new intent's count as neither in nor out of scope
there). The fit runs with an empty encoder cache (``train_seconds``) and once more with it warm, as a
restart would (``restart_seconds``).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.progress import Progress as ProgressBars
from rich.progress import TaskID

from swarm_route.bench.report import console, percentiles, table, write_json
from swarm_route.config import Settings
from swarm_route.core.classify.embedding import Progress, default_embedder
from swarm_route.core.classify.intent import OOS, IntentClassifier, LabelledExamples, labelled_split
from swarm_route.core.messages import IntentResult
from swarm_route.wiring import intent_classifier

BATCH = 64
REFIT_EXAMPLES = 20  # the new agent's examples, as a registration brings them


def run(
    data_path: str,
    *,
    json_path: str | None = None,
    latency_samples: int = 500,
    embeddings: bool = True,
    settings: Settings | None = None,
) -> dict[str, Any]:
    path = Path(data_path)
    if not path.is_file():
        raise FileNotFoundError(f"no such intent file: {data_path}")
    data = json.loads(path.read_text())
    train, val, test = (labelled_split(data, name) for name in ("train", "val", "test"))
    if not train.texts or not test.texts:
        raise ValueError(f"{data_path}: needs non-empty 'train' and 'test' lists")
    intents = sorted(set(train.labels) - {OOS})
    new = random.Random(0).choice(intents) if len(intents) >= 3 else None  # two must stay to learn beside
    console.print(
        f"intent bench: {len(train.texts)} train / {len(val.texts)} val / {len(test.texts)} test, "
        f"{len(intents)} intents; {new!r} joins later as a new agent of {REFIT_EXAMPLES} examples"
    )
    known, val = _without(train, new), _without(val, new)
    embedder = default_embedder() if embeddings else None
    settings = settings or Settings()
    with tempfile.TemporaryDirectory() as cache:
        intent = settings.intent.model_copy(update={"tune_cache": cache})
        settings = settings.model_copy(update={"intent": intent})
        t0 = time.perf_counter()
        with _progress_bars() as report:
            clf = intent_classifier(settings, embedder).fit(known, val if val.texts else None, report)
        train_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        intent_classifier(settings, embedder).fit(known, val if val.texts else None)
        restart_seconds = time.perf_counter() - t0

    shown = [(t, y) for t, y in zip(test.texts, test.labels, strict=True) if y != new]
    t0 = time.perf_counter()
    results, slow = [], 0.0
    for i in range(0, len(shown), BATCH):
        batch = [t for t, _ in shown[i : i + BATCH]]
        results.extend(clf.classify_many(batch))
        slow += clf.slow_share * len(batch)
    throughput = len(shown) / (time.perf_counter() - t0)

    single = []
    sample = random.Random(0).sample(test.texts, min(latency_samples, len(test.texts)))  # the file may be sorted
    for text in sample:
        t = time.perf_counter()
        clf.classify(text)
        single.append((time.perf_counter() - t) * 1000)

    result: dict[str, Any] = {
        "data": str(path),
        "intents": len(intents),
        "train": len(train.texts),
        "test": len(test.texts),
        **_figures(results, [y for _, y in shown]),
        "threshold": round(clf.threshold, 4),
        "embeddings": embedder is not None,
        "slow_path_share": round(slow / len(shown), 4),
        "latency_ms": percentiles(single[10:] or single),
        "throughput_qps": round(throughput, 1),
        "batch": BATCH,
        "train_seconds": round(train_seconds, 2),
        "restart_seconds": round(restart_seconds, 2),
        **_refit(clf, known, train, test, new),
    }
    table(
        "intent classification",
        ["metric", "value"],
        [(k, json.dumps(v) if isinstance(v, dict) else v) for k, v in result.items() if k != "data"],
    )
    write_json(json_path, result)
    return result


def _without(data: LabelledExamples, intent: str | None) -> LabelledExamples:
    return LabelledExamples().extend((t, y) for t, y in zip(data.texts, data.labels, strict=True) if y != intent)


def _figures(results: Sequence[IntentResult], truth: Sequence[str]) -> dict[str, float | None]:
    inside = [(r, y) for r, y in zip(results, truth, strict=True) if y != OOS]
    outside = [r for r, y in zip(results, truth, strict=True) if y == OOS]
    flagged = [y for r, y in zip(results, truth, strict=True) if r.out_of_scope]
    return {
        "in_scope_accuracy": round(sum(r.top() == y for r, y in inside) / len(inside), 4) if inside else None,
        "oos_recall": round(sum(r.out_of_scope for r in outside) / len(outside), 4) if outside else None,
        "oos_precision": round(sum(y == OOS for y in flagged) / len(flagged), 4) if outside and flagged else None,
        "false_oos_rate": round(sum(r.out_of_scope for r, _ in inside) / len(inside), 4) if inside else None,
    }


def _refit(
    clf: IntentClassifier, known: LabelledExamples, train: LabelledExamples, test: LabelledExamples, new: str | None
) -> dict[str, Any]:
    """The new agent's examples added to the fitted model: how long, and the figures over every intent after."""
    if new is None:
        return {"refit_seconds": None, "new_intent": None, "after_refit": None}
    examples = [(t, new) for t, y in zip(train.texts, train.labels, strict=True) if y == new][:REFIT_EXAMPLES]
    t0 = time.perf_counter()
    grown = clf.extended(LabelledExamples().extend([*examples, *zip(known.texts, known.labels, strict=True)]))
    refit_seconds = time.perf_counter() - t0
    if grown is None:
        raise RuntimeError("the new agent's intent could not be added to the fitted model")
    results = [r for i in range(0, len(test.texts), BATCH) for r in grown.classify_many(test.texts[i : i + BATCH])]
    mine = [r.top() == new for r, y in zip(results, test.labels, strict=True) if y == new]
    return {
        "refit_seconds": round(refit_seconds, 3),
        "new_intent": new,
        "after_refit": _figures(results, test.labels) | {"new_intent_accuracy": round(sum(mine) / len(mine), 4)},
    }


@contextmanager
def _progress_bars() -> Iterator[Progress]:
    """A rich progress bar per step of a fit, fed by the classifier's progress callback."""
    tasks: dict[str, TaskID] = {}
    with ProgressBars(console=console) as bars:

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=max(total, 1))
            bars.update(tasks[step], completed=done)

        yield report
