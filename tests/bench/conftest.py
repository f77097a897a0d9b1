"""What the benchmark tests share: a small routing matrix where the right answer is known."""

import csv
import random

import pytest

TOPICS = {
    "algebra": ["solve for x in the linear equation", "factor the quadratic polynomial", "simplify the fraction"],
    "history": ["which empire built the aqueduct", "when did the medieval war end", "who crowned the king"],
}


@pytest.fixture
def matrix(tmp_path):
    """Two experts, each cheap and right on its own topic only, and a dear generalist right on both."""
    rng = random.Random(3)
    path = tmp_path / "topics_train.csv"
    models = ["math-expert", "history-expert", "generalist"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "sample_id",
                "prompt",
                "eval_name",
                *models,
                *(f"{m}|model_response" for m in models),
                *(f"{m}|total_cost" for m in models),
            ]
        )
        for i in range(160):
            topic = "algebra" if i % 2 else "history"
            prompt = f"{rng.choice(TOPICS[topic])} number {i} {rng.choice(['please', 'now', 'quickly'])}"
            scores = [float(topic == "algebra"), float(topic == "history"), float(rng.random() < 0.85)]
            w.writerow([f"t.{i}", prompt, topic, *scores, "a", "b", "c", 0.001, 0.001, 0.02])
    return path
