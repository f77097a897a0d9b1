"""The agreement verifier: when a cascade's cheap answers are trusted, and when the walk must go on."""

from swarm_route.core.dispatch.verify import AgreementVerifier, short_answer
from swarm_route.core.messages import Hop, PathAnswer


def answer(text: str, i: int = 0) -> PathAnswer:
    hop = Hop(agent=f"a{i}", model="m")
    return PathAnswer(candidate=i, hops=[hop], edges=[], text=text, cost_usd=0.0, latency_ms=1)


def test_short_answers_compare_past_case_quoting_and_a_reason_below():
    assert short_answer("B.") == short_answer(" b ") == short_answer("['B']") == short_answer("B\nbecause x") == "b"
    assert short_answer("\n\n  The   Answer: 42 ") == "the answer: 42"
    assert short_answer("def f(x):  # " + "y" * 80) == "", "a long first line is code or prose: not comparable"
    assert short_answer("") == ""


def test_a_first_line_that_leads_into_the_answer_is_not_one():
    """Two code answers opening with the same fence, tag or lead-in did not give the same answer."""
    for text in ("```python\ndef f(): ...", "[PYTHON]\ndef f(): ...", "Here is a solution:\n\ndef f(): ..."):
        assert short_answer(text) == "", text
    verdict = AgreementVerifier().judge("q", [answer("```python\nx = 1", 0), answer("```python\nx = 2", 1)])
    assert not verdict.accepted
    assert short_answer("[A]") == "a" and short_answer("Answer: C") == "answer: c", "a bracketed choice is one"


def test_agreeing_answers_are_accepted_and_the_first_of_them_stands():
    verdict = AgreementVerifier().judge("q", [answer("Paris.", 0), answer("paris", 1)])
    assert verdict.accepted and verdict.score == 1.0 and verdict.answer == 0
    assert "2 of 2 answers agree on «paris»" in verdict.reason


def test_differing_answers_are_escalated_and_say_how_they_differ():
    verdict = AgreementVerifier().judge("q", [answer("A", 0), answer("B", 1)])
    assert not verdict.accepted and verdict.score == 0.5 and "«a» vs «b»" in verdict.reason


def test_long_answers_are_never_passed_off_as_checked():
    code = "def solve(items):\n    return sorted(items, key=lambda item: (item.priority, item.name))  # by priority"
    verdict = AgreementVerifier().judge("q", [answer(code.replace("\n", " "), 0), answer(code.replace("\n", " "), 1)])
    assert not verdict.accepted and verdict.score == 0.0 and "no short answer" in verdict.reason


def test_a_lone_answer_is_not_agreement_and_a_quorum_may_be_a_majority():
    assert not AgreementVerifier().judge("q", [answer("A")]).accepted
    panel = [answer("A", 0), answer("B", 1), answer("b", 2)]
    assert not AgreementVerifier().judge("q", panel).accepted, "all must agree by default"
    verdict = AgreementVerifier(quorum=0.6).judge("q", panel)
    assert verdict.accepted and verdict.answer == 1 and verdict.score == round(2 / 3, 4)
    assert "(long)" in AgreementVerifier().judge("q", [answer("A"), answer("x" * 100, 1)]).reason
