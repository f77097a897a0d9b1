import zlib

import numpy as np
import pytest

from swarm_route.core.classify.intent import IntentClassifier, LabelledExamples, load_intent_files, training_set
from tests.core.helpers import MATH, WEATHER, agent


def classifier() -> IntentClassifier:
    agents = [agent("weather", "weather", WEATHER), agent("math", "math", MATH)]
    return IntentClassifier(oos_threshold=0.3).fit(LabelledExamples.from_agents(agents))


def test_weights_point_at_the_matching_intent_and_sum_to_one():
    c = classifier()
    r = c.classify("what's the weather forecast for Berlin tomorrow")
    assert r.top() == "weather" and not r.out_of_scope
    assert abs(sum(r.weights.values()) - 1) < 1e-3
    assert classifier().classify("compute 12 times 4").top() == "math"


def test_unrelated_query_is_out_of_scope():
    r = classifier().classify("zxqv blorp")
    assert r.out_of_scope and r.weights == {} and r.oos_score > 0.7


def test_empty_classifier_declines_everything():
    r = IntentClassifier().fit(LabelledExamples()).classify("anything")
    assert r.out_of_scope and r.top() is None


def test_a_new_intent_is_learned_from_its_examples_alone():
    agents = [agent("weather", "weather", WEATHER), agent("math", "math", MATH)]
    before = IntentClassifier().fit(LabelledExamples.from_agents(agents)).classify("translate hello into french")
    agents.append(agent("translate", "translation", ["translate this into french", "how do you say hello in german"]))
    after = IntentClassifier().fit(LabelledExamples.from_agents(agents)).classify("translate hello into french")
    assert before.top() != "translation" and after.top() == "translation"


def labelled(pairs):
    return LabelledExamples().extend(pairs)


TRAIN = (
    [(t, "weather") for t in WEATHER]
    + [(t, "math") for t in MATH]
    + [
        ("book a table for two tonight", "booking"),
        ("reserve a restaurant", "booking"),
        ("make a dinner reservation", "booking"),
        ("table for four at eight", "booking"),
    ]
)


def test_threshold_is_chosen_on_validation_data_with_out_of_scope_examples():
    val = labelled(
        [
            ("is it going to rain in rome", "weather"),
            ("what is 6 times 7", "math"),
            ("reserve a table tomorrow", "booking"),
            ("sing me a song", "oos"),
            ("who painted the mona lisa", "oos"),
            ("tell me about black holes", "oos"),
        ]
    )
    clf = IntentClassifier().fit(labelled(TRAIN), val)
    results = clf.classify_many(val.texts)
    assert [r.top() for r in results[:3]] == ["weather", "math", "booking"]
    assert sum(r.out_of_scope for r in results[3:]) >= 2  # the best split the validation data allows
    assert results[0].oos_score < 0.5 < results[3].oos_score


def test_without_validation_data_the_threshold_comes_from_cross_validation():
    clf = IntentClassifier().fit(labelled(TRAIN))
    assert clf.threshold != 0.0
    assert clf.classify("will it be sunny tomorrow").top() == "weather"


OOS_TRAIN = [*TRAIN, ("tell me a joke", "oos"), ("sing a song", "oos"), ("what is love", "oos")]


def test_with_an_explicit_oos_class_in_scope_means_leading_it_and_it_is_never_an_intent():
    clf = IntentClassifier(oos_threshold=-0.5).fit(labelled(OOS_TRAIN))
    assert "oos" not in clf.intents
    joke, rain = clf.classify_many(["tell me a funny joke", "will it rain in berlin tomorrow"])
    assert joke.out_of_scope and not rain.out_of_scope
    lead = IntentClassifier(oos_threshold=-0.5).fit(labelled(TRAIN)).classify("tell me a funny joke")
    assert not lead.out_of_scope, "without the oos class the same threshold lets the joke in"


class WordEmbedder:
    """A stand-in sentence encoder (bag of hashed words), so the slow path runs without the model."""

    def encode(self, texts, batch_size=128):
        out = np.zeros((len(texts), 64))
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class TunableWordEmbedder(WordEmbedder):
    """Records what it was fine-tuned on; the copy it returns encodes like the original."""

    def __init__(self) -> None:
        self.tuned_on: list[tuple[int, int]] = []

    def tuned(self, texts, labels, epochs, lr, progress=None, cache_dir=None):
        self.tuned_on.append((len(texts), epochs))
        return WordEmbedder()


