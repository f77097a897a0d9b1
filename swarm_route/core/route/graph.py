"""The layered path graph the ants walk: source → one node per (agent, model) in each stage → sink.

A path is one way to answer a query; its edges are what pheromone is laid on. Agents run in one stage by
default; a multi-stage graph (e.g. solver then verifier) is built from explicit stages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import networkx as nx

from swarm_route.core.messages import SINK, SOURCE, Hop, path_edges
from swarm_route.core.registry import AgentSpec


@dataclass(frozen=True)
class Path:
    hops: tuple[Hop, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return (SOURCE, *(h.node for h in self.hops), SINK)

    @property
    def edges(self) -> tuple[str, ...]:
        return tuple(path_edges([h.node for h in self.hops]))

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(h.agent for h in self.hops)

    def __str__(self) -> str:
        return " → ".join(h.node for h in self.hops)


class PathGraph:
    """A DAG of stages; every source→sink path is a candidate."""

    def __init__(self, stages: Sequence[Iterable[Hop]]) -> None:
        self.graph = nx.DiGraph()
        self.graph.add_node(SOURCE)
        self.graph.add_node(SINK)
        previous = [SOURCE]
        for stage in stages:
            current = []
            for hop in stage:
                self.graph.add_node(hop.node, hop=hop)
                current.append(hop.node)
                for p in previous:
                    self.graph.add_edge(p, hop.node)
            if current:
                previous = current
        for p in previous:
            if p != SOURCE:
                self.graph.add_edge(p, SINK)

    @classmethod
    def single_stage(cls, agents: Iterable[AgentSpec]) -> PathGraph:
        return cls([[Hop(agent=a.name, model=m.name) for a in agents for m in a.models]])

    def paths(self) -> list[Path]:
        return [
            Path(tuple(self.graph.nodes[n]["hop"] for n in nodes[1:-1]))
            for nodes in nx.all_simple_paths(self.graph, SOURCE, SINK)
        ]
