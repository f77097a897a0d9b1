"""The verifiers: when a cascade's cheap answers are trusted, and when the walk must go on."""

import pytest

from swarm_route.core.dispatch.verify import AgreementVerifier, JudgeVerifier, judge_score, short_answer
from swarm_route.core.llm import ChatModel, LLMSettings
from swarm_route.core.messages import Hop, PathAnswer


def answer(text: str, i: int = 0) -> PathAnswer:
    hop = Hop(agent=f"a{i}", model="m")
    return PathAnswer(candidate=i, hops=[hop], edges=[], text=text, cost_usd=0.0, latency_ms=1)


def test_short_answers_compare_past_case_quoting_and_a_reason_below():
    assert short_answer("B.") == short_answer(" b ") == short_answer("['B']") == short_answer("B\nbecause x") == "b"
    assert short_answer("\n\n  The   Answer: 42 ") == "the answer: 42"
    assert short_answer("def f(x):  # " + "y" * 80) == "", "a long first line is code or prose: not comparable"
    assert short_answer("") == ""


async def test_a_first_line_that_leads_into_the_answer_is_not_one():
    """Two code answers opening with the same fence, tag or lead-in did not give the same answer."""
    for text in ("```python\ndef f(): ...", "[PYTHON]\ndef f(): ...", "Here is a solution:\n\ndef f(): ..."):
        assert short_answer(text) == "", text
    verdict = await AgreementVerifier().judge("q", [answer("```python\nx = 1", 0), answer("```python\nx = 2", 1)])
    assert not verdict.accepted
    assert short_answer("[A]") == "a" and short_answer("Answer: C") == "answer: c", "a bracketed choice is one"


async def test_agreeing_answers_are_accepted_and_the_first_of_them_stands():
    verdict = await AgreementVerifier().judge("q", [answer("Paris.", 0), answer("paris", 1)])
    assert verdict.accepted and verdict.score == 1.0 and verdict.answer == 0
    assert "2 of 2 answers agree on «paris»" in verdict.reason


async def test_differing_answers_are_escalated_and_say_how_they_differ():
    verdict = await AgreementVerifier().judge("q", [answer("A", 0), answer("B", 1)])
    assert not verdict.accepted and verdict.score == 0.5 and "«a» vs «b»" in verdict.reason


async def test_long_answers_are_never_passed_off_as_checked():
    code = "def solve(items):\n    return sorted(items, key=lambda item: (item.priority, item.name))  # by priority"
    flat = code.replace("\n", " ")
    verdict = await AgreementVerifier().judge("q", [answer(flat, 0), answer(flat, 1)])
    assert not verdict.accepted and verdict.score == 0.0 and "no short answer" in verdict.reason


async def test_a_lone_answer_is_not_agreement_and_a_quorum_may_be_a_majority():
    assert not (await AgreementVerifier().judge("q", [answer("A")])).accepted
    panel = [answer("A", 0), answer("B", 1), answer("b", 2)]
    assert not (await AgreementVerifier().judge("q", panel)).accepted, "all must agree by default"
    verdict = await AgreementVerifier(quorum=0.6).judge("q", panel)
    assert verdict.accepted and verdict.answer == 1 and verdict.score == round(2 / 3, 4)
    assert "(long)" in (await AgreementVerifier().judge("q", [answer("A"), answer("x" * 100, 1)])).reason


def judge(server, model: str = "scripted", accept: float = 0.7, timeout_s: float = 5.0) -> JudgeVerifier:
    return JudgeVerifier(ChatModel(LLMSettings(base_url=server.base_url, model=model, timeout_s=timeout_s)), accept)


def test_a_judge_s_score_is_the_first_number_of_its_reply_and_must_be_a_probability():
    assert judge_score("0.92") == 0.92 and judge_score("Score: .4, fairly sure") == 0.4 and judge_score("1") == 1.0
    assert judge_score("7") is None and judge_score("8/10") is None and judge_score("looks right") is None
    assert judge_score("2.5, or 0.3") is None, "the first number counts: a guess past it would pass answers"