def test_the_encoder_is_fine_tuned_only_on_enough_examples_with_held_out_data_to_choose_thresholds():
    val = labelled([("is it going to rain in rome", "weather"), ("what is 6 times 7", "math")])
    train = labelled(OOS_TRAIN)
    base = TunableWordEmbedder()
    tuned = IntentClassifier(embedder=base, tune_min_examples=len(train.texts), tune_epochs=2).fit(train, val)
    assert base.tuned_on == [(len(train.texts), 2)]
    assert tuned.embedder is not base and type(tuned.embedder) is WordEmbedder, "a copy; the original stays"
    for clf in (
        IntentClassifier(embedder=base, tune_min_examples=len(train.texts) + 1).fit(train, val),  # too few
        IntentClassifier(embedder=base, tune_min_examples=1).fit(train),  # no held-out data: simulation
        IntentClassifier(embedder=base, tune_min_examples=1, tune_epochs=0).fit(train, val),  # switched off
    ):
        assert clf.embedder is base
    assert len(base.tuned_on) == 1


def test_queries_the_lexical_path_decides_are_measured_against_its_own_cut():
    val = labelled([("is it going to rain in rome", "weather"), ("what is 6 times 7", "math"), ("hum a tune", "oos")])
    clf = IntentClassifier(embedder=WordEmbedder()).fit(labelled(OOS_TRAIN), val)
    clf.fast_accept, clf.lexical_threshold, clf.threshold = -5.0, -5.0, 1e9  # everything fast; slow path refuses all
    fast = clf.classify("weather forecast for tomorrow")
    assert not fast.out_of_scope and fast.oos_score < 0.5 and clf.slow_share == 0
    clf.fast_accept = 1e9  # now everything takes the slow path and meets its threshold
    slow = clf.classify("weather forecast for tomorrow")
    assert slow.out_of_scope and clf.slow_share == 1


def test_the_slow_share_is_of_the_batchs_queries_not_of_the_parts_tried(monkeypatch):
    clf = IntentClassifier(embedder=WordEmbedder()).fit(labelled(OOS_TRAIN))
    whole, real = [], clf._classify_many

    def parts_go_slow(queries, encode=None):
        results = real(queries, encode)
        whole.append(queries)
        clf.slow_share = 0.0 if len(whole) == 1 else 1.0
        return results

    monkeypatch.setattr(clf, "_classify_many", parts_go_slow)
    clf.classify_many(["weather forecast for tomorrow", "divide 9 by 3 and then tell me the forecast for paris"])
    assert len(whole) > 1 and clf.slow_share == 0.0, "a cut was tried; its sides are not queries of the batch"


def test_batch_and_single_agree_and_one_intent_still_works():
    clf = IntentClassifier(oos_threshold=0.0).fit(labelled(TRAIN))
    queries = ["forecast for paris", "7 times 8", "a table for two"]
    batch, single = clf.classify_many(queries), [clf.classify(q) for q in queries]
    assert [r.top() for r in batch] == [r.top() for r in single]
    for b, s in zip(batch, single, strict=True):  # a lone query is scored without a sparse matrix: the same figures
        assert b.similarity == pytest.approx(s.similarity, abs=1e-4) and b.weights == pytest.approx(s.weights, abs=1e-4)
    solo = IntentClassifier(oos_threshold=-0.5).fit(labelled([(t, "weather") for t in WEATHER]))
    assert solo.classify("weather forecast tomorrow").top() == "weather"
    assert solo.classify("zzz qqq").out_of_scope


def test_held_out_evidence_calibrates_the_temperature_and_the_set_floor():
    loose = IntentClassifier(set_coverage=0.99).fit(labelled(TRAIN))
    tight = IntentClassifier(set_coverage=0.5).fit(labelled(TRAIN))
    assert loose.temperature != 0.1, "the temperature is fitted, not the default"
    assert 0 < loose.set_floor <= tight.set_floor < 1, "more coverage asks for a lower floor (larger sets)"
    assert loose.classify("will it rain").set_floor == loose.set_floor


def test_a_large_training_set_without_validation_holds_a_slice_out(monkeypatch):
    import swarm_route.core.classify.intent as intent

    monkeypatch.setattr(intent, "CV_LIMIT", 10)
    data = labelled(TRAIN * 5 + [("a lone example", "lonely")])
    clf = IntentClassifier().fit(data)
    assert "lonely" in clf.intents, "every label keeps its first example in training"
    assert clf.threshold != 0.0 and clf.temperature != 0.1, "thresholds came from the held-out slice"


