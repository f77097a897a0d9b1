import pytest
from pydantic import ValidationError

from swarm_route.config import Settings, load_settings


def test_environment_and_yaml_file_drive_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/0")
    monkeypatch.setenv("SWARM_ACO__RHO", "0.3")
    assert Settings().redis_url == "redis://env:6379/0" and Settings().aco.rho == 0.3
    f = tmp_path / "s.yaml"
    f.write_text(
        "namespace: fromfile\naco:\n  rho: 0.2\nagents:\n  - {name: a, description: d, kind: builtin,"
        " endpoint: clock, models: [{name: m}]}\n"
    )
    s = load_settings(f)
    assert s.namespace == "fromfile" and s.aco.rho == 0.2 and s.agents[0].intents() == ["a"]
    monkeypatch.setenv("SWARM_CONFIG", str(f))
    monkeypatch.setenv("SWARM_NAMESPACE", "fromenv")
    assert Settings().namespace == "fromenv"  # env outranks a file named only by SWARM_CONFIG


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValidationError):
        Settings(namespace="has space")
    with pytest.raises(ValidationError, match="trial_events"):
        Settings(aco={"trial_events": -1})
    with pytest.raises(ValidationError, match="cost_per_1k_tokens"):  # a negative price would pay the caller
        Settings(aggregator={"llm": {"base_url": "http://llm:8000/v1", "model": "m", "cost_per_1k_tokens": -1}})
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n")
    with pytest.raises(ValueError, match="mapping"):
        load_settings(f)


def test_a_misspelt_key_is_an_error_naming_it(tmp_path, monkeypatch):
    f = tmp_path / "typo.yaml"
    f.write_text("aco:\n  rh0: 0.2\n")
    with pytest.raises(ValidationError, match="rh0"):
        load_settings(f)
    with pytest.raises(ValidationError, match="colour"):
        Settings(colour="blue")
    monkeypatch.setenv("SWARM_ACO__RH0", "0.2")
    with pytest.raises(ValueError, match="SWARM_ACO__RH0"):
        Settings()
    monkeypatch.delenv("SWARM_ACO__RH0")
    monkeypatch.setenv("SWARM_NAMESPAC", "x")
    with pytest.raises(ValueError, match="SWARM_NAMESPAC"):
        Settings()


def test_variables_that_are_not_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("SWARM_API_KEY", "the CLI's key")
    monkeypatch.setenv("SWARM_REDIS_URL", "redis://env:6379/0")
    monkeypatch.setenv("SWARM_SERVE__PORT", "8100")
    s = Settings()
    assert s.redis_url == "redis://env:6379/0" and s.serve.port == 8100


def test_how_many_agents_a_query_reaches_is_one_setting():
    assert "max_agents" not in Settings().limits.model_dump()
    with pytest.raises(ValidationError, match="max_agents"):
        Settings(limits={"max_agents": 5})


@pytest.mark.parametrize("key", ["short", "replace-me-admin-0123456789", "<your admin key>", "CHANGEME-0123456789abc"])
def test_a_guessable_or_placeholder_api_key_refuses_to_start(key):
    with pytest.raises(ValidationError, match="at least 16 characters and not be a placeholder"):
        Settings(auth={"admin_keys": [key]})
    assert Settings(auth={"client_keys": ["9f2c4e1a7b3d5f608e1c2a4b"]}).auth.client_keys
