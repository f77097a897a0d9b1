"""The real MiniLM from the wheel, and the classifier's slow path on it."""

import numpy as np
import pytest

from swarm_route.core.embedding import default_embedder
from swarm_route.core.intent import IntentClassifier, LabelledExamples
from tests.core.helpers import MATH, WEATHER

embedder = default_embedder()
pytestmark = pytest.mark.skipif(embedder is None, reason="sentence-transformers or the MiniLM wheel missing")


def test_embeddings_are_unit_vectors_that_know_synonyms():
    e = embedder.encode(["how warm will it be tomorrow", "temperature forecast for tomorrow", "divide 9 by 3"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_slow_path_classifies_what_shares_no_words_with_the_examples():
    data = LabelledExamples()
    data.add("weather", WEATHER)
    data.add("math", MATH)
    data.add("booking", ["book a table for two tonight", "reserve a restaurant", "make a dinner reservation"])
    query = "do I need an umbrella"  # no word in common with any weather example
    semantic = IntentClassifier(oos_threshold=-10, embedder=embedder).fit(data).classify(query)
    lexical = IntentClassifier(oos_threshold=-10).fit(data).classify(query)
    assert semantic.top() == "weather" != lexical.top()
