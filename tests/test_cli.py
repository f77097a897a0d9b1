"""The command line's failure paths: a clear message and a non-zero exit, no traceback."""

import asyncio
import uuid

import pytest

from swarm_route.cli import main
from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.keys import Keys
from swarm_route.store import connect, free_port


def test_agents_against_an_unreachable_service_says_so(capsys):
    assert main(["agents", "list", "--url", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_commands_that_need_the_store_refuse_without_one(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SWARM_REDIS_URL", raising=False)
    with pytest.raises(SystemExit, match="REDIS_URL"):
        main(["pheromones", "arithmetic"])


def test_pheromones_prints_an_intent_s_trails_and_which_are_on_trial(redis_server, monkeypatch, capsys):
    namespace = f"cli{uuid.uuid4().hex[:8]}"

    async def lay() -> None:
        client = connect(redis_server.url)
        store = PheromoneStore(client, Keys(namespace), rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0, trial_events=7)
        await store.deposit("qa", {"source>old/m": 2.0})
        await store.seed("qa", ["source>new/m"])
        await client.aclose()

    asyncio.run(lay())
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("SWARM_NAMESPACE", namespace)
    assert main(["pheromones", "qa"]) == 0
    lines = capsys.readouterr().out.splitlines()  # both at 2.9 (the newcomer seeded at the best): either order
    assert sorted(lines) == ["  2.9000  source>new/m  (on trial: 7 graded events left)", "  2.9000  source>old/m"]


def test_agents_add_needs_a_file():
    with pytest.raises(SystemExit):
        main(["agents", "add"])


def test_keys_reset_needs_a_key_id():
    with pytest.raises(SystemExit):
        main(["keys", "reset"])


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["bench", "drift", "--train", "nowhere.csv"], "no such routing matrix: nowhere.csv"),
        (["bench", "routing", "--train", "nowhere.csv"], "no such routing matrix: nowhere.csv"),
        (["bench", "intent", "--data", "nowhere.json"], "no such intent file"),
    ],
)
def test_a_bench_given_a_missing_file_says_so_without_a_traceback(argv, says, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
