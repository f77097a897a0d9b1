"""Agent backends: how one (agent, model) hop is actually called."""

from __future__ import annotations

import logging

from swarm_route.core.messages import AgentError
from swarm_route.core.registry import AgentSpec

log = logging.getLogger(__name__)

NO_ANSWER = "no answer from the agent (the service log says why)"
LOOP = "the agent's endpoint leads back to this service (508 Loop Detected)"


def refused_status(spec: AgentSpec, status: int) -> AgentError:
    """An HTTP error status: no answer, except the one status this service itself sends when a call comes back
    to it (its registrant has made a loop and is told so; only this service's own id triggers it)."""
    if status == 508:
        return AgentError(LOOP, retryable=False)
    return no_answer(spec, f"HTTP {status}", retryable=status >= 500)


def no_answer(spec: AgentSpec, why: str, *, retryable: bool) -> AgentError:
    """A remote agent gave nothing usable. The caller reads one text whatever happened (refused, unresolved,
    an HTTP status, an empty or malformed body): a registrant who points an agent at host:port pairs must not
    learn from the service which ports are open. The operator reads why in the log."""
    log.warning("agent %s at %s gave no answer: %s", spec.name, spec.endpoint, why[:300])
    return AgentError(NO_ANSWER, retryable=retryable)
