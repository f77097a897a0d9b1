# The image the KubeRay manifests run (k8s/rayservice.template.yaml: swarm-route:0.1.0).
# Not built in CI (no container engine there): `docker build -t swarm-route:0.1.0 .`
FROM rayproject/ray:2.60.0-py311-cpu
WORKDIR /opt/swarm_route
COPY pyproject.toml README.md ./
COPY swarm_route ./swarm_route
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu . \
 && python -c "import swarm_route.serve.app"
