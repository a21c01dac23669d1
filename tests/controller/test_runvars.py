"""Per-host (and per-site) playbook variables in the controller config: validation, precedence,
typos, refusal without a portal URL; the same values for ``update run``, the API path and windows.

The host is the FakeExecutor (tests/controller/workflows/fakes.py); the store is a real SQLite file.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.cli import main
from controller.config import ControllerConfig, load, parse
from controller.errors import ConfigError
from controller.runtime import SHIPPED_PLAYBOOKS, WorkflowRuntime
from controller.runvars import run_values
from controller.store.db import Database
from controller.workflows.loader import load_playbook
from controller.workflows.models import WorkflowRun
from controller.workflows.playbook import Playbook
from controller.workflows.windows import add_window, occurrences
from tests.controller.workflows.conftest import TEST_PLAYBOOK
from tests.controller.workflows.fakes import FakeExecutor

# A second playbook of the same directory: it declares docroot and a required portal_url, which
# test-update does not declare.
PORTAL_PLAYBOOK = """
name: portal-check
variables:
  docroot: {type: path, default: /home/bitrix/www}
  portal_url: {type: str}
  web_restart: {type: argv, default: [systemctl, restart, httpd]}
  update_timeout: {type: int, default: 1800}
phases:
  update: [{name: u, run: "ls {{ docroot }}"}]
  verify: [{name: v, run: "true"}]
  rollback: [{name: r, run: "true"}]