async def test_a_judge_accepts_the_answer_it_scores_high_and_reads_the_question_and_the_answer(openai_server):
    openai_server.app.state.scripts[:] = ["0.92"]
    verdict = await judge(openai_server).judge("what is 6 times 7?", [answer("42")])
    assert verdict.accepted and verdict.score == 0.92 and verdict.answer == 0
    assert "the judge scored the answer 0.92" in verdict.reason
    asked = openai_server.app.state.requests[-1]["messages"][-1]["content"]
    assert "what is 6 times 7?" in asked and asked.endswith("Answer:\n42")


async def test_below_the_judge_s_bar_the_walk_goes_on_and_the_best_of_a_panel_stands(openai_server):
    openai_server.app.state.scripts[:] = ["0.4"]
    low = await judge(openai_server).judge("q", [answer("a long answer in prose, not comparable as text")])
    assert not low.accepted and low.score == 0.4 and "below 0.7" in low.reason
    openai_server.app.state.scripts[:] = ["0.95", "0.1"]  # whichever answer is asked first gets 0.95
    verdict = await judge(openai_server).judge("q", [answer("A", 0), answer("B", 1)])
    assert verdict.accepted and verdict.score == 0.95 and "of 2" in verdict.reason
    assert openai_server.app.state.scripts == []


@pytest.mark.parametrize("model, script", [("broken", None), ("scripted", "I think it is right"), ("slow", None)])
async def test_a_judge_without_a_score_leaves_it_to_agreement(openai_server, model, script):
    """Down, slow past its timeout, or answering without a number: agreement decides, never acceptance."""
    openai_server.app.state.scripts[:] = [script, script] if script else []
    j = judge(openai_server, model, timeout_s=0.5)
    agreed = await j.judge("q", [answer("B.", 0), answer("b", 1)])
    assert agreed.accepted and agreed.reason.startswith("the judge gave no score; by agreement: 2 of 2")
    openai_server.app.state.scripts[:] = [script] if script else []  # resting or asked again: agreement
    assert not (await j.judge("q", [answer("a long answer in prose, not comparable")])).accepted


async def test_a_judge_that_failed_rests_while_agreement_decides_alone(openai_server):
    """A hung or failing judge is not asked again for a while: each cascade would wait out its timeout."""
    j = judge(openai_server, "slow", timeout_s=0.3)
    await j.judge("q", [answer("B", 0), answer("b", 1)])
    asked = len(openai_server.app.state.requests)
    verdict = await j.judge("q", [answer("C", 0), answer("c", 1)])
    assert len(openai_server.app.state.requests) == asked, "not asked while it rests"
    assert verdict.accepted and verdict.reason.startswith("the judge failed a moment ago (LLMUnavailable")
    wordless = judge(openai_server)  # a reply without a score is no outage: the judge is asked again
    openai_server.app.state.scripts[:] = ["fine", "0.9"]
    await wordless.judge("q", [answer("A")])
    assert (await wordless.judge("q", [answer("A")])).score == 0.9


async def test_a_priced_judge_costs_what_it_was_asked_even_when_agreement_decides(openai_server):
    """Two answers, each scored in a call of 30 tokens (the fake server's count) at $1 per 1,000."""
    priced = JudgeVerifier(
        ChatModel(LLMSettings(base_url=openai_server.base_url, model="scripted", cost_per_1k_tokens=1.0)), 0.7
    )
    openai_server.app.state.scripts[:] = ["0.9", "0.2"]
    assert (await priced.judge("q", [answer("A", 0), answer("B", 1)])).cost_usd == pytest.approx(0.06)
    openai_server.app.state.scripts[:] = ["fine", "looks right"]
    agreed = await priced.judge("q", [answer("B.", 0), answer("b", 1)])
    assert agreed.accepted and "by agreement" in agreed.reason and agreed.cost_usd == pytest.approx(0.06)
    assert (await AgreementVerifier().judge("q", [answer("B", 0), answer("b", 1)])).cost_usd == 0.0
