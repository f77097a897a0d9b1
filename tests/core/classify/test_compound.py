"""Compound queries: cut where people join requests, kept only where the sides are about different things and
each is a request of its own; the rule that says so is chosen from joined and single examples."""

import numpy as np

from swarm_route.core.classify.compound import CutRule, Judge, choose_rule, cuts, join, split
from swarm_route.core.messages import IntentResult

WORDS = {"weather": ("weather", "rain", "forecast"), "flights": ("flight", "fly"), "math": ("sum", "multiply")}
GENERIC = ("help", "please")  # words every intent's requests use: a text of them alone is a diffuse guess
OPEN = CutRule(apart=0.9, surer=1.0)


def classify(texts):
    """A keyword classifier: the intent whose words a text holds, else out of scope; a text holding the words
    of several intents, or only generic words, is a blend, less sure than a text of one."""
    out = []
    for text in texts:
        hits = [i for i, words in WORDS.items() if any(w in text.lower() for w in words)]
        if not hits and any(w in text.lower() for w in GENERIC):
            hits = list(WORDS)
        if not hits:
            out.append(IntentResult({}, {}, 0.9, True))
        else:
            out.append(IntentResult({h: 1 / len(hits) for h in hits}, {}, 0.1 * len(hits), False))
    return out


def profile(text):
    return np.array([sum(w in text.lower() for w in words) for words in WORDS.values()], dtype=float) + 1e-9


def likeness(options):
    """Cosine of the sides' keyword profiles: one topic gives 1, two disjoint ones 0."""
    out = []
    for left, right in options:
        a, b = profile(left), profile(right)
        out.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    return np.array(out)


JUDGE = Judge(classify, likeness)


def test_cuts_need_two_sides_of_some_length():
    assert cuts("salt and pepper") == []
    assert cuts("book me a flight to Rome and what is the weather there") == [
        ("book me a flight to Rome", "what is the weather there")
    ]
    assert cuts("Book a flight to Rome. Then, tell me the forecast for Rome") == [
        ("Book a flight to Rome.", "tell me the forecast for Rome")
    ]


def test_two_requests_become_two_needs_each_named_with_its_part():
    query = "book me a flight to Rome and what is the weather there"
    r = split(query, classify([query])[0], JUDGE, OPEN)
    assert set(r.weights) == {"flights", "weather"} and not r.out_of_scope
    assert r.set_floor == classify([query])[0].set_floor, "other intents still clear the whole's floor"
    assert r.parts == {"flights": "book me a flight to Rome", "weather": "what is the weather there"}
    assert split(query, classify([query])[0], JUDGE, CutRule()) == classify([query])[0], "the default cuts nothing"


def test_a_single_need_said_with_and_stays_whole():
    query = "show me the weather and the rain forecast for Paris"
    whole = classify([query])[0]
    assert split(query, whole, JUDGE, OPEN) is whole  # both sides want the same intent
    query = "what is the weather like today and tomorrow please"
    whole = classify([query])[0]
    assert split(query, whole, JUDGE, OPEN) is whole  # one side is no request of its own


def test_a_generic_tail_is_not_a_second_request():
    query = "find me a flight to Lima. Can you help me with that?"
    whole = classify([query])[0]
    assert split(query, whole, JUDGE, OPEN) is whole, "the tail is a diffuse guess, less sure than the whole"
    assert split(query, whole, JUDGE, CutRule(apart=0.9, surer=0.0)).parts, "a rule asking no sureness cuts it"


def test_sides_about_one_thing_are_not_cut():
    query = "book me a flight to Rome and what is the weather there"
    whole = classify([query])[0]
    assert split(query, whole, Judge(classify, lambda options: np.ones(len(options))), OPEN) is whole


def test_three_requests_and_a_repeated_one():
    query = "find a flight to Oslo, and also the sum of 2 and 3 plus what is the forecast in Oslo"
    r = split(query, classify([query])[0], JUDGE, OPEN)
    assert set(r.parts) == {"flights", "math", "weather"}
    query = "book a flight to Rome and then find another flight back home"
    whole = classify([query])[0]
    assert split(query, whole, JUDGE, OPEN) is whole


def test_a_screen_that_sees_one_intent_on_both_sides_spares_the_classification():
    query = "book me a flight to Rome and what is the weather there"
    asked: list[str] = []

    def counted(texts):
        asked.extend(texts)
        return classify(texts)

    whole = classify([query])[0]
    assert split(query, whole, Judge(counted, likeness, lambda texts: ["flights"] * len(texts)), OPEN) is whole
    assert asked == []  # no side was classified: the screen saw one intent
    r = split(query, whole, Judge(counted, likeness, lambda texts: [c.top() for c in classify(texts)]), OPEN)
    assert set(r.parts) == {"flights", "weather"} and asked  # a screen that tells them apart lets the cut through


def test_join_writes_two_requests_as_people_do():
    assert join("Book a flight to Rome.", "What is the weather there?", " and ") == (
        "Book a flight to Rome and what is the weather there?"
    )
    assert join("Book a flight to Rome", "I need the forecast", ". Also, ") == (
        "Book a flight to Rome. Also, I need the forecast"
    )
    assert join("Book a flight", "NASA launches today?", " and then ") == "Book a flight and then NASA launches today?"


def test_the_rule_is_chosen_from_single_and_joined_examples():
    texts = [
        "book a flight to Rome please",
        "fly me to Oslo tomorrow",
        "cheap flight to Lima today",
        "weather in Paris this week",
        "will it rain in Quito",
        "forecast for Cairo tomorrow",
        "sum of 4 and 5 now",
        "multiply 6 by 7 for me",
        "the sum of these three numbers",
        "a flight please, can you help me",
    ]
    labels = ["flights"] * 3 + ["weather"] * 3 + ["math"] * 3 + ["flights"]
    rule = choose_rule(texts, labels, JUDGE, 30, max_false_cut=0.05)
    assert -1 < rule.apart <= 1.0 and rule.surer > 0.0, "joined pairs get cut, a generic tail does not"
    query = "book me a flight to Rome and what is the weather there"
    assert split(query, classify([query])[0], JUDGE, rule).parts
    assert choose_rule(texts[:3], labels[:3], JUDGE, 30, 0.05) == CutRule(), "one intent: nothing to cut"
    # one single request that reads like two (a flight, and the forecast to pack for it): any rule cutting the
    # joined pairs cuts it too, which 1 in 11 may be but 0 may not
    texts, labels = [*texts, "fly me to Rome and also the rain forecast there"], [*labels, "flights"]
    assert choose_rule(texts, labels, JUDGE, 30, max_false_cut=0.1).apart > -1
    assert choose_rule(texts, labels, JUDGE, 30, max_false_cut=0.0) == CutRule()
