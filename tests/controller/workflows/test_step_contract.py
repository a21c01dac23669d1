"""One contract for every step kind of steps/registry.py, run on an example of each (a kind without an
example fails): read from YAML through the registry, unknown options refused by key path, the
outcome redacted, failures retried ``retry.attempts`` times, executor errors propagated, never
retried. The host is the FakeExecutor; ``http`` talks to a small HTTP server on 127.0.0.1.
A kind may have more examples (``http-from-host``: the same step kind, its request sent by curl on
the host): each is held to the same contract.
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.errors import ConfigError
from controller.redact import Redactor
from controller.workflows.errors import ConnectionLostError, ExecutorError, TransferError
from controller.workflows.loader import load_playbook, resolve_variables
from controller.workflows.playbook import Phase
from controller.workflows.steps.base import HealthView, Step, StepContext, StepOutcome, run_step
from controller.workflows.steps.registry import KINDS
from tests.controller.workflows.fakes import FakeExecutor

SECRET = "s3cr3t-'pw"  # a quote, so that its shell-quoted form differs from the raw one
RETRY_DELAY = 7.0


class Portal(BaseHTTPRequestHandler):
    """Answers every GET with the decoded request path in the body: 200, or 500 with an error page
    when the server is told to fail."""

    def do_GET(self) -> None:
        server: PortalServer = self.server  # type: ignore[assignment]
        server.hits += 1
        body = f"{'Fatal error' if server.failing else 'PORTAL_OK'} {urllib.parse.unquote(self.path)}"
        self.send_response(500 if server.failing else 200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PortalServer(ThreadingHTTPServer):
    hits = 0
    failing = False


@dataclass
class Health:
    views: list[HealthView]
    calls: int = 0

    def latest(self, host: str) -> HealthView:
        self.calls += 1
        return self.views[0]


@dataclass
class World:
    """Everything a step may touch, with the secret in the context's values and redactor."""

    tmp: Path
    portal: PortalServer
    fake: FakeExecutor = field(default_factory=FakeExecutor)
    health: Health = field(default_factory=lambda: Health([]))
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        host, port = self.portal.server_address[:2]
        return f"http://{host!s}:{port}"

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def context(self, values: dict[str, Any]) -> StepContext:
        return StepContext("box1", self.fake, values, Redactor([SECRET]), None, self.health, self.clock,
                           self.sleep, frozenset({"token"}))


@dataclass(frozen=True)
class Example:
    """A step of the kind: its options (YAML mapping), how to make the world pass or fail it, how
    many times it ran, and the executor error a dropped connection raises through it (None: it
    does not go through the executor's connection; WAITED_OUT: it waits for the host to come back,
    as ``wait_host`` does across a reboot)."""

    options: Callable[[World], dict[str, Any]]
    passing: Callable[[World], None]
    failing: Callable[[World], None] | None  # None: it fails only by an executor error
    attempts: Callable[[World], int]
    lost_connection: type[ExecutorError] | str | None
    kind: str | None = None  # None: the example's key is the kind


WAITED_OUT = "waited out"


def _run_passes(w: World) -> None:
    # a program that prints the secret it was given in its environment
    w.fake.on(r"deploy", (0, f"deployed with {SECRET}\n", f"note {SECRET}\n"))


def _run_fails(w: World) -> None:
    w.fake.on(r"deploy", (1, f"failed with {SECRET}\n", f"error {SECRET}\n"))


def _put_passes(w: World) -> None:
    (w.tmp / f"in-{SECRET}.txt").write_text("payload\n")


def _get_passes(w: World) -> None:
    w.fake.files[f"/var/log/{SECRET}.log"] = b"log\n"


def _http(failing: bool) -> Callable[[World], None]:
    def setup(w: World) -> None:
        w.portal.failing = failing
    return setup


def _curl_on_host(failing: bool) -> Callable[[World], None]:
    """The host's curl (FakeExecutor): prints what the command's --write-out prints and leaves the
    body where the command's --output puts it; the body holds the secret the URL carried."""
    def setup(w: World) -> None:
        def curl(command: str) -> tuple[int, str, str]:
            status, text = (500, "Fatal error") if failing else (200, "PORTAL_OK")
            w.fake.files["/tmp/boxkeeper-http.a1b2c3/body"] = f"{text} /?token={SECRET}".encode()
            return (0, "BOXKEEPER_DIR=/tmp/boxkeeper-http.a1b2c3\n"
                       f"BOXKEEPER_HTTP_STATUS={status}\nBOXKEEPER_CONTENT_TYPE=text/plain\n"
                       "BOXKEEPER_CURL_EXIT=0\n", "")
        w.fake.on(r"curl --silent", curl)
    return setup


