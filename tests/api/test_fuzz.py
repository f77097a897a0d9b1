"""Schema-driven fuzzing of the running service: whatever the OpenAPI spec allows (and a good deal it does
not), no request gets a 5xx. Mutations of the registry and the learning switch are fuzzed with a client key,
so every well-formed body stops at the 403 and the shared test service is left as it was."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from swarm_route.api.app import create_app
from tests.conftest import ADMIN_KEY, CLIENT_KEY

pytestmark = pytest.mark.integration
MUTATIONS = {("POST", "/v1/agents"), ("DELETE", "/v1/agents/{name}"), ("PUT", "/v1/updater/state")}


schema = schemathesis.openapi.from_dict(create_app().openapi())  # the spec the service serves at /openapi.json


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, service):
    key = CLIENT_KEY if (case.method.upper(), case.path) in MUTATIONS else ADMIN_KEY
    case.call_and_validate(
        base_url=service.url, headers={"Authorization": f"Bearer {key}"}, checks=[not_a_server_error], timeout=30
    )
