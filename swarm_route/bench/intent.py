"""``swarm-route bench intent``: accuracy, out-of-scope detection and speed of the intent classifier.

On a file in the CLINC150 layout it trains on ``train`` (+ ``oos_train``), chooses the out-of-scope
threshold on ``val``/``oos_val``, and reports on ``test``/``oos_test``. Empty ``oos_*`` lists are fine:
the out-of-scope figures are then null.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from swarm_route.bench.report import console, percentiles, table, write_json
from swarm_route.config import Settings
from swarm_route.core.classify.embedding import default_embedder
from swarm_route.core.classify.intent import OOS, labelled_split
from swarm_route.wiring import intent_classifier

BATCH = 64


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
    console.print(
        f"intent bench: {len(train.texts)} train / {len(val.texts)} val / {len(test.texts)} test, "
        f"{len(set(train.labels) - {OOS})} intents"
    )

    t0 = time.perf_counter()
    embedder = default_embedder() if embeddings else None
    clf = intent_classifier(settings or Settings(), embedder).fit(train, val if val.texts else None)
    train_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    results, slow = [], 0.0
    for i in range(0, len(test.texts), BATCH):
        batch = test.texts[i : i + BATCH]
        results.extend(clf.classify_many(batch))
        slow += clf.slow_share * len(batch)
    throughput = len(test.texts) / (time.perf_counter() - t0)

    single = []
    sample = random.Random(0).sample(test.texts, min(latency_samples, len(test.texts)))  # the file may be sorted
    for text in sample:
        t = time.perf_counter()
        clf.classify(text)
        single.append((time.perf_counter() - t) * 1000)

    inside = [(r, y) for r, y in zip(results, test.labels, strict=True) if y != OOS]
    outside = [r for r, y in zip(results, test.labels, strict=True) if y == OOS]
    flagged = [y for r, y in zip(results, test.labels, strict=True) if r.out_of_scope]
    result: dict[str, Any] = {
        "data": str(path),
        "intents": len(set(train.labels) - {OOS}),
        "train": len(train.texts),
        "test": len(test.texts),
        "in_scope_accuracy": round(sum(r.top() == y for r, y in inside) / len(inside), 4) if inside else None,
        "oos_recall": round(sum(r.out_of_scope for r in outside) / len(outside), 4) if outside else None,
        "oos_precision": round(sum(y == OOS for y in flagged) / len(flagged), 4) if outside and flagged else None,
        "false_oos_rate": round(sum(r.out_of_scope for r, _ in inside) / len(inside), 4) if inside else None,
        "threshold": round(clf.threshold, 4),
        "embeddings": embedder is not None,
        "slow_path_share": round(slow / len(test.texts), 4),
        "latency_ms": percentiles(single[10:] or single),
        "throughput_qps": round(throughput, 1),
        "batch": BATCH,
        "train_seconds": round(train_seconds, 2),
    }
    table(
        "intent classification",
        ["metric", "value"],
        [(k, json.dumps(v) if isinstance(v, dict) else v) for k, v in result.items() if k != "data"],
    )
    write_json(json_path, result)
    return result