def _testinfra(failing: bool) -> Callable[[World], None]:
    def setup(w: World) -> None:
        check = f"assert {SECRET!r} == 'other'" if failing else "pass"
        (w.tmp / "test_box.py").write_text(f"def test_box():\n    {check}\n")
    return setup


def _probe(code: int) -> Callable[[World], None]:
    def setup(w: World) -> None:
        w.fake.on(r"probe", (code, f"boot {SECRET}\n", ""))
    return setup


def _health(critical: bool) -> Callable[[World], None]:
    def setup(w: World) -> None:
        w.health.views = [HealthView(w.now + 1, ("portal",) if critical else ())]
    return setup


def _module(w: World) -> dict[str, Any]:
    (w.tmp / "test_box.py").touch()
    return {"module": str(w.tmp / "test_box.py")}


EXAMPLES: dict[str, Example] = {
    "run": Example(lambda w: {"command": "TOKEN={{ token }} deploy", "failure_regex": "error"},
                   _run_passes, _run_fails, lambda w: w.fake.ran("deploy"), ConnectionLostError),
    "put": Example(lambda w: {"src": "{{ local_dir }}/in-{{ token }}.txt", "dest": "/etc/{{ token }}.conf"},
                   _put_passes, None, lambda w: w.fake.ran("^put "), TransferError),
    "get": Example(lambda w: {"src": "/var/log/{{ token }}.log", "dest": "{{ local_dir }}/o-{{ token }}.log"},
                   _get_passes, None, lambda w: w.fake.ran("^get "), TransferError),
    "http": Example(lambda w: {"url": "{{ base_url }}/?token={{ token }}", "body_not_regex": "Fatal"},
                    _http(False), _http(True), lambda w: w.portal.hits, None),
    "http-from-host": Example(
        lambda w: {"url": "{{ base_url }}/?token={{ token }}", "body_not_regex": "Fatal", "from": "host"},
        _curl_on_host(False), _curl_on_host(True), lambda w: w.fake.ran("curl --silent"), ConnectionLostError,
        kind="http"),
    "testinfra": Example(_module, _testinfra(False), _testinfra(True), lambda w: w.fake.ran("^testinfra "),
                         None),
    "wait_healthy": Example(lambda w: {"soak": 30, "poll": 10}, _health(False), _health(True),
                            lambda w: w.health.calls, None),  # failing: one look per attempt
    # poll > its deadline (600 s): one probe per attempt
    "wait_host": Example(lambda w: {"command": "TOKEN={{ token }} probe", "poll": 1000}, _probe(0), _probe(1),
                         lambda w: w.fake.ran("probe"), WAITED_OUT),
}