"""


@pytest.fixture
def store(tmp_path: Path, migrated_sqlite: Callable[[Path], str]) -> Iterator[Database]:
    database = Database(migrated_sqlite(tmp_path / "boxkeeper.db"))  # a copy of the session's migrated file
    try:
        yield database
    finally:
        database.engine.dispose()


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    directory = tmp_path / "playbooks"
    directory.mkdir()
    (directory / "test-update.yaml").write_text(textwrap.dedent(TEST_PLAYBOOK))
    (directory / "portal-check.yaml").write_text(textwrap.dedent(PORTAL_PLAYBOOK))
    return directory


def config(tmp_path: Path, **host: Any) -> ControllerConfig:
    entry = {"name": "portal-01", "ssh": {"address": "127.0.2.99:22"}, **host}
    return parse({"state_dir": str(tmp_path / "state"),
                  "clients": [{"name": "acme", "hosts": [{"name": "other"}, entry]}]}, "controller.yaml")


def portal_check(playbooks: Path) -> Playbook:
    return load_playbook(playbooks / "portal-check.yaml")


DECLARED = ("backup_dir", "lock_dir", "api_token", "docroot", "portal_url", "web_restart", "update_timeout")


# --------------------------------------------------------------------------- config validation


@pytest.mark.parametrize(("host", "key", "expected"), [
    ({"vars": ["docroot"]}, "clients[0].hosts[1].vars", "a mapping of playbook variables to values"),
    ({"vars": {"doc-root": "/srv"}}, "clients[0].hosts[1].vars.doc-root", "a playbook variable name"),
    ({"vars": {"run_id": 3}}, "clients[0].hosts[1].vars.run_id", "not run_id or host"),
    ({"vars": {"docroot": {"path": "/srv"}}}, "clients[0].hosts[1].vars.docroot",
     "a string, a number, true/false or a list of words"),
    ({"sites": [{"name": "shop"}]}, "clients[0].hosts[1].sites[0].docroot", "(required)"),
    ({"sites": [{"name": "shop", "docroot": "ext_www/shop"}]}, "clients[0].hosts[1].sites[0].docroot",
     "an absolute path"),
    ({"sites": [{"name": "shop", "docroot": "/a"}, {"name": "shop", "docroot": "/b"}]},
     "clients[0].hosts[1].sites[1].name", "a site name unique on the host"),
    ({"sites": [{"name": "shop", "docroot": "/a", "portal_url": "shop.example"}]},
     "clients[0].hosts[1].sites[0].portal_url", "an http:// or https:// URL"),
    ({"sites": [{"name": "shop", "docroot": "/a", "cron": "/etc/crontab"}]},
     "clients[0].hosts[1].sites[0].cron", "no such key"),
])
def test_bad_host_vars_and_sites_name_the_file_and_key(tmp_path: Path, host: dict[str, Any], key: str,
                                                        expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, **host)
    assert info.value.source == "controller.yaml" and info.value.key == key
    assert expected in info.value.expected


def test_a_bad_host_var_is_named_but_its_value_not_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, vars={"api_token": {"value": "tok-7f3a9c"}})
    assert info.value.key == "clients[0].hosts[1].vars.api_token"
    assert "got a value not shown here" in str(info.value) and "tok-7f3a9c" not in str(info.value)


def test_the_example_config_describes_a_host_with_vars_and_sites() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "controller.example.yaml"
    cfg = load(example, environ={})
    found = cfg.host("portal-01")
    assert found is not None
    host = found[1]
    assert host.vars["docroot"] == "/home/bitrix/www" and host.vars["probe_from"] == "controller"
    assert [s.name for s in host.sites] == ["shop"]
    bitrix = load_playbook(SHIPPED_PLAYBOOKS / "bitrix-modules-update.yaml")
    values = run_values(cfg, "portal-01", bitrix, {}, site="shop",
                        declared_elsewhere={v.name for v in bitrix.variables})
    assert values["docroot"] == "/home/bitrix/ext_www/shop"
    assert values["portal_url"] == "https://shop.acme.example/"


# --------------------------------------------------------------------------- precedence


def test_precedence_var_over_site_over_host_over_defaults(tmp_path: Path, playbooks: Path) -> None:
    cfg = config(tmp_path, portal_url="https://portal.acme.example/",
                 vars={"docroot": "/srv/www", "update_timeout": 900,
                       "web_restart": "systemctl restart php-fpm"},
                 sites=[{"name": "shop", "docroot": "/home/bitrix/ext_www/shop",
                         "portal_url": "https://shop.acme.example/", "vars": {"update_timeout": 600}}])
    pb = portal_check(playbooks)
    host_only = run_values(cfg, "portal-01", pb, {}, declared_elsewhere=DECLARED)
    assert host_only == {"portal_url": "https://portal.acme.example/", "docroot": "/srv/www",
                         "update_timeout": 900, "web_restart": ("systemctl", "restart", "php-fpm")}
    site = run_values(cfg, "portal-01", pb, {}, site="shop", declared_elsewhere=DECLARED)
    assert (site["docroot"], site["portal_url"], site["update_timeout"]) == (
        "/home/bitrix/ext_www/shop", "https://shop.acme.example/", 600)
    given = run_values(cfg, "portal-01", pb, {"update_timeout": "30", "portal_url": "http://10.0.0.5/"},
                       site="shop", declared_elsewhere=DECLARED)
    assert (given["update_timeout"], given["portal_url"]) == ("30", "http://10.0.0.5/")
    # host vars.portal_url wins over the host's portal_url (which outage detection probes)
    cfg2 = config(tmp_path, portal_url="https://portal.acme.example/", vars={"portal_url": "http://127.0.0.1/"})
    assert run_values(cfg2, "portal-01", pb, {}, declared_elsewhere=DECLARED)["portal_url"] == "http://127.0.0.1/"


def test_a_var_another_playbook_declares_is_ignored_a_typo_is_refused(tmp_path: Path,
                                                                      playbooks: Path) -> None:
    cfg = config(tmp_path, portal_url="https://p.example/", vars={"backup_dir": "/srv/backup"})
    values = run_values(cfg, "portal-01", portal_check(playbooks), {}, declared_elsewhere=DECLARED)
    assert "backup_dir" not in values  # test-update's variable: not portal-check's business
    typo = config(tmp_path, portal_url="https://p.example/", vars={"docrot": "/srv/www"})
    with pytest.raises(ConfigError) as info:
        run_values(typo, "portal-01", portal_check(playbooks), {}, declared_elsewhere=DECLARED)
    assert str(info.value).startswith("controller.yaml: clients[0].hosts[1].vars.docrot: expected a variable "
                                      "that a playbook declares (portal-check has: docroot, portal_url,")
    assert info.value.got == "docrot"


def test_a_host_var_of_the_wrong_type_names_the_config_key(tmp_path: Path, playbooks: Path) -> None:
    cfg = config(tmp_path, portal_url="https://p.example/",
                 sites=[{"name": "shop", "docroot": "/srv/shop", "vars": {"update_timeout": "soon"}}])
    with pytest.raises(ConfigError) as info:
        run_values(cfg, "portal-01", portal_check(playbooks), {}, site="shop", declared_elsewhere=DECLARED)
    assert str(info.value) == ("controller.yaml: clients[0].hosts[1].sites[0].vars.update_timeout: "
                               "expected an integer, got 'soon'")
    with pytest.raises(ConfigError, match=r"sites: expected a site named 'blog' \(the host's sites: shop\)"):
        run_values(cfg, "portal-01", portal_check(playbooks), {}, site="blog", declared_elsewhere=DECLARED)


# --------------------------------------------------------------------------- runs through the runtime


def runtime(cfg: ControllerConfig, store: Database, playbooks: Path, fake: FakeExecutor) -> WorkflowRuntime:
    return WorkflowRuntime(cfg, store, playbooks_dir=str(playbooks), executors=lambda host: fake)


def runs(store: Database) -> list[dict[str, Any]]:
    """The stored runs' variables (secrets are never stored)."""
    with store.read_session() as s:
        return [dict(run.variables) for run in s.query(WorkflowRun)]


