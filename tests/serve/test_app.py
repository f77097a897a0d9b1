"""The Serve config in deployments/ is accepted by Serve's own schema and builds the same app."""

from pathlib import Path

import yaml
from ray.serve.schema import ServeDeploySchema

from swarm_route.config import Settings
from swarm_route.serve.app import app_builder, build_app

CONFIG = Path(__file__).parents[2] / "deployments" / "serve_config.yaml"


def test_serve_config_validates_and_builds_the_app():
    schema = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    (app,) = schema.applications
    module, func = app.import_path.split(":")
    assert (module, func) == ("swarm_route.serve.app", "app_builder")
    built = app_builder(app.args)
    assert built._bound_deployment.name == "Ingress"
    settings = built._bound_deployment.init_args[0]
    assert settings.redis_url == app.args["redis_url"] and settings.updater.gate_threshold == 0.7


def _deployment_names(app) -> set[str]:
    bound = app._bound_deployment
    names = {bound.name}
    for arg in bound.init_args:
        if hasattr(arg, "_bound_deployment"):
            names |= _deployment_names(arg)
    return names


def test_every_deployment_the_config_tunes_exists_in_the_app():
    schema = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    (app,) = schema.applications
    built = _deployment_names(app_builder(app.args))
    assert {d.name for d in app.deployments} <= built
    assert "BuiltinAgentsDeployment" in built and "UpdaterDeployment" in built


def test_the_fast_topology_leaves_the_classifier_and_router_to_the_ingress():
    together = _deployment_names(build_app(Settings(redis_url="redis://127.0.0.1:1")))
    apart = _deployment_names(build_app(Settings(redis_url="redis://127.0.0.1:1", serve={"topology": "split"})))
    stages = {"IntentClassifierDeployment", "RouterDeployment"}
    assert stages <= apart and not stages & together
    assert apart - together == stages
