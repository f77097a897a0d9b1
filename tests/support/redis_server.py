"""The test session's redis-server: the package's own ``RedisProcess`` (also what the chaos bench stops)."""

from swarm_route.store import RedisProcess as RedisServer

__all__ = ["RedisServer"]
