"""The web page in a real headless browser (Debian's chromium, driven by selenium through Debian's
chromedriver), against a real controller (monitor, workflows) on uvicorn, a real agent and a real
test box (sshd, nginx, PHP-FPM, MariaDB).

An operator signs in, sees the box go critical after nginx is stopped (without reloading the page:
the fleet and the incidents list refresh themselves), acknowledges the incident and notes the minutes
spent, starts a small playbook on the box through the confirmation page and watches the run finish
(again without a reload), starts a rollout (a dry run on the client's hosts) through its
confirmation, holds a release by hand, adds an update window and changes its schedule, opens the
monthly report, switches to Russian, signs out; then a viewer signs in on the same page and cannot
start a run or a rollout (one test: one controller, agent, box and browser for both, which is most
of its time).

With ``BOXKEEPER_SCREENSHOTS=1`` every page is also saved to docs/ui/ (desktop and phone width).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from controller import inventory, operators
from controller.api import create_app
from controller.config import load
from controller.monitor import Monitor
from controller.runtime import WorkflowRuntime
from controller.store.db import Database
from controller.ui.access import Role
from controller.workflows.models import WorkflowRun
from tests.boxes.box import Box
from tests.controller.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "docs" / "ui"
PLAYBOOK = Path(__file__).parent / "playbooks" / "ui-demo.yaml"
AGENT_HOST = "127.0.2.30"
WAIT = 120  # seconds: the longest any one wait below may take before the test fails
DESKTOP = (1280, 900)
SECRET = "s3cr3t-demo-token"
PHONE = (390, 844)


def roles(name: str) -> tuple[Role, frozenset[str] | None]:
    """The operators file has no roles yet: the page's one access function is told victor is a viewer."""
    return ("viewer", None) if name == "victor" else ("admin", None)


