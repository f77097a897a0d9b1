"""The Kubernetes manifests, validated offline: core kinds against Kubernetes' schemas, the RayService
against the KubeRay CRD, its embedded Serve config against Serve's own schema and against deployments/."""

import importlib.util
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

ROOT = Path(__file__).parents[2]
K8S = ROOT / "k8s"
CRD = ROOT.parent / "shared" / "data" / "k8s" / "ray.io_rayservices.yaml"
spec = importlib.util.spec_from_file_location("render", K8S / "render.py")
render = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render)


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def rayservice() -> dict:
    (service,) = documents("rayservice.yaml")
    return service


def test_rayservice_is_rendered_from_the_serve_config_without_drift():
    assert (K8S / "rayservice.yaml").read_text() == render.render(), "run: python k8s/render.py"
    embedded = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    local = yaml.safe_load((ROOT / "deployments" / "serve_config.yaml").read_text())
    for app in (*embedded["applications"], *local["applications"]):
        app["args"].pop("redis_url")
    assert embedded == local


def test_embedded_serve_config_is_valid_for_serve():
    schema = ServeDeploySchema.model_validate(yaml.safe_load(rayservice()["spec"]["serveConfigV2"]))
    (app,) = schema.applications
    assert app.args["redis_url"] == render.CLUSTER_REDIS
    assert {d.name for d in app.deployments} >= {"Ingress", "DispatchDeployment", "UpdaterDeployment"}


@pytest.mark.skipif(not CRD.is_file(), reason=f"KubeRay CRD not at {CRD}")
def test_rayservice_validates_against_the_kuberay_crd():
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == rayservice()["apiVersion"].split("/")[1]]
    jsonschema.validate(rayservice(), version["schema"]["openAPIV3Schema"])
    broken = rayservice()
    broken["spec"]["rayClusterConfig"]["headGroupSpec"] = "not an object"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, version["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("name", ["namespace.yaml", "secret.example.yaml", "redis.yaml", "ingress.yaml"])
def test_core_kinds_validate_against_kubernetes_schemas(name):
    for doc in documents(name):
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_kustomization_lists_every_manifest():
    (kustomization,) = documents("kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "rayservice.template.yaml"}
    assert set(kustomization["resources"]) == {m for m in manifests if not m.endswith(".example.yaml")}


def test_no_credentials_ship_and_the_ray_cluster_requires_a_token():
    (kustomization,) = documents("kustomization.yaml")
    applied = [d for name in kustomization["resources"] for d in documents(name)]
    assert not [d for d in applied if d["kind"] == "Secret"], "the operator creates the Secret, with their own keys"
    assert rayservice()["spec"]["rayClusterConfig"]["authOptions"] == {"mode": "token"}


def test_the_shipped_apps_args_are_settings_swarm_route_accepts():
    from swarm_route.config import load_settings

    embedded = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    local = yaml.safe_load((ROOT / "deployments" / "serve_config.yaml").read_text())
    for app in (*embedded["applications"], *local["applications"]):
        load_settings(None, **app["args"])  # an unknown key raises, naming it
