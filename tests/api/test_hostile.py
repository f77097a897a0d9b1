"""The hostile-input smoke run against the running service: no 5xx, no hang, no hostile registration."""

import pytest

from swarm_route.bench import hostile
from tests.conftest import ADMIN_KEY, CLIENT_KEY

pytestmark = pytest.mark.integration


def test_hostile_input_gets_no_5xx_no_hang_and_no_registration(service):
    result = hostile.run(service.url, ADMIN_KEY, CLIENT_KEY)
    assert result["probes"] >= 60
    assert result["failures"] == [], result["failures"]