class Browser:
    def __init__(self, driver: WebDriver, base: str) -> None:
        self.d = driver
        self.base = base

    def open(self, path: str) -> None:
        self.d.get(self.base + path)

    def text(self, css: str) -> str:
        for _ in range(5):  # a part that refreshes itself may be replaced between find and read
            try:
                return str(self.d.find_element(By.CSS_SELECTOR, css).text)
            except StaleElementReferenceException:
                continue
        return str(self.d.find_element(By.CSS_SELECTOR, css).text)

    def has(self, css: str) -> bool:
        return bool(self.d.find_elements(By.CSS_SELECTOR, css))

    def click(self, css: str) -> None:
        self.d.find_element(By.CSS_SELECTOR, css).click()

    def type(self, css: str, value: str) -> None:
        field = self.d.find_element(By.CSS_SELECTOR, css)
        field.clear()
        field.send_keys(value)

    def wait(self, what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
        try:
            # the refreshed parts are replaced under the test's feet: a stale element means "look again"
            return WebDriverWait(self.d, timeout, poll_frequency=0.2,
                                 ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
                                 ).until(lambda _d: probe())
        except WebDriverException as exc:
            raise AssertionError(f"timed out waiting for {what} on {self.d.current_url}") from exc

    def mark(self) -> None:
        """A marker in the page's JavaScript state: it survives only while the page is not reloaded."""
        self.d.execute_script("window.__boxkeeperMark = 'still-here';")

    def not_reloaded(self) -> bool:
        return bool(self.d.execute_script("return window.__boxkeeperMark === 'still-here';"))

    def shot(self, name: str) -> None:
        if os.environ.get("BOXKEEPER_SCREENSHOTS") != "1":
            return
        import base64
        SHOTS.mkdir(parents=True, exist_ok=True)
        for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
            self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": label == "phone"})
            png = self.d.execute_cdp_cmd("Page.captureScreenshot",
                                         {"format": "png", "captureBeyondViewport": True})
            (SHOTS / f"{name}-{label}.png").write_bytes(base64.b64decode(png["data"]))
        self.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.fixture
def chromium() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--lang=en-US"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(options=options,
                              service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


def write_config(box: Box, tmp: Path) -> Path:
    config = {
        "state_dir": str(tmp / "state"),
        "database": f"sqlite:///{tmp}/state/boxkeeper.db",
        "detection": {"evaluate_interval": "1s"},
        "clients": [
            {"name": "acme", "timezone": "Europe/Moscow", "hosts": [{
                "name": box.name, "portal_url": box.info.portal_url,
                "ssh": {"address": f"{box.info.address}:{box.info.ssh_port}", "user": box.info.ssh_user,
                        "key_file": box.info.ssh_key},
            }]},
            {"name": "globex", "hosts": [{"name": "erp1"}]},
        ],
    }
    path = tmp / "controller.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def controller(box: Box, tmp_path: Path, live_server: Callable[..., str]) -> Iterator[dict[str, Any]]:
    cfg = load(write_config(box, tmp_path))
    db = Database(cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    agent_token = inventory.add_host(db, box.name, "acme")
    (Path(cfg.state_dir) / "known_hosts").write_text(box.info.known_hosts.strip() + "\n")  # pinned
    ops = Path(cfg.operator_tokens_file)
    tokens = {name: operators.add_operator(ops, name) for name in ("alice", "victor")}
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    shutil.copy(PLAYBOOK, playbooks / PLAYBOOK.name)
    app = create_app(cfg, db, monitor=Monitor(cfg, db),
                     workflows=WorkflowRuntime(cfg, db, playbooks_dir=str(playbooks)))
    app.state.ui_roles = roles
    url = live_server(app)

    token_file = tmp_path / "agent.token"
    token_file.write_text(agent_token + "\n")
    token_file.chmod(0o600)
    agent_cfg = tmp_path / "agent.yaml"
    agent_cfg.write_text(f"""host: {box.name}
interval: 1s
listen: {AGENT_HOST}:{free_port(AGENT_HOST)}
controller: {{url: "{url}", token_file: {token_file}, push_interval: 1s}}
spool: {{dir: {tmp_path}/spool}}
checks:
  - {{name: portal, type: http, url: "{box.info.portal_url}", interval: 1s, timeout: 5s}}
""", encoding="utf-8")
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 (the child owns it)
    agent = subprocess.Popen([str(Path(sys.executable).parent / "boxkeeper-agent"), "run", "--config",
                              str(agent_cfg)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        yield {"url": url, "tokens": tokens, "db": db, "box_root": str(Path(box.info.docroot).parents[2])}
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(timeout=10)
        db.dispose()


def sign_in(b: Browser, token: str, *, shot: bool = False) -> None:
    b.open("/ui/")
    b.wait("the sign-in form", lambda: b.has("#token"))
    assert "/ui/login" in b.d.current_url
    if shot:
        b.shot("login")
    b.type("#token", token)
    b.click("#sign-in")
    b.wait("the fleet page", lambda: b.has("#fleet"))


def host_state(b: Browser, host: str) -> str:
    found = b.d.find_elements(By.CSS_SELECTOR, f'tr[data-host="{host}"] [data-state]')
    return str(found[0].get_attribute("data-state")) if found else ""


def test_operator_sees_a_fault_acks_it_runs_a_playbook_and_a_rollout_and_a_viewer_cannot(
    chromium: WebDriver, controller: dict[str, Any], box: Box,
) -> None:
    b = Browser(chromium, controller["url"])
    sign_in(b, controller["tokens"]["alice"], shot=True)
    assert "alice" in b.text("#whoami")

    # The agent reports, the fleet shows the box OK; then nginx stops and the same page (never
    # reloaded) turns the box critical on its own.
    def reported_ok() -> bool:  # reloading: the page's own refresh is tested below, after the fault
        b.open("/ui/")
        return host_state(b, box.name) == "ok"

    b.wait("the box to report OK", reported_ok)
    b.mark()
    box.fault("stop-nginx")
    b.wait("the box to turn critical on the open page", lambda: host_state(b, box.name) == "critical")
    assert b.not_reloaded()
    row = b.text(f'tr[data-host="{box.name}"]')
    assert "portal" in row  # the failing check is named
    assert b.has('tr[data-host="erp1"]')  # the other client's host, never reported
    b.shot("fleet")

    b.click(f'tr[data-host="{box.name}"] a')
    b.wait("the host page", lambda: b.has("#host-state"))
    assert b.text("#host-state") in ("critical", "CRITICAL")
    portal = b.text('tr[data-check="portal"]')
    assert "critical" in portal.lower() and "ok → critical" in portal
    b.shot("host")

    b.open(f"/ui/incidents?host={box.name}")  # the list refreshes itself until the monitor opens it
    b.mark()
    b.wait("the incident on the open list", lambda: b.has("tr.incident"))
    assert b.not_reloaded()
    b.shot("incidents")
    b.click("tr.incident a")
    b.wait("the incident page", lambda: b.has("#incident-status"))
    assert "portal" in b.text("#incident-summary")
    b.click("#ack")
    b.wait("the acknowledgement", lambda: b.text("#incident-status") == "acknowledged")
    assert not b.has("#ack") and b.has("#resolve")
    b.type("#note-text", "nginx stopped on purpose: <b>drill</b>")
    b.type("#note-minutes", "12")
    b.click("#add-note")
    b.wait("the note on the timeline", lambda: "[12 min]" in b.text("#timeline"))
    timeline = b.text("#timeline")
    assert "acknowledged · alice" in timeline
    assert "nginx stopped on purpose: <b>drill</b> [12 min]" in timeline  # shown as text, not markup
    b.shot("incident")

    # A run: the form, the confirmation naming host and playbook, then the run page until it ends.
    b.open("/ui/runs")
    b.click("#start-run")
    b.wait("the run form", lambda: b.has("#run-host"))
    Select(b.d.find_element(By.CSS_SELECTOR, "#run-host")).select_by_value(box.name)
    Select(b.d.find_element(By.CSS_SELECTOR, "#run-playbook")).select_by_value("ui-demo")
    b.type("#run-vars", f"root={controller['box_root']}\ndemo_token={SECRET}")
    b.shot("run-new")
    b.click("#run-next")
    b.wait("the confirmation page", lambda: b.has("#run-confirm"))
    assert b.text("#confirm-host") == box.name and b.text("#confirm-playbook") == "ui-demo"
    assert SECRET not in b.text("#confirm-text") and "***" in b.text("#confirm-text")
    b.shot("run-confirm")
    b.click("#run-confirm")
    b.wait("the run page", lambda: b.has("#run-state"))
    run_id = b.d.current_url.rstrip("/").rsplit("/", 1)[-1]
    assert run_id.isdigit()
    b.mark()
    seen = {b.text("#run-state")}
    # the playbook's update step goes on until the page has shown the run updating
    b.wait("the run updating on the open page", lambda: b.text("#run-state") == "UPDATE")
    seen.add("UPDATE")
    b.shot("run-going")
    (Path(controller["box_root"]) / "run" / "ui-demo.go").touch()

    def finished() -> bool:
        seen.add(b.text("#run-state"))
        return b.d.find_element(By.CSS_SELECTOR, "#run-state").get_attribute("data-finished") == "yes"

    b.wait("the run to finish on the open page", finished)
    assert b.not_reloaded()
    assert b.text("#run-state") == "SUCCEEDED", b.text("#run")
    assert seen - {"SUCCEEDED"}, seen  # it was seen while it went, not only at the end
    steps = b.text("#steps")
    for step in ("archive index.php", "slow update", "index.php still there"):
        assert step in steps
    archive = f"{controller['box_root']}/home/bitrix/backup/archive/ui-demo-{run_id}.tar"
    assert b.text("#backup-location") == archive and Path(archive).is_file()
    b.d.find_element(By.XPATH, "//li[contains(., 'slow update')]//summary").click()
    assert "go" in b.text("#steps").split()  # the step's output tail
    assert SECRET not in b.d.page_source
    b.shot("run")
    b.open("/ui/runs")
    assert b.has(f'tr[data-run="{run_id}"]')
    b.shot("runs")

    # A rollout: the form (hosts of a client, a dry run), the confirmation naming hosts and playbook.
    b.open("/ui/rollouts")
    b.click("#start-rollout")
    b.wait("the rollout form", lambda: b.has("#ro-playbook"))
    Select(b.d.find_element(By.CSS_SELECTOR, "#ro-playbook")).select_by_value("ui-demo")
    b.click("#ro-scope-client")
    Select(b.d.find_element(By.CSS_SELECTOR, "#ro-client")).select_by_value("acme")
    b.type("#ro-vars", f"root={controller['box_root']}\ndemo_token={SECRET}")
    b.click("#ro-dry-run")
    b.shot("rollout-new")
    b.click("#ro-next")
    b.wait("the rollout confirmation", lambda: b.has("#rollout-confirm"))
    assert b.text("#confirm-playbook") == "ui-demo"
    hosts = [e.text for e in b.d.find_elements(By.CSS_SELECTOR, "#confirm-hosts .confirm-host")]
    assert hosts == [box.name]  # erp1 has no SSH address: not in it
    assert b.text('.confirm-batch[data-batch="0"]').startswith("canary")
    assert SECRET not in b.text("#confirm-text")
    b.shot("rollout-confirm")
    b.click("#rollout-confirm")
    b.wait("the rollout page", lambda: b.has("#rollout-state"))

    def rollout_ended() -> bool:
        b.d.refresh()
        return "SUCCEEDED" in b.text("#rollout-state")

    b.wait("the rollout to succeed", rollout_ended)
    assert "alice" in b.text("main") and b.has(f'tr.rollout-host[data-host="{box.name}"]')
    b.shot("rollout")
    b.open("/ui/rollouts")
    assert "alice" in b.text("tr.rollout")
    b.shot("rollouts")

    b.open("/ui/holds")  # a release held by hand
    b.type("#hold-release", "main=24.200.0")
    b.type("#hold-reason", "breaks the CRM forms")
    b.click("#hold-submit")
    b.wait("the hold listed", lambda: "breaks the CRM forms" in b.text("table.holds"))
    assert "alice" in b.text("tr.hold") and b.has("tr.hold button")
    b.shot("holds")

    b.open("/ui/windows")
    b.click("#add-window")
    b.wait("the window form", lambda: b.has("#w-name"))
    b.type("#w-name", "acme-saturday")
    Select(b.d.find_element(By.CSS_SELECTOR, "#w-target")).select_by_value("client:acme")
    b.type("#w-cron", "0 3 * * 6")
    b.click("#w-submit")
    b.wait("the windows list", lambda: b.has('tr[data-window="acme-saturday"]'))
    assert "Europe/Moscow" in b.text('tr[data-window="acme-saturday"]')
    b.click("#edit-acme-saturday")  # its schedule changed on the page
    b.wait("the window's edit form", lambda: b.has("#we-cron"))
    b.type("#we-cron", "0 4 * * 0")
    b.shot("window-edit")
    b.click("#we-submit")
    b.wait("the changed window", lambda: "0 4 * * 0" in b.text('tr[data-window="acme-saturday"]'))
    b.shot("windows")
    b.open("/ui/")
    assert "acme-saturday" in b.text(f'tr[data-host="{box.name}"]')  # the fleet names the next window

    b.open("/ui/reports")
    b.shot("reports")
    b.click("#show-report")
    b.wait("the monthly report", lambda: "Monthly report: acme" in b.text("body"))
    b.shot("report")
    b.open("/ui/")

    b.click("#lang-switch")
    b.wait("the Russian page", lambda: b.d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ru")
    assert "Парк серверов" in b.text("h1") and "следующее окно обновлений" in b.text("#fleet").lower()
    b.shot("fleet-ru")
    b.click("#lang-switch")

    b.click("#sign-out")
    b.wait("the sign-in form", lambda: b.has("#token"))
    b.open("/ui/")
    assert "/ui/login" in b.d.current_url

    # A viewer, on the same page: sees, but cannot start a run or a rollout.
    with controller["db"].read_session() as s:
        runs_before = s.query(WorkflowRun).count()
    sign_in(b, controller["tokens"]["victor"])
    assert "viewer" in b.text("#whoami") and b.has(f'tr[data-host="{box.name}"]')
    b.open("/ui/runs")
    assert not b.has("#start-run")
    b.open("/ui/rollouts")
    assert not b.has("#start-rollout") and b.has("tr.rollout")
    b.open(f"/ui/hosts/{box.name}")
    assert not b.has("#host-start-run")
    b.open("/ui/rollouts/new")
    assert "viewer may not rollout.start" in b.text("#message")
    b.open(f"/ui/runs/new?host={box.name}")
    assert "viewer may not run.start" in b.text("#message")
    b.shot("viewer-refused")
    b.open("/ui/holds")
    assert not b.has("#hold-form") and not b.has("tr.hold button")
    with controller["db"].read_session() as s:
        assert s.query(WorkflowRun).count() == runs_before
