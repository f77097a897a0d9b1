"""Compound queries: cut where people join requests, kept only where both sides want intents of their own."""

from swarm_route.core.classify.compound import cuts, split
from swarm_route.core.messages import IntentResult

WORDS = {"weather": ("weather", "rain", "forecast"), "flights": ("flight", "fly"), "math": ("sum", "multiply")}


def classify(texts):
    """A keyword classifier: the intent whose words a text holds, else out of scope; a text holding the words
    of several intents is a blend, less surely in scope than a text of one."""
    out = []
    for text in texts:
        hits = [i for i, words in WORDS.items() if any(w in text.lower() for w in words)]
        if not hits:
            out.append(IntentResult({}, {}, 0.9, True))
        else:
            out.append(IntentResult({h: 1 / len(hits) for h in hits}, {}, 0.1 * len(hits), False))
    return out


def test_cuts_need_two_sides_of_some_length():
    assert cuts("salt and pepper") == []
    assert cuts("book me a flight to Rome and what is the weather there") == [
        ("book me a flight to Rome", "what is the weather there")
    ]
    assert cuts("Book a flight to Rome. Then, tell me the forecast for Rome") == [
        ("Book a flight to Rome.", "tell me the forecast for Rome")
    ]


def test_two_requests_become_two_needs_each_clearing_the_floor():
    query = "book me a flight to Rome and what is the weather there"
    r = split(query, classify([query])[0], classify)
    assert set(r.weights) == {"flights", "weather"} and not r.out_of_scope
    assert all(r.weights[t] >= r.set_floor for t in ("flights", "weather"))
    assert r.parts == {"flights": "book me a flight to Rome", "weather": "what is the weather there"}


def test_a_single_need_said_with_and_stays_whole():
    query = "show me the weather and the rain forecast for Paris"
    whole = classify([query])[0]
    assert split(query, whole, classify) is whole  # both sides want the same intent
    query = "what is the weather like today and tomorrow please"
    whole = classify([query])[0]
    assert split(query, whole, classify) is whole  # one side is no request of its own


def test_three_requests_and_a_repeated_one():
    query = "find a flight to Oslo, and also the sum of 2 and 3 plus what is the forecast in Oslo"
    r = split(query, classify([query])[0], classify)
    assert set(r.parts) == {"flights", "math", "weather"}
    query = "book a flight to Rome and then find another flight back home"
    whole = classify([query])[0]
    assert split(query, whole, classify) is whole


def test_a_screen_that_sees_one_intent_on_both_sides_spares_the_classification():
    query = "book me a flight to Rome and what is the weather there"
    asked: list[str] = []

    def counted(texts):
        asked.extend(texts)
        return classify(texts)

    whole = classify([query])[0]
    assert split(query, whole, counted, screen=lambda texts: ["flights"] * len(texts)) is whole
    assert asked == []  # no side was classified: the screen saw one intent
    r = split(query, whole, counted, screen=lambda texts: [c.top() for c in classify(texts)])
    assert set(r.parts) == {"flights", "weather"} and asked  # a screen that tells them apart lets the cut through
