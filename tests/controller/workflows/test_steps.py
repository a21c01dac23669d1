"""Step kinds judged on their own: http (status, error page with 200), wait_healthy (no data = failure),
wait_host (a rebooting host: unreachable, then back; a deadline; a changed host key is not waited out)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import httpx
import pytest

from controller.errors import ConfigError
from controller.redact import Redactor
from controller.workflows.errors import ConnectError, ConnectionLostError, HostKeyMismatchError
from controller.workflows.loader import load_playbook, resolve_variables
from controller.workflows.steps.base import HealthView, Step, StepContext, run_step
from controller.workflows.steps.http import HttpAction
from controller.workflows.steps.wait_healthy import WaitHealthyAction
from controller.workflows.steps.wait_host import WaitHostAction
from tests.controller.workflows.fakes import FakeExecutor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Health:
    def __init__(self, views: list[HealthView]) -> None:
        self.views = views

    def latest(self, host: str) -> HealthView:
        return self.views.pop(0) if len(self.views) > 1 else self.views[0]


def ctx(http: httpx.Client | None = None, health: Health | None = None,
        clock: Clock | None = None, executor: FakeExecutor | None = None) -> StepContext:
    clock = clock or Clock()
    return StepContext("box1", executor or FakeExecutor(), {"url": "http://portal.test/"},
                       Redactor(["s3cret"]), http, health, clock, clock.sleep)


def portal(status: int, body: str) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status, text=body)))


ERRORS = re.compile("DB query error|Fatal error")


def test_http_step_checks_status_and_error_pages() -> None:
    action = HttpAction(url="{{ url }}", body_regex=re.compile("PORTAL_OK"), body_not_regex=ERRORS)
    step = Step("portal", action, 10)
    assert run_step(step, ctx(portal(200, "<p>PORTAL_OK</p>"))).ok
    failed = run_step(step, ctx(portal(500, "oops")))
    assert not failed.ok and failed.exit_code == 500 and "HTTP 500" in failed.message
    silent = run_step(step, ctx(portal(200, "<b>DB query error.</b> token s3cret")))
    assert not silent.ok and "error pattern" in silent.message
    assert "s3cret" not in silent.stdout and "***" in silent.stdout
    assert "lacks" in run_step(step, ctx(portal(200, "hello"))).message


def test_wait_healthy_needs_reports_and_no_hard_critical() -> None:
    step = Step("soak", WaitHealthyAction(soak=30, poll=10), 90)
    clock = Clock()
    fresh = HealthView(last_report_at=clock.now + 5)
    assert run_step(step, ctx(health=Health([fresh]), clock=clock)).ok
    clock = Clock()
    stale = HealthView(last_report_at=clock.now - 600)
    no_data = run_step(step, ctx(health=Health([stale]), clock=clock))
    assert not no_data.ok and "no data = failure" in no_data.message
    clock = Clock()
    critical = Health([HealthView(clock.now), HealthView(clock.now + 10, ("portal",))])
    bad = run_step(step, ctx(health=critical, clock=clock))
    assert not bad.ok and "hard CRITICAL: portal" in bad.message
    assert not run_step(step, ctx(health=None)).ok


def rebooting_host(clock: Clock, down_until: float) -> FakeExecutor:
    """Drops the connection, then refuses connections until ``down_until``, then answers."""
    host = FakeExecutor()
    host.drop_connection()

    def probe(text: str) -> tuple[int, str, str]:
        if clock.now < down_until:
            raise ConnectError("box1", "cannot connect to 127.0.0.1:22: connection refused")
        return (0, "boot id new\n", "")
    return host.on(r"boot-id", probe)


def test_wait_host_waits_out_a_reboot() -> None:
    clock = Clock()
    host = rebooting_host(clock, down_until=clock.now + 42)
    step = Step("back", WaitHostAction(command="boot-id", poll=5), 300)
    outcome = run_step(step, ctx(clock=clock, executor=host))
    assert outcome.ok and "boot id new" in outcome.stdout
    assert 1042 <= clock.now < 1050  # polled every 5 s; passed at the first probe once back


def test_wait_host_fails_at_its_deadline_naming_the_last_problem() -> None:
    clock = Clock()
    host = rebooting_host(clock, down_until=clock.now + 10_000)
    step = Step("back", WaitHostAction(command="boot-id", poll=5), 60)
    outcome = run_step(step, ctx(clock=clock, executor=host))
    assert not outcome.ok and "host not back within 60 s" in outcome.message
    assert "connection refused" in outcome.message
    assert clock.now <= 1060  # no probe after the deadline

    up_but_old = FakeExecutor().on(r"boot-id", (1, "boot id old\n", ""))
    outcome = run_step(Step("back", WaitHostAction(command="boot-id", poll=5), 20), ctx(executor=up_but_old))
    assert not outcome.ok and "probe exited 1" in outcome.message and up_but_old.ran("boot-id") == 5


def test_wait_host_does_not_wait_out_a_changed_host_key() -> None:
    host = FakeExecutor().on(r"boot-id", HostKeyMismatchError("box1", "host key differs from the pinned key"))
    with pytest.raises(HostKeyMismatchError):
        run_step(Step("back", WaitHostAction(command="boot-id"), 300), ctx(executor=host))
    lost = FakeExecutor().on(r"boot-id", ConnectionLostError("box1", "lost"), once=True)
    assert run_step(Step("back", WaitHostAction(command="boot-id"), 300), ctx(executor=lost)).ok
# --------------------------------------------------------------------------- http from the host (curl)

BODY_DIR = "/tmp/boxkeeper-http.Zx81"


def curl_printing(status: int, content_type: str, body: bytes, fake: FakeExecutor,
                  exit_code: int = 0, stderr: str = "") -> FakeExecutor:
    """The host's curl as the command runs it: --write-out's lines, the body in the temp dir."""
    def curl(command: str) -> tuple[int, str, str]:
        fake.files[f"{BODY_DIR}/body"] = body
        return (0, f"BOXKEEPER_DIR={BODY_DIR}\nBOXKEEPER_HTTP_STATUS={status:03d}\n"
                   f"BOXKEEPER_CONTENT_TYPE={content_type}\nBOXKEEPER_CURL_EXIT={exit_code}\n", stderr)
    return fake.on("curl --silent", curl)


def on_host(fake: FakeExecutor, **options: object) -> tuple[Step, StepContext]:
    action = HttpAction.model_validate({"url": "{{ url }}", "from": "host", **options})
    context = StepContext("box1", fake, {"url": "http://portal.test/?key=s3cret"}, Redactor(["s3cret"]), None)
    return Step("portal", action, 10), context


def test_http_from_the_host_is_judged_like_the_controllers_request() -> None:
    fake = curl_printing(200, "text/html; charset=windows-1251",
                         "<p>Портал работает PORTAL_OK</p>".encode("cp1251"), FakeExecutor())
    step, context = on_host(fake, body_regex="Портал работает", body_not_regex="DB query error")
    outcome = run_step(step, context)
    assert outcome.ok and outcome.exit_code == 200 and "Портал работает" in outcome.stdout
    assert outcome.command == "GET http://portal.test/?key=*** (from the host, curl)"
    [curl] = [c for c in fake.commands if "curl --silent" in c]
    assert "portal.test" not in curl and "--insecure" not in curl  # the URL travels in the environment
    assert {"BOXKEEPER_HTTP_URL": "http://portal.test/?key=s3cret"} in fake.envs
    assert fake.commands[-1] == f"rm -rf -- {BODY_DIR}"  # the box's temp dir is removed
    error_page = curl_printing(200, "text/html", b"<b>DB query error.</b>", FakeExecutor())
    step, context = on_host(error_page, body_not_regex="DB query error")
    failed = run_step(step, context)
    assert not failed.ok and "error pattern" in failed.message and failed.exit_code == 200
    status = curl_printing(502, "text/html", b"Bitrix Environment", FakeExecutor())
    step, context = on_host(status)
    assert run_step(step, context).message == "HTTP 502, expected [200]"


def test_http_from_the_host_says_when_curl_is_missing_or_fails() -> None:
    # what `command -v curl || { echo BOXKEEPER_NO_CURL >&2; exit 127; }` prints on a box without curl
    fake = FakeExecutor().on("curl --silent", (127, "", "BOXKEEPER_NO_CURL\n"))
    step, context = on_host(fake)
    missing = run_step(step, context)
    assert not missing.ok and missing.message.startswith("curl is not installed on the host")
    refused = curl_printing(0, "", b"", FakeExecutor(), exit_code=7,
                            stderr="curl: (7) Failed to connect to portal.test port 80: Connection refused\n")
    step, context = on_host(refused)
    outcome = run_step(step, context)
    assert not outcome.ok and outcome.exit_code is None
    assert outcome.message == ("request failed on the host: curl exit 7: curl: (7) Failed to connect to "
                               "portal.test port 80: Connection refused")
    assert refused.commands[-1] == f"rm -rf -- {BODY_DIR}"
    insecure = curl_printing(200, "", b"ok", FakeExecutor())
    step, context = on_host(insecure, verify_tls=False)
    assert run_step(step, context).command == "GET http://portal.test/?key=*** (from the host, curl) " \
                                              "(TLS not verified)"
    assert any("--insecure" in c for c in insecure.commands)


def test_from_and_verify_tls_from_variables_are_checked_before_a_run(tmp_path: Path) -> None:
    def playbook(http: str) -> Path:
        path = tmp_path / "p.yaml"
        path.write_text(textwrap.dedent(f"""
            name: p
            variables:
              side: {{default: controller}}
              tls: {{type: bool, default: true}}
              word: {{default: "yes"}}
            phases:
              update: [{{name: u, run: "true"}}]
              verify: [{{name: portal, http: {http}}}]
              rollback: [{{name: r, run: "true"}}]
            """))
        return path

    pb = load_playbook(playbook('{url: "http://x/", from: "{{ side }}", verify_tls: "{{ tls }}"}'))
    assert resolve_variables(pb, {"side": "host", "tls": "false"})["side"] == "host"
    with pytest.raises(ConfigError) as info:
        resolve_variables(pb, {"side": "box"})
    assert str(info.value) == (f"{tmp_path}/p.yaml: phases.verify[0].http.from: expected controller or host "
                               "(the value of {{ side }}), got 'box'")
    bad_tls = load_playbook(playbook('{url: "http://x/", verify_tls: "{{ word }}"}'))
    with pytest.raises(ConfigError, match=r"verify\[0\]\.http\.verify_tls: expected true or false"):
        resolve_variables(bad_tls, {})
    with pytest.raises(ConfigError, match=r"verify\[0\]\.http\.from: expected controller or host"):
        load_playbook(playbook('{url: "http://x/", from: box}'))
    with pytest.raises(ConfigError, match=r"verify\[0\]\.http\.from: expected only declared variables"):
        load_playbook(playbook('{url: "http://x/", from: "{{ where }}"}'))


def test_run_captures_several_values_from_one_output_or_none() -> None:
    from controller.workflows.steps.run import RunAction

    action = RunAction.model_validate({"command": "settings", "captures": [
        {"name": "host", "regex": "^HOST=(.+)$"}, {"name": "pw", "regex": "^PW=(.+)$", "secret": True}]})
    step = Step("settings", action, 10)
    c = ctx()
    c.executor.on("settings", (0, "HOST=db1\nPW=hunter2\n", ""))  # type: ignore[attr-defined]
    outcome = run_step(step, c)
    assert outcome.ok and outcome.captured == {"host": "db1", "pw": "hunter2"}
    assert "hunter2" not in outcome.stdout  # a secret one of several is masked like a single one
    c.executor.on("settings", (0, "HOST=db1\n", ""))  # type: ignore[attr-defined]
    missing = run_step(step, c)
    assert not missing.ok and missing.captured == {} and "capture pw" in missing.message
