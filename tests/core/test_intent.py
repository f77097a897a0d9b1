from swarm_route.core.intent import IntentClassifier, LabelledExamples
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
