"""Schemathesis against /openapi.json of a live controller, as a new user would run it.

``schemathesis run --checks all`` (every conformance check: no 5xx, no undocumented status code,
bodies and headers as declared, invalid data refused, valid data not refused, auth enforced, 405
with a right ``Allow``), once per kind of token: the agent's on ingest; a viewer, an operator, an
admin and an operator limited to one client on every other operation. Per role, schemathesis's
coverage phase (boundary and invalid values of every parameter and body field, about 1,250 cases
over the 34 operations; it does not depend on the number of examples) runs in full; the random
fuzzing and stateful phases take 2 examples per operation (5 before: more of the same draws, and a
third of the suite's fuzzing time). Bounded by those numbers and a timeout per request.

One exception is configured, for ingest only: a report that repeats a check name is refused (422)
although JSON Schema cannot say "names unique within the list" (every other rule of ingest is in
the schema: controller/api/responses.py ``report_rules``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from controller import operators
from tests.controller.api_setup import Api, start_api

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))

CONFIG = """\
[[operations]]
include-path = "/api/v1/reports"
# ingest refuses a report whose check names repeat (422), which JSON Schema cannot express
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

[[operations]]
include-path-regex = "^/api/v1/(runs|incidents)$"
# since/until: "a date or an ISO time" (2026-02-30 is neither) is checked by the handler: 422 naming it
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""

#: (token, operations, examples per operation in the fuzzing and stateful phases)
RUNS = {
    "agent": ("--include-path", "/api/v1/reports", 50),
    "viewer": ("--exclude-path", "/api/v1/reports", 2),
    "operator": ("--exclude-path", "/api/v1/reports", 2),
    "admin": ("--exclude-path", "/api/v1/reports", 2),
    "acme-operator": ("--exclude-path", "/api/v1/reports", 2),
}


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from tests.controller.conftest import LiveServers

    servers = LiveServers()
    # limits far above the run's rate: the run is about the schema, test_api_roles.py about 429
    limits = {"agent": {"per_second": 1000, "burst": 100000},
              "operator": {"per_second": 1000, "burst": 100000}}
    api = start_api(tmp_path_factory.mktemp("fuzz"), servers.start, limits=limits)
    try:
        yield api
    finally:
        servers.stop_all()
        api.db.dispose()


@pytest.fixture(scope="module")
def role_tokens(fuzz_api: Api) -> dict[str, str]:
    path = Path(fuzz_api.cfg.operator_tokens_file)
    found = {"agent": fuzz_api.agent_tokens["web1"]}
    for role in operators.ROLES:
        found[role] = operators.add_operator(path, f"fuzz-{role}", role=role)
    found["acme-operator"] = operators.add_operator(path, "fuzz-acme", role="operator",
                                                    clients=frozenset({"acme"}))
    return found


@pytest.mark.parametrize("who", list(RUNS))
def test_schemathesis_finds_nothing(fuzz_api: Api, role_tokens: dict[str, str], who: str,
                                    tmp_path: Path) -> None:
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    flag, path, examples = RUNS[who]
    report = tmp_path / "report.json"
    cmd = [SCHEMATHESIS, "--config-file", str(tmp_path / "schemathesis.toml"), "--no-color", "run",
           f"{fuzz_api.url}/openapi.json", "--checks", "all", "-H",
           f"Authorization: Bearer {role_tokens[who]}", flag, path, "--max-examples", str(examples),
           "--seed", "18", "--workers", "1", "--request-timeout", "30", "--no-shrink",
           "--report", "json", "--report-json-path", str(report)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    summary = done.stdout[done.stdout.rfind("Test cases:"):]
    assert "passed" in summary and "failed" not in summary, summary
    print(who, summary.splitlines()[1] if "\n" in summary else summary)


def test_the_fuzzer_got_past_authentication(fuzz_api: Api) -> None:
    """Guard: the runs above reached validation and storage, not only 401s (run after them)."""
    exposition = generate_latest(fuzz_api.app.state.registry).decode()
    assert 'boxkeeper_controller_ingest_requests_total{code="422"}' in exposition
    assert 'boxkeeper_controller_ingest_requests_total{code="403"}' in exposition  # parsed, then refused
    assert 'code="500"' not in exposition and 'code="503"' not in exposition
