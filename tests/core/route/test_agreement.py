"""What graded history says of paths agreeing: how often, how right, and how the strong path does when not."""

import numpy as np
import pytest

from swarm_route.core.route.ability import Graded
from swarm_route.core.route.agreement import AgreementMemory


def query(text: str, intent: str, **said: tuple[str | None, float]) -> list[Graded]:
    return [Graded(text, node, score, None, intent, answer) for node, (answer, score) in said.items()]


def test_a_pair_is_judged_on_the_queries_where_it_and_the_strong_path_all_answered():
    memory = AgreementMemory()
    for i in range(6):  # agree on 4 (right on 3 of them), differ on 2, where the strong path is right once
        a_says, b_says = ("b", "b") if i < 4 else ("a", "c")
        memory.add(query(f"q{i}", "quiz", a=(a_says, float(i != 0)), b=(b_says, 0.0), strong=("b", float(i != 4))))
    memory.add(query("no strong", "quiz", a=("b", 1.0), b=("b", 1.0)))  # not counted: the strong path was not asked
    memory.add(query("q-other", "code", a=("b", 1.0), b=("b", 1.0), strong=("b", 1.0)))  # another intent
    seen = memory.panels("quiz", [("a", "b"), ("a", "missing")], "strong")
    assert seen.queries.tolist() == [6.0, 0.0]
    assert seen.agree[0] == pytest.approx(4 / 6) and seen.right_when_agree[0] == pytest.approx(3 / 4)
    assert seen.strong_when_differ[0] == pytest.approx(0.5) and seen.strong[0] == pytest.approx(5 / 6)
    assert np.isnan(seen.agree[1]), "a node never graded has no record"
    assert memory.panels("unknown", [("a", "b")], "strong").queries.tolist() == [0.0]


def test_long_answers_never_agree_and_unknown_answers_are_not_evidence():
    memory = AgreementMemory()
    memory.add(query("code", "code", a=("", 1.0), b=("", 1.0), strong=("", 1.0)))  # too long to compare
    memory.add(query("old", "code", a=(None, 1.0), b=("x", 1.0), strong=("x", 1.0)))  # graded before answers were kept
    seen = memory.panels("code", [("a", "b")], "strong")
    assert seen.queries.tolist() == [1.0] and seen.agree.tolist() == [0.0]


def test_each_intent_keeps_its_newest_queries_only():
    memory = AgreementMemory(max_queries=10)
    for i in range(30):
        memory.add(query(f"q{i}", "quiz", a=("x", 1.0), b=("x" if i >= 20 else "y", 1.0), strong=("x", 1.0)))
    seen = memory.panels("quiz", [("a", "b")], "strong")
    assert 10 <= seen.queries[0] <= 11 and seen.agree[0] == 1.0, "only the newest (agreeing) queries are kept"


def test_a_panel_of_three_agrees_only_when_every_member_does():
    memory = AgreementMemory()
    said = [("b", "b", "b"), ("b", "b", "c"), ("a", "a", "a"), ("b", None, "b")]  # the last: c's answer unknown
    for i, (a, b, c) in enumerate(said):
        memory.add(query(f"q{i}", "quiz", a=(a, float(a == "b")), b=(b, 1.0), c=(c, 1.0), strong=("b", float(i != 1))))
    seen = memory.panels("quiz", [("a", "b", "c"), ("a", "c", "b")], "strong")
    assert seen.queries.tolist() == [3.0, 3.0], "a query with a member's answer unknown is no evidence"
    assert seen.agree[0] == pytest.approx(2 / 3) and seen.right_when_agree[0] == pytest.approx(1 / 2)
    assert seen.strong_when_differ[0] == 0.0 and seen.agree[1] == seen.agree[0]
    assert memory.panels("quiz", [], "strong").queries.size == 0
