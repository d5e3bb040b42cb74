"""Fuzz the backend from its OpenAPI description: no 5xx, no stack trace, one error shape."""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend_service import create_app
from backend_service.config import Config
from tests.kit.fakes import FakeListener, FakeRidePublisher

# Generated cases per operation, valid and invalid; the whole file runs in about 20 s.
EXAMPLES = 150
TRACE_MARKERS = ("Traceback", 'File "', "werkzeug", "<html", "<!doctype")


def fuzzable_app():
    """The real app with a fake stream that answers some rides at once and leaves others pending."""
    publisher, listener = FakeRidePublisher(), FakeListener()
    config = Config(project_id="fuzz-project", result_timeout_s=0.01, ride_store="memory")
    app = create_app(config, publisher=publisher, listener=listener)  # type: ignore[arg-type]
    store = app.extensions["backend"].rides
    publisher.respond = lambda ride_id, ride: (
        store.complete(ride_id, round(ride["trip_distance"] * 3, 2), "fuzz/1")
        if ride["PULocationID"] % 2
        else None
    )
    return app


# Built at import: schemathesis's lazy fixture loader does not work with pytest 9.
schema = schemathesis.openapi.from_wsgi("/openapi.yaml", fuzzable_app())
# One test per operation, each with an id of its own (schema.parametrize() gives them one shared
# id, which pytest-xdist's per-file scheduling takes for one test, running one in five).
OPERATIONS = {result.ok().label: result.ok() for result in schema.get_all_operations()}


def error_shape_and_no_trace(ctx, response, case) -> None:
    """Every error is {"error": {"code", "message", "fields"?}}, and nothing leaks a trace."""
    text = response.text
    for marker in TRACE_MARKERS:
        assert marker not in text, f"{marker!r} in a response body: {text[:300]}"
    if response.status_code >= 400:
        body = json.loads(text)
        error = body["error"]
        assert error["code"] == response.status_code
        assert isinstance(error["message"], str) and error["message"]
        assert set(error) <= {"code", "message", "fields"}


@pytest.mark.parametrize("label", list(OPERATIONS))
def test_api_holds_its_contract_under_fuzzing(label: str) -> None:
    operation = OPERATIONS[label]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def holds(case) -> None:
        case.call_and_validate(
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
                error_shape_and_no_trace,
            ]
        )

    holds()