def test_past_traffic_names_agents_and_trains_their_skills(tmp_path):
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text('{"query": "is it hailing", "agents": ["forecaster"]}\n{"query": "hello", "agents": []}\n')
    files = load_intent_files([str(traffic)])
    assert files.train.labels == ["forecaster", "oos"] and not files.val.texts
    forecaster = agent("forecaster", "weather", WEATHER)
    data = training_set([forecaster], files.train)
    assert ("is it hailing", "weather") in zip(data.texts, data.labels, strict=True)


class TableEmbedder:
    """Embeddings laid out by hand, so a test can place a query on an intent's side but far from it."""

    def __init__(self, table):
        self.table = table

    def encode(self, texts, batch_size=128):
        return np.array([self.table[t] for t in texts])


def test_neighbour_density_is_weighed_on_held_out_data_and_moves_only_how_in_scope_a_query_is(monkeypatch):
    import swarm_route.core.classify.intent as intent

    rng, axes = np.random.default_rng(0), np.eye(8)
    table, train, val = {}, LabelledExamples(), LabelledExamples()

    def put(text, vector, label, into):
        v = vector + rng.normal(0, 0.05 if into is train else 0.3, 8)
        table[text] = v / np.linalg.norm(v)
        into.add(label, [text])

    for i in range(30):
        for word, axis, label in (("alpha", 0, "weather"), ("beta", 1, "math"), ("gamma", 2, "oos")):
            put(f"{word} {i}", axes[axis], label, train if i < 20 else val)
        if i >= 20:  # out of scope: on weather's side of the planes, as in scope as some of it, near none of it
            put(f"delta {i}", axes[0] - axes[2] + axes[3] + axes[4], "oos", val)

    def fitted(train, val):  # the table knows no joined compound queries: not cut
        return IntentClassifier(embedder=TableEmbedder(table), compound=False).fit(train, val)

    clf = fitted(train, val)
    model = clf._model
    assert model.density_share in intent.DENSITY_SHARES and model.density_share > 0

    clf.fast_accept, clf.threshold = np.inf, -np.inf  # every query on the embedding path, and accepted
    near, far = "alpha 21", "delta 22"
    lexical, embedded = model.scores([near, far]), clf.embedder.encode([near, far])
    weighed = clf.classify_many([near, far])
    shift = model.combined(lexical, embedded)
    share, model.density_share = model.density_share, 0.0
    plain = clf.classify_many([near, far])
    unshifted = model.combined(lexical, embedded)
    shift -= unshifted
    assert [r.weights for r in weighed] == [r.weights for r in plain], "one shift for every intent: same weights"
    assert shift[0, model.oos] == 0 and shift[0, model.in_scope].min() > shift[1, model.in_scope].max() > 0
    assert np.allclose(shift[:, model.in_scope], share * model.density(embedded, unshifted)[:, None])
    nearest_weather = np.sort(clf.embedder.encode([f"alpha {i}" for i in range(20)]) @ embedded[1])[-5:].mean()
    assert np.isclose(model.density(embedded, unshifted)[1], nearest_weather), "the far query's best intent's examples"

    without_oos = LabelledExamples().extend(p for p in zip(val.texts, val.labels, strict=True) if p[1] != "oos")
    assert fitted(train, without_oos)._model.density_share == 0
    monkeypatch.setattr(intent, "DENSITY_SHARES", (0.0,))
    assert fitted(train, val)._model.density_share == 0


def test_the_lexical_path_is_not_trusted_alone_where_it_would_have_answered_out_of_scope_queries():
    lookalike = "what's the weather in berlin tomorrow"  # held out as out of scope, worded like the weather examples
    val = labelled(
        [
            ("is it going to rain in rome", "weather"),
            ("what is 6 times 7", "math"),
            ("reserve a table tomorrow", "booking"),
            ("will it snow in oslo", "weather"),
            ("add 3 and 4", "math"),
            (lookalike, "oos"),
        ]
    )
    clf = IntentClassifier(embedder=WordEmbedder()).fit(labelled(OOS_TRAIN), val)
    lexical_best = clf._model.scores([lookalike])[0, clf._model.in_scope].max()
    assert lexical_best < clf.fast_accept, "an out-of-scope query it would answer counts against its precision"
    clf.classify(lookalike)
    assert clf.slow_share == 1


