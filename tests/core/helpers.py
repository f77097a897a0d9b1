"""Small agent pools the core tests build for themselves."""

from __future__ import annotations

from swarm_route.core.registry import AgentKind, AgentSpec, ModelOption, Skill


def agent(name: str, skill: str, examples: list[str], models: dict[str, float] | None = None) -> AgentSpec:
    return AgentSpec(
        name=name,
        description=f"{name} handles {skill}",
        kind=AgentKind.openai,
        endpoint="http://127.0.0.1:9/v1",
        models=[ModelOption(name=m, cost_per_1k_tokens=c) for m, c in (models or {"m": 0.0}).items()],
        skills=[Skill(name=skill, examples=examples)],
    )


WEATHER = ["what is the weather in Paris", "will it rain tomorrow", "forecast for the weekend", "is it sunny"]
MATH = ["what is 2 plus 2", "compute 17 times 3", "square root of 81", "divide 100 by 7"]