def test_no_portal_url_refuses_before_anything_runs(tmp_path: Path, store: Database, playbooks: Path) -> None:
    fake = FakeExecutor()
    rt = runtime(config(tmp_path), store, playbooks, fake)
    with pytest.raises(ConfigError) as info:
        rt.run("portal-check", "portal-01", {})
    assert info.value.key == "clients[0].hosts[1].portal_url"
    assert "set portal_url of host 'portal-01'" in info.value.expected
    assert "--var portal_url=URL" in info.value.expected and "does not guess" in info.value.expected
    assert fake.commands == [] and runs(store) == []  # nothing ran, no run was created
    # the same host with a portal_url in the config runs
    rt = runtime(config(tmp_path, portal_url="https://p.example/"), store, playbooks, fake)
    assert rt.run("portal-check", "portal-01", {}).state == "SUCCEEDED"


def test_the_shipped_bitrix_playbook_has_no_portal_url_default(tmp_path: Path, store: Database) -> None:
    """It used to probe http://127.0.0.1/ — of the controller — when the host had no portal_url."""
    fake = FakeExecutor()
    rt = WorkflowRuntime(config(tmp_path, vars={"docroot": "/home/bitrix/www"}), store,
                         executors=lambda host: fake)
    with pytest.raises(ConfigError, match=r"clients\[0\]\.hosts\[1\]\.portal_url: expected the portal's URL "
                                          r"for bitrix-modules-update"):
        rt.run("bitrix-modules-update", "portal-01", {})
    assert fake.commands == [] and runs(store) == []