@pytest.fixture(scope="module")
def portal() -> Iterator[PortalServer]:
    server = PortalServer(("127.0.0.1", 0), Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def world(tmp_path: Path, portal: PortalServer) -> World:
    portal.hits, portal.failing = 0, False
    return World(tmp_path, portal)


CASES = [kind.kind for kind in KINDS] + [name for name, e in EXAMPLES.items() if e.kind is not None]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in EXAMPLES:
        pytest.fail(f"step kind {name!r} has no example in test_step_contract.EXAMPLES")
    return name


def kind_of(case: str) -> str:
    return EXAMPLES[case].kind or case


def playbook_yaml(w: World, kind: str, options: object, **common: object) -> Path:
    step = {"name": f"the {kind} step", **common, kind: options}
    document = {
        "name": "contract",
        "variables": {
            "token": {"type": "str", "secret": True, "default": SECRET},
            "base_url": {"default": w.base_url},
            "local_dir": {"type": "path", "default": str(w.tmp)},
        },
        "phases": {"update": [step], "verify": [{"name": "v", "run": "true"}],
                   "rollback": [{"name": "r", "run": "true"}]},
    }
    path = w.tmp / "contract.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def load_step(w: World, case: str, **common: object) -> tuple[Step, dict[str, Any]]:
    playbook = load_playbook(playbook_yaml(w, kind_of(case), EXAMPLES[case].options(w), **common))
    values: dict[str, Any] = {**resolve_variables(playbook, {}), "run_id": 1, "host": "box1"}
    return playbook.steps(Phase.UPDATE)[0], values


def strings_of(outcome: StepOutcome) -> list[str]:
    found = [v for v in dataclasses.astuple(outcome) if isinstance(v, str)]
    return found + [f"{k}={v}" for k, v in outcome.captured.items()]


# ---------------------------------------------------------------------------------------------


def test_every_kind_has_an_example() -> None:
    assert sorted(k for k, e in EXAMPLES.items() if e.kind is None) == sorted(kind.kind for kind in KINDS)
    assert {e.kind for e in EXAMPLES.values() if e.kind is not None} <= {kind.kind for kind in KINDS}


def test_the_yaml_key_picks_the_kind_and_its_options_model(world: World, case: str) -> None:
    kind = kind_of(case)
    step, _ = load_step(world, case)
    model = next(k for k in KINDS if k.kind == kind)
    assert isinstance(step.action, model) and step.kind == kind
    if model.shorthand is not None:  # `kind: "value"` is `kind: {shorthand: value}`
        value = EXAMPLES[case].options(world)[model.shorthand]
        short = load_playbook(playbook_yaml(world, kind, value)).steps(Phase.UPDATE)[0]
        full = load_playbook(playbook_yaml(world, kind, {model.shorthand: value})).steps(Phase.UPDATE)[0]
        assert short.action == full.action


def test_an_unknown_option_is_refused_by_its_key_path(world: World, case: str) -> None:
    kind = kind_of(case)
    options = {**EXAMPLES[case].options(world), "no_such_option": 1}
    with pytest.raises(ConfigError) as info:
        load_playbook(playbook_yaml(world, kind, options))
    assert info.value.key == f"phases.update[0].{kind}.no_such_option"
    assert "no such key" in info.value.expected


def test_the_outcome_is_redacted(world: World, case: str) -> None:
    example = EXAMPLES[case]
    for setup in (example.passing, example.failing):
        if setup is None:
            continue
        setup(world)
        step, values = load_step(world, case)
        outcome = run_step(step, world.context(values))
        assert isinstance(outcome, StepOutcome) and outcome.ok is (setup is example.passing)
        for text in strings_of(outcome) + world.fake.recorded:
            assert SECRET not in text and "s3cr3t" not in text, (setup, text)
    if case == "http-from-host":  # the body carried the secret; the URL reached curl by environment
        assert "***" in outcome.stdout
        assert world.fake.commands and not any("s3cr3t" in text for text in world.fake.commands)
    if case == "run":  # the output carried the secret: it was there to be masked
        assert "***" in outcome.stdout
        # and the host got it in the command's environment, not in the command's text
        assert not any("s3cr3t" in text for text in world.fake.commands)
        assert {"BOXKEEPER_SECRET_token": SECRET} in world.fake.envs


def test_a_failing_step_is_retried_attempts_times(world: World, case: str) -> None:
    example = EXAMPLES[case]
    example.passing(world)
    step, values = load_step(world, case, retry={"attempts": 3, "delay": RETRY_DELAY})
    assert run_step(step, world.context(values)).ok
    assert RETRY_DELAY not in world.sleeps  # passed the first time: no retry
    if example.failing is None:  # its only failures are executor errors: see the next test
        return
    example.failing(world)
    before = example.attempts(world)
    outcome = run_step(step, world.context(values))
    assert not outcome.ok and example.attempts(world) - before == 3
    assert world.sleeps.count(RETRY_DELAY) == 2


def test_executor_errors_reach_the_engine_unretried(world: World, case: str) -> None:
    example = EXAMPLES[case]
    example.passing(world)
    step, values = load_step(world, case, retry={"attempts": 3, "delay": RETRY_DELAY})
    world.fake.drop_connection()
    if example.lost_connection == WAITED_OUT:  # the lost connection is waited out, the probe retried
        options = {**example.options(world), "poll": 2}
        retry = {"attempts": 3, "delay": RETRY_DELAY}
        playbook = load_playbook(playbook_yaml(world, EXAMPLES[case].kind or case, options, retry=retry))
        step = playbook.steps(Phase.UPDATE)[0]
        outcome = run_step(step, world.context(values))
        assert outcome.ok and example.attempts(world) == 2 and RETRY_DELAY not in world.sleeps
    elif isinstance(example.lost_connection, type):
        with pytest.raises(example.lost_connection):
            run_step(step, world.context(values))
        assert example.attempts(world) == 1 and RETRY_DELAY not in world.sleeps
    else:  # it never goes through the executor's connection, so a dropped one changes nothing
        assert run_step(step, world.context(values)).ok and world.fake.dropped


def test_unknown_kind_keys_are_named_from_the_registry(world: World) -> None:
    with pytest.raises(ConfigError) as info:
        load_playbook(playbook_yaml(world, "run", "true", script="true"))
    assert info.value.key == "phases.update[0].script"
    assert all(kind.kind in info.value.expected for kind in KINDS)


def test_the_kind_names_stored_runs_use_do_not_change() -> None:
    assert [kind.kind for kind in KINDS] == ["run", "put", "get", "http", "testinfra", "wait_healthy",
                                                "wait_host"]

