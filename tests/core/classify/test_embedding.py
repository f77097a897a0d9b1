"""The real MiniLM from the wheel, and the classifier's slow path on it."""

import numpy as np
import pytest

from swarm_route.core.classify import embedding
from swarm_route.core.classify.embedding import default_embedder
from swarm_route.core.classify.intent import IntentClassifier, LabelledExamples
from tests.core.helpers import MATH, WEATHER

embedder = default_embedder()
pytestmark = pytest.mark.skipif(embedder is None, reason="sentence-transformers or the MiniLM wheel missing")


def test_embeddings_are_unit_vectors_that_know_synonyms():
    e = embedder.encode(["how warm will it be tomorrow", "temperature forecast for tomorrow", "divide 9 by 3"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_the_exported_encoder_gives_the_torch_pipelines_vectors_in_any_batching():
    assert embedder._runtime is not None, "onnxruntime is a dependency: the slow path should not fall back"
    texts = ["weather", "what will the weather be like in paris on friday afternoon", "", "divide 9 by 3"]
    texts.append(" ".join(["long"] * 400))  # past the encoder's 256 tokens: truncated as torch truncates
    expected = embedder._model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    assert np.allclose(embedder.encode(texts), expected, atol=1e-5)
    assert np.allclose(embedder.encode(texts, batch_size=2), expected, atol=1e-5)


def test_without_an_export_torch_encodes(monkeypatch):
    def fail(model):
        raise ImportError("no onnxruntime")

    monkeypatch.setattr(embedding, "ExportedEncoder", fail)
    fallback = embedding.SentenceEmbedder(model=embedder._model)
    assert fallback._runtime is None
    assert np.allclose(fallback.encode(["divide 9 by 3"]), embedder.encode(["divide 9 by 3"]), atol=1e-5)


def test_slow_path_classifies_what_shares_no_words_with_the_examples():
    data = LabelledExamples()
    data.add("weather", WEATHER)
    data.add("math", MATH)
    data.add("booking", ["book a table for two tonight", "reserve a restaurant", "make a dinner reservation"])
    query = "do I need an umbrella"  # no word in common with any weather example
    semantic = IntentClassifier(oos_threshold=-10, embedder=embedder).fit(data).classify(query)
    lexical = IntentClassifier(oos_threshold=-10).fit(data).classify(query)
    assert semantic.top() == "weather" != lexical.top()


def test_a_fine_tuned_copy_pulls_its_labels_apart_and_leaves_the_original_as_it_was():
    texts = [
        "how warm will it be tomorrow",
        "is rain expected this weekend",
        "what is 12 divided by 4",
        "add 7 and 5 for me",
    ] * 8
    labels = ["weather", "weather", "math", "math"] * 8
    before = embedder.encode(texts[:4])
    tuned = embedder.tuned(texts, labels, epochs=2, lr=1e-4)
    after = tuned.encode(texts[:4])
    np.testing.assert_allclose(embedder.encode(texts[:4]), before, atol=1e-5)
    assert np.allclose(np.linalg.norm(after, axis=1), 1, atol=1e-4)
    # closer within a label and further across labels than before
    within, across = (0, 1), (0, 2)
    assert after[within[0]] @ after[within[1]] > before[within[0]] @ before[within[1]]
    assert after[across[0]] @ after[across[1]] < before[across[0]] @ before[across[1]]