def test_a_new_agents_intent_is_added_to_a_fitted_model_without_refitting_the_others():
    base = labelled(TRAIN)
    fitted = IntentClassifier(oos_threshold=-10, embedder=WordEmbedder()).fit(base)
    translation = [("translate this into french", "translation"), ("how do you say hello in german", "translation")]
    grown = fitted.extended(labelled([*translation, *TRAIN]))  # the agent's examples come first in a registry
    assert grown is not None and grown is not fitted
    assert grown.intents == [*fitted.intents, "translation"] and grown.examples == fitted.examples + 2
    assert grown.classify("translate good morning into french").top() == "translation"
    assert fitted.classify("translate good morning into french").top() != "translation", "the original is as it was"
    for query in ("is it going to rain in rome", "what is 6 times 7", "book a table for two"):
        assert grown.classify(query).top() == fitted.classify(query).top()
    assert grown.threshold == fitted.threshold and grown.set_floor == fitted.set_floor


def test_anything_but_new_intents_needs_a_full_refit():
    fitted = IntentClassifier(embedder=WordEmbedder()).fit(labelled(TRAIN))
    assert fitted.extended(labelled(TRAIN[::-1])) is fitted, "the same examples in another order: nothing to learn"
    assert fitted.extended(labelled(TRAIN[1:])) is None, "an example removed"
    assert fitted.extended(labelled([*TRAIN, ("will it snow", "weather")])) is None, "a known intent's examples"
    assert IntentClassifier().extended(labelled(TRAIN)) is None, "never fitted"


def test_the_encoder_is_tuned_on_the_operators_files_alone_when_told_so():
    val = labelled([("is it going to rain in rome", "weather"), ("what is 6 times 7", "math")])
    files = labelled(OOS_TRAIN)
    registered = [("translate this into french", "translation"), ("say hello in german", "translation")]
    base = TunableWordEmbedder()
    IntentClassifier(embedder=base, tune_min_examples=1).fit(labelled([*registered, *OOS_TRAIN]), val, tune_on=files)
    assert base.tuned_on == [(len(files.texts), 2)], "a registration's examples never change what is tuned"


def test_a_query_the_lexical_path_decides_alone_is_not_cut(monkeypatch):
    """The fast path answers where it is sure of one intent on held-out queries: such a query is not cut
    into parts (trying cuts costs a lexical pass per side, on a long prompt several milliseconds)."""
    from swarm_route.core.classify import intent as module

    data = LabelledExamples()
    data.add("weather", ["what is the weather in Paris", "will it rain tomorrow", "forecast for Oslo"])
    data.add("flights", ["book a flight to Rome", "find flights to Tokyo", "cheapest flight to Berlin"])
    clf = IntentClassifier(oos_threshold=-np.inf, embedder=None).fit(data)
    classes = len(clf._model.classes)
    clf._model.dense = (np.zeros((4, classes)), np.zeros(classes))
    clf.embedder = type("Flat", (), {"encode": staticmethod(lambda texts: np.ones((len(texts), 4)) / 2)})()
    tried: list[str] = []
    monkeypatch.setattr(module, "split", lambda query, whole, *_: tried.append(query) or whole)
    query = "book a flight to Rome and what is the weather in Paris"
    clf.fast_accept = -np.inf  # the lexical path decides every query
    clf.classify(query)
    assert tried == []
    clf.fast_accept = np.inf  # none
    clf.classify(query)
    assert tried == [query]


def test_the_compound_cut_rule_is_chosen_on_examples_the_judging_model_never_saw(monkeypatch):
    """A model judging its own training examples is sure of all of them and flatters a rule that cuts too
    much: without validation data the rule is chosen on a simulated fold, by the fold's model."""
    from swarm_route.core.classify import intent as module

    chosen_on, judges = [], []
    judge = IntentClassifier._judge

    def spy_judge(self):
        judges.append(self._model)
        return judge(self)

    def spy(texts, labels, judge, count, max_false_cut):
        chosen_on.append(list(texts))
        return module.CutRule()

    monkeypatch.setattr(module, "choose_rule", spy)
    monkeypatch.setattr(IntentClassifier, "_judge", spy_judge)
    data = labelled(TRAIN)
    clf = IntentClassifier().fit(data)
    assert chosen_on[0] and set(chosen_on[0]) < set(data.texts) and len(chosen_on[0]) < len(data.texts) / 2
    assert judges[0] is not None and judges[0] is not clf._model, "judged by the fold's model, not the final one"
    val = labelled(TRAIN[::2])
    clf = IntentClassifier().fit(data, val)
    assert chosen_on[1] == val.texts and judges[1] is clf._model, "validation data when there is some"
