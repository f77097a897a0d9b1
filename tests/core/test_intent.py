from swarm_route.core.intent import IntentClassifier, LabelledExamples, load_intent_files, training_set
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


def test_an_explicit_oos_class_vetoes_and_is_never_an_intent():
    clf = IntentClassifier(oos_threshold=-10).fit(
        labelled([*TRAIN, ("tell me a joke", "oos"), ("sing a song", "oos"), ("what is love", "oos")])
    )
    assert "oos" not in clf.intents
    assert clf.classify("tell me a funny joke").out_of_scope


def test_batch_and_single_agree_and_one_intent_still_works():
    clf = IntentClassifier(oos_threshold=0.0).fit(labelled(TRAIN))
    queries = ["forecast for paris", "7 times 8", "a table for two"]
    assert [r.top() for r in clf.classify_many(queries)] == [clf.classify(q).top() for q in queries]
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
    import swarm_route.core.intent as intent

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