def test_update_run_without_portal_url_exits_2_with_where_to_set_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(textwrap.dedent(f"""
        state_dir: {tmp_path}/state
        clients:
          - name: acme
            hosts:
              - name: portal-01
                ssh: {{address: "127.0.2.99:22"}}
                vars: {{docroot: /home/bitrix/www}}
        """))
    assert main(["--config", str(path), "update", "run", "bitrix-modules-update", "--host", "portal-01"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: clients[0].hosts[0].portal_url: expected the portal's URL" in err
    assert "set portal_url of host 'portal-01'" in err


def test_a_run_uses_the_host_vars(tmp_path: Path, store: Database, playbooks: Path) -> None:
    fake = FakeExecutor()
    fake.on("read-version", (0, "VERSION=1.0\n", "")).on("read-password", (0, "PASSWORD=pw\n", ""))
    fake.on("verify-backup", (0, "backup ok\n", ""))
    cfg = config(tmp_path, vars={"backup_dir": "/srv/backup", "docroot": "/srv/www"})
    rt = runtime(cfg, store, playbooks, fake)
    summary = rt.run("test-update", "portal-01", {"lock_dir": "/run/lock"})
    assert summary.state == "SUCCEEDED"
    assert fake.ran(r"^check-disk '?/srv/backup'?$") == 1  # host var
    assert fake.ran(r"/run/lock/update.lock") >= 1  # --var
    [stored] = runs(store)
    assert stored["backup_dir"] == "/srv/backup" and "docroot" not in stored


def test_a_window_run_uses_the_host_vars_and_records_a_refusal(tmp_path: Path, store: Database,
                                                               playbooks: Path) -> None:
    fake = FakeExecutor()
    fake.on("read-version", (0, "VERSION=1.0\n", "")).on("read-password", (0, "PASSWORD=pw\n", ""))
    fake.on("verify-backup", (0, "backup ok\n", ""))
    ssh = {"address": "127.0.2.99:22"}
    cfg = parse({"state_dir": str(tmp_path / "state"), "clients": [{"name": "acme", "hosts": [
        {"name": "canary", "ssh": ssh, "vars": {"backup_dir": "/srv/canary-backup"}},
        {"name": "web2", "ssh": ssh, "vars": {"backup_dir": "/srv/web2-backup", "lock_dri": "/run"}},  # typo
        {"name": "web3", "ssh": ssh, "vars": {"backup_dir": "/srv/web3-backup"}}]}]}, "controller.yaml")
    rt = runtime(cfg, store, playbooks, fake)
    start = datetime.now(UTC)
    with store.session() as s:  # a daily window that started this minute; its own variable wins
        window_id = add_window(s, name="nightly", target="client:acme", playbook="test-update",
                               cron=f"{start.minute} {start.hour} * * *", duration_minutes=120,
                               timezone="UTC", variables={"lock_dir": "/run/window-lock"}, now=time.time()).id
    rt.window_scheduler().run_window(window_id)
    assert fake.ran(r"^check-disk '?/srv/canary-backup'?$") == 1
    assert fake.ran(r"^check-disk '?/srv/web3-backup'?$") == 1
    assert fake.ran("web2") == 0  # refused before anything ran on it
    assert fake.ran(r"/run/window-lock/update.lock") >= 2
    with store.read_session() as s:
        [occurrence] = occurrences(s, window_id)
    assert occurrence["status"] == "done"
    assert "web2: refused: not started: controller.yaml: clients[0].hosts[1].vars.lock_dri: expected a " \
           "variable that a playbook declares" in occurrence["detail"]
    assert "canary: run 1 SUCCEEDED" in occurrence["detail"]
    assert "web3: run 2 SUCCEEDED" in occurrence["detail"]


def test_serve_warns_at_start_of_vars_no_playbook_declares(tmp_path: Path, store: Database, playbooks: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(tmp_path, vars={"backup_dir": "/srv/backup", "cron_fiel": "/etc/crontab"},
                 sites=[{"name": "shop", "docroot": "/srv/shop",
                         "vars": {"docroot_": "/x", "docroot": "/y"}}])
    rt = runtime(cfg, store, playbooks, FakeExecutor())
    with caplog.at_level("WARNING", logger="boxkeeper.workflows"):
        rt.start_service()
        rt.stop_service()
    warned = [r.getMessage() for r in caplog.records if "playbook declares" in r.getMessage()]
    assert warned == [
        "controller.yaml: clients[0].hosts[1].vars.cron_fiel: expected a variable that a playbook declares, "
        "got 'cron_fiel' (runs on this host are refused until it is fixed)",
        "controller.yaml: clients[0].hosts[1].sites[0].vars.docroot_: expected a variable that a playbook "
        "declares, got 'docroot_' (runs on this host are refused until it is fixed)",
    ]
