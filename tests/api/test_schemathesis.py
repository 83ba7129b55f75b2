"""Schemathesis: requests generated from the API's own OpenAPI document, sent to the running
service through the hub's proxy with a user's token; no answer may be a 5xx (502/503 are
described, and would still fail here: the hub and the cluster are up) or outside the document.

The monitor stream is left out: it runs until the app stops (its own test reads it)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="session")
def api_schema(api_hub):
    schema = schemathesis.openapi.from_url(f"{api_hub.api_url}/openapi.json")
    schema.config.base_url = api_hub.api_url
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path_regex=r".*/events$").parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_in_the_document_and_none_is_a_5xx(case, tokens):
    case.call_and_validate(
        headers={"Authorization": f"token {tokens['alice']}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        timeout=120,
    )
