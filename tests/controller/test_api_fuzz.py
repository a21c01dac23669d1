"""Schemathesis against /openapi.json of a live controller: no input makes it answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.controller.api_setup import Api, start_api

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from tests.controller.conftest import LiveServers

    servers = LiveServers()
    api = start_api(tmp_path_factory.mktemp("fuzz"), servers.start)
    try:
        yield api
    finally:
        servers.stop_all()
        api.db.dispose()


def _fuzz(operation: Any, mode: GenerationMode, auth: dict[str, str], failures: list[str]) -> None:
    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(mode))
    def run(case: Any) -> None:
        response = case.call(headers=auth, timeout=30)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} ({mode.value}): "
                f"{response.status_code} {response.text[:200]}"
            )

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # no parameters and no body (e.g. /healthz): nothing can be made invalid


def test_no_input_gives_a_server_error(fuzz_api: Api) -> None:
    """Every operation of /openapi.json, 50 generated examples each (valid and invalid data)."""
    schema = schemathesis.openapi.from_url(f"{fuzz_api.url}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for operation in operations:
        if operation.path == "/api/v1/reports":
            auth = {"Authorization": f"Bearer {fuzz_api.agent_tokens['web1']}"}
        else:
            auth = fuzz_api.operator()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, auth, failures)
    assert failures == []


def test_the_fuzzer_got_past_authentication(fuzz_api: Api) -> None:
    """Guard: the fuzz run above must have reached validation and storage, not only 401s."""
    text = fuzz_api.app.state.registry
    from prometheus_client import generate_latest

    exposition = generate_latest(text).decode()
    assert 'boxkeeper_controller_ingest_requests_total{code="422"}' in exposition
    assert 'code="500"' not in exposition and 'code="503"' not in exposition
