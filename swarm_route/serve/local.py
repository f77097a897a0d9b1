"""One machine, one command: a local Ray, an embedded Redis unless ``REDIS_URL`` is set, and the Serve app.

What ``swarm-route serve`` (and so ``make run``) starts, and what the load and chaos benchmarks start too.
"""

from __future__ import annotations

import os
import time
import urllib.request

from swarm_route.config import Settings
from swarm_route.store import exit_on_sigterm


def _wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url}/readyz not ready after {timeout_s:.0f} s")


class LocalService:
    """Local Ray + (embedded Redis unless REDIS_URL) + the Serve app; ``stop`` undoes all it started."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.serve.host}:{self.settings.serve.port}"

    @property
    def metrics_url(self) -> str:
        import ray

        port = self.settings.serve.metrics_port or ray._private.worker.global_worker.node.metrics_export_port
        return f"http://127.0.0.1:{port}/metrics"

    def start(self, ready_timeout_s: float = 120.0) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # gRPC between replicas (Ray >= 2.55), inherited by every Ray process started below. Measured here with
        # `bench load`: routed p50 28-31 -> 23-25 ms at C=1, routed throughput 43.5 -> 54.9 rps at C=16.
        os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
        # ...which serves HTTP from the ingress replicas themselves ("direct ingress"), and holds a stopping
        # ingress replica open 30 s for a load balancer to deregister it: on one machine there is none, and
        # every stop (Ctrl-C, the tests, each benchmark) waited those 30 s.
        os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "0")
        import ray
        from ray import serve

        from swarm_route.serve.app import build_app
        from swarm_route.store import EmbeddedRedis

        if not self.settings.redis_url:
            self._redis = EmbeddedRedis()
            self.settings = self.settings.model_copy(update={"redis_url": self._redis.url})
        s = self.settings.serve
        ray.init(num_cpus=s.num_cpus, include_dashboard=False, log_to_driver=False, _metrics_export_port=s.metrics_port)
        exit_on_sigterm()  # Ray installs its own handler, which would exit without stopping what we started
        serve.start(http_options={"host": s.host, "port": s.port})
        serve.run(build_app(self.settings), name=s.app_name, route_prefix="/", blocking=False)
        _wait_ready(self.url, ready_timeout_s)

    def stop(self) -> None:
        import ray
        from ray import serve

        try:
            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            if self._redis is not None:
                self._redis.stop()
                self._redis = None


