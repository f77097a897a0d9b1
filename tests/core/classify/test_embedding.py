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


def test_the_encoders_threads_do_not_spin_after_a_run():
    """Spinning pool threads burned ~24 ms of CPU after each query encoded, taken from the other replicas."""
    options = embedder._runtime._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_long_texts_are_encoded_in_small_batches_with_the_same_vectors(monkeypatch):
    runtime = embedder._runtime
    texts = [f"question {i}: " + "which of these is a renewable source of energy? " * 40 for i in range(20)]
    texts += ["what is the weather", "hi"]
    expected = embedder._model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    shapes = []
    run = runtime._session.run

    def counted(names, feeds):
        shapes.append(next(iter(feeds.values())).shape)
        return run(names, feeds)

    monkeypatch.setattr(runtime, "_session", type("S", (), {"run": staticmethod(counted)})())
    assert np.allclose(runtime.encode(texts), expected, atol=1e-5)
    long_batches = [rows for rows, tokens in shapes if tokens >= 256]
    assert long_batches and max(long_batches) <= embedding.BATCH_CHARS // 1900, "not 20 long texts in one batch"
    assert len(shapes) > 1 and sum(rows for rows, _ in shapes) == len(texts)


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
    tuned = embedder.tuned(texts, labels, epochs=10, lr=1e-4)  # one batch an epoch
    after = tuned.encode(texts[:4])
    np.testing.assert_allclose(embedder.encode(texts[:4]), before, atol=1e-5)
    assert np.allclose(np.linalg.norm(after, axis=1), 1, atol=1e-4)
    # closer within a label and further across labels than before
    within, across = (0, 1), (0, 2)
    assert after[within[0]] @ after[within[1]] > before[within[0]] @ before[within[1]]
    assert after[across[0]] @ after[across[1]] < before[across[0]] @ before[across[1]]


def test_tuning_reports_progress_and_its_vectors_are_what_the_tuned_encoder_computes():
    texts = ["how warm will it be tomorrow", "what is 12 divided by 4", "is rain expected", "add 7 and 5"] * 20
    labels = ["weather", "math"] * 40
    heard: list[tuple[str, int, int]] = []
    tuned = embedder.tuned(texts, labels, epochs=1, lr=1e-4, progress=lambda *step: heard.append(step))
    assert {what for what, _, _ in heard} == {"encoding (frozen layers)", "tuning the encoder, epoch 1/1"}
    assert heard[-1][1] == heard[-1][2], "the last step reports the work done"
    remembered = tuned.encode(texts[:4])  # computed while tuning, from the frozen layers' cached output
    fresh = tuned._runtime.encode(texts[:4])  # the tuned model exported and run like any query
    np.testing.assert_allclose(remembered, fresh, atol=1e-5)
    assert tuned.encode(["a query it never saw"]).shape == (1, 384)


def test_an_encoder_that_cannot_be_cut_into_layers_is_left_untuned(monkeypatch, caplog):
    def other_architecture(bert, layers):
        raise AttributeError("'T5Stack' object has no attribute 'layer'")

    monkeypatch.setattr(embedding, "_split_at", other_architecture)
    assert embedder.tuned(["a", "b"], ["x", "y"], epochs=1, lr=1e-4) is embedder
    assert "not fine-tuned" in caplog.text


def test_a_tuned_encoder_is_cached_by_what_it_was_tuned_on(tmp_path, monkeypatch):
    texts = ["how warm will it be tomorrow", "what is 12 divided by 4"] * 16
    labels = ["weather", "math"] * 16
    first = embedder.tuned(texts, labels, epochs=1, lr=1e-4, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1

    def no_tuning(*args):
        raise AssertionError("tuned again although cached")

    monkeypatch.setattr(embedding, "_tune", no_tuning)
    again = embedder.tuned(texts, labels, epochs=1, lr=1e-4, cache_dir=tmp_path)
    assert again.name == first.name
    np.testing.assert_allclose(again.encode(["is rain expected"]), first.encode(["is rain expected"]), atol=1e-5)
    monkeypatch.undo()
    other = embedder.tuned(texts, labels[::-1], epochs=1, lr=1e-4, cache_dir=tmp_path)  # other labels: tuned anew
    assert other.name != first.name and len(list(tmp_path.iterdir())) == 2

    (tmp_path / first.name / "vectors.npy").write_bytes(b"damaged")
    healed = embedder.tuned(texts, labels, epochs=1, lr=1e-4, cache_dir=tmp_path)
    assert healed.name == first.name and np.load(tmp_path / first.name / "vectors.npy").shape == (32, 384)


def test_only_the_most_recently_used_tuned_encoders_are_kept(tmp_path):
    texts, labels = ["add 7 and 5", "is rain expected"] * 16, ["math", "weather"] * 16
    names = [embedder.tuned(texts, labels, epochs=1, lr=lr, cache_dir=tmp_path).name for lr in (1e-5, 2e-5, 3e-5, 4e-5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[-embedding.CACHE_KEEP :])
