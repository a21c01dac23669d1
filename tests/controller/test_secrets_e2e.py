"""No secret of the config leaves ``serve``: a full run with every channel, a playbook secret and DEBUG logs.

``boxkeeper serve --workers 2 --log-level debug`` on a real PostgreSQL whose role logs in with a
password (scram-sha-256: the workers must really get it), with a Telegram token, a Slack-style
webhook URL, a Bitrix24 incoming webhook URL and a real Alertmanager behind basic auth. An agent
report opens an incident that is delivered on all four channels; a playbook run on a test box
uses a secret variable (which the box even prints). Then every log line, the whole database
(timelines, outbox rows, runs, reports: ``pg_dump``), the API's answers, /metrics and the
environment and argv of the serve process and its workers are searched for each secret.
"""

from __future__ import annotations

import base64
import json
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import psutil
import pytest
import yaml

from controller import inventory, operators
from controller.config import load
from controller.store.db import Database
from tests.boxes.box import Box
from tests.controller.alerting.bitrix24_portal import portal
from tests.controller.alerting.support import free_port, recorder, secret_file
from tests.controller.conftest import PG_BIN, PG_HOST, PostgresServer
from tests.controller.proc import ControllerProcess
from tests.controller.reports import body, headers, make_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
RECEIVERS = "127.0.3.61"

TELEGRAM_TOKEN = "7355608:AAHsecretTelegramTokenZq81"
WEBHOOK_PATH = "/services/T0BOXKEEP/B0SECRET/SlackHookCredential4fa9"
B24_CODE = "b24WebhookCode7xq3"
AM_USER, AM_PASSWORD = "bkalerts", "AmBasicAuth-pw-93kd"
DB_ROLE, DB_PASSWORD = "bk_secret_role", "DbPassword-k2v9-secret"
PLAYBOOK_SECRET = "PlaybookApiToken-5d1c"

PLAYBOOK = """
name: secret-demo
variables:
  api_token: {type: str, secret: true}
phases:
  preflight:
    - name: token given
      run: TOKEN={{ api_token }} sh -c 'test -n "$TOKEN" && echo "token of ${#TOKEN} characters"'
  update:
    - name: a tool that prints the token
      run: TOKEN={{ api_token }} sh -c 'echo "using token $TOKEN"'
  verify:
    - name: done
      after: update
      run: "true"
  rollback:
    - name: nothing to undo
      run: "true"
"""


def password_role(server: PostgresServer) -> str:
    """A database owned by a role that must log in with its password (scram-sha-256), on the
    session's server: one pg_hba line for this role only, before the "trust" lines."""
    server.psql(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_ROLE}') THEN "
        f"CREATE ROLE {DB_ROLE} LOGIN PASSWORD '{DB_PASSWORD}'; END IF; END $$"
    )
    name = f"bk_secrets_{int(time.time() * 1000)}"
    server.psql(f"CREATE DATABASE {name} OWNER {DB_ROLE}")
    hba = server.data / "pg_hba.conf"
    line = f"host all {DB_ROLE} 127.0.0.0/8 scram-sha-256\n"
    text = hba.read_text()
    if line not in text:
        hba.write_text(line + text)
        server.psql("SELECT pg_reload_conf()")
    return name


def wrong_password_refused(server: PostgresServer, database: str) -> bool:
    url = f"postgresql+psycopg://{DB_ROLE}:wrong@{PG_HOST}:{server.port}/{database}"
    probe = Database(url)
    try:
        probe.upgrade()
    except Exception as exc:  # any refusal will do: checked by its message
        return "password authentication failed" in str(exc)
    finally:
        probe.dispose()
    return False


@pytest.fixture
def alertmanager_with_basic_auth(tmp_path: Path) -> Iterator[str]:
    port = free_port(RECEIVERS)
    (tmp_path / "am.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    hashed = bcrypt.hashpw(AM_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "am-web.yml").write_text(yaml.safe_dump({"basic_auth_users": {AM_USER: hashed}}))
    (tmp_path / "am-data").mkdir()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address={RECEIVERS}:{port}",
            f"--web.config.file={tmp_path / 'am-web.yml'}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{RECEIVERS}:{port}"
    try:
        wait(
            lambda: httpx.get(url + "/-/ready", auth=(AM_USER, AM_PASSWORD), timeout=1).status_code == 200,
            "alertmanager ready",
            30,
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def wait(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_no_secret_of_the_config_is_logged_stored_answered_or_in_an_environment(
    box: Box,
    tmp_path: Path,
    postgres_server: PostgresServer,
    alertmanager_with_basic_auth: str,
) -> None:
    database = password_role(postgres_server)
    assert wrong_password_refused(postgres_server, database)  # the password is really needed
    state = tmp_path / "state"
    state.mkdir()
    (state / "known_hosts").write_text(box.info.known_hosts.strip() + "\n")
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "secret-demo.yaml").write_text(textwrap.dedent(PLAYBOOK))
    am_host = alertmanager_with_basic_auth.removeprefix("http://")

    with (
        recorder(RECEIVERS, answer={"ok": True, "result": {"message_id": 1}}) as telegram,
        recorder(RECEIVERS) as hook,
        portal(RECEIVERS, code=B24_CODE) as b24,
    ):
        webhook_url = hook.url + WEBHOOK_PATH
        secrets = {
            "telegram token": TELEGRAM_TOKEN,
            "webhook URL": webhook_url,
            "webhook URL's path": WEBHOOK_PATH,
            "bitrix24 webhook URL": b24.webhook,
            "bitrix24 webhook code": B24_CODE,
            "alertmanager password": AM_PASSWORD,
            "alertmanager basic auth": base64.b64encode(f"{AM_USER}:{AM_PASSWORD}".encode()).decode(),
            "database password": DB_PASSWORD,
            "playbook secret": PLAYBOOK_SECRET,
        }
        config = {
            "state_dir": str(state),
            "database": f"postgresql+psycopg://{DB_ROLE}:{DB_PASSWORD}@{PG_HOST}:{postgres_server.port}/{database}",
            "clients": [
                {
                    "name": "acme",
                    "hosts": [
                        {
                            "name": box.name,
                            "ssh": {
                                "address": f"{box.info.address}:{box.info.ssh_port}",
                                "user": box.info.ssh_user,
                                "key_file": box.info.ssh_key,
                            },
                        }
                    ],
                }
            ],
            "notify": [
                {
                    "type": "telegram",
                    "chat_id": "-1001",
                    "api_base": telegram.url,
                    "token_file": str(secret_file(tmp_path / "tg.token", TELEGRAM_TOKEN)),
                },
                {"type": "webhook", "url": webhook_url},
                {
                    "type": "bitrix24",
                    "dialog_id": "chat7",
                    "webhook_file": str(secret_file(tmp_path / "b24.webhook", b24.webhook)),
                },
                {"type": "alertmanager", "url": f"http://{AM_USER}:{AM_PASSWORD}@{am_host}"},
            ],
        }
        path = tmp_path / "controller.yaml"
        path.write_text(yaml.safe_dump(config))
        cfg = load(path)
        db = Database(cfg.database)
        db.upgrade()
        inventory.sync_config(cfg, db)
        agent_token = inventory.add_host(db, box.name, "acme", cfg=cfg)
        db.dispose()
        operator = operators.add_operator(Path(cfg.operator_tokens_file), "alice")
        auth = {"Authorization": f"Bearer {operator}"}

        controller = ControllerProcess(
            path,
            tmp_path,
            log_level="debug",
            extra_env={"BOXKEEPER_WORKERS": "2", "BOXKEEPER_PLAYBOOKS": str(playbooks)},
        )
        try:
            url = controller.start(timeout=180)  # two workers start slowly on a loaded machine
            assert controller.proc is not None
            serve = psutil.Process(controller.proc.pid)
            workers = [p for p in serve.children(recursive=True) if "python" in p.name()]
            assert len(workers) >= 2, controller.log_tail()

            pushed = httpx.post(
                f"{url}/api/v1/reports",
                headers=headers(agent_token),
                timeout=30,
                content=body(make_report(box.name, 1, checks=1, status=2)),
            )
            assert pushed.status_code == 200, pushed.text
            wait(
                lambda: bool(
                    telegram.requests
                    and hook.requests
                    and b24.messages
                    and httpx.get(
                        alertmanager_with_basic_auth + "/api/v2/alerts",
                        auth=(AM_USER, AM_PASSWORD),
                        timeout=5,
                    ).json()
                ),
                "the incident on all four channels",
                90,
            )
            assert all(r["path"] == f"/bot{TELEGRAM_TOKEN}/sendMessage" for r in telegram.requests)
            assert all(r["path"] == WEBHOOK_PATH for r in hook.requests)

            started = httpx.post(
                f"{url}/api/v1/runs",
                headers=auth,
                timeout=30,
                json={"playbook": "secret-demo", "host": box.name, "vars": {"api_token": PLAYBOOK_SECRET}},
            )
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]
            run: dict[str, Any] = {}

            def finished() -> bool:
                run.update(httpx.get(f"{url}/api/v1/runs/{run_id}", headers=auth, timeout=10).json())
                return run["state"] in ("SUCCEEDED", "FAILED", "ROLLED_BACK", "QUARANTINED")

            wait(finished, f"run {run_id}", 120)
            assert run["state"] == "SUCCEEDED", run
            run_text = json.dumps(run)
            assert "using token ***" in run_text  # the box printed it; the audit trail masks it

            answers = {}
            incidents = httpx.get(f"{url}/api/v1/incidents", headers=auth, timeout=10).json()
            assert incidents, "the report opened no incident"
            for endpoint in (
                "/api/v1/hosts",
                f"/api/v1/hosts/{box.name}",
                f"/api/v1/hosts/{box.name}/changes",
                "/api/v1/checks",
                "/api/v1/incidents",
                f"/api/v1/incidents/{incidents[0]['id']}",
                "/api/v1/runs",
                f"/api/v1/runs/{run_id}",
                "/api/v1/windows",
                "/openapi.json",
                "/healthz",
                "/metrics",
            ):
                answer = httpx.get(url + endpoint, headers=auth, timeout=10)
                assert answer.status_code == 200, (endpoint, answer.text)
                answers[f"API {endpoint}"] = answer.text
            processes = {f"process {p.pid} {p.name()}": p for p in [serve, *workers]}
            places = {
                **answers,
                **{
                    f"{name} environment": Path(f"/proc/{p.pid}/environ")
                    .read_bytes()
                    .decode(errors="replace")
                    for name, p in processes.items()
                },
                **{f"{name} argv": " ".join(p.cmdline()) for name, p in processes.items()},
            }
        finally:
            controller.stop()
        log = controller.log_tail_all()
        assert "HTTP Request: POST" in log and " DEBUG " in log  # httpx's own lines, at DEBUG, were there
        places["serve log"] = log
        dump = subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_dump"),
                "-h",
                PG_HOST,
                "-p",
                str(postgres_server.port),
                "-U",
                "postgres",
                "--data-only",
                database,
            ],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout.decode(errors="replace")
        assert "secret-demo" in dump and "opened" in dump  # the run and the timeline are in it
        places["database (pg_dump: timelines, outbox, runs, reports)"] = dump

    leaks = [
        f"{what} in {where}"
        for what, value in secrets.items()
        for where, text in places.items()
        if value in text
    ]
    assert not leaks, leaks
    # the search itself finds what is there: the config and its secret files hold them
    control = "".join(
        [yaml.safe_dump(config), (tmp_path / "tg.token").read_text(), (tmp_path / "b24.webhook").read_text()]
    )
    assert [what for what, value in secrets.items() if value not in control] == [
        "alertmanager basic auth",
        "playbook secret",
    ]


def test_a_database_url_given_in_the_environment_is_not_passed_on_to_the_workers(tmp_path: Path) -> None:
    """BOXKEEPER_DATABASE may hold the password: serve reads it, its workers do not inherit it."""
    config = tmp_path / "controller.yaml"
    config.write_text(f"state_dir: {tmp_path}/state\nclients: [{{name: acme}}]\n")
    database = f"sqlite:///{tmp_path}/from-the-environment.db"
    controller = ControllerProcess(
        config, tmp_path, extra_env={"BOXKEEPER_WORKERS": "2", "BOXKEEPER_DATABASE": database}
    )
    try:
        controller.start(timeout=180)
        assert controller.proc is not None
        serve = psutil.Process(controller.proc.pid)
        workers = [p for p in serve.children(recursive=True) if "python" in p.name()]
        assert len(workers) >= 2, controller.log_tail()
        environments = {p.pid: Path(f"/proc/{p.pid}/environ").read_bytes() for p in [serve, *workers]}
        assert b"BOXKEEPER_DATABASE=" in environments[serve.pid]  # given to serve (the test's choice)
        assert [
            pid for pid, env in environments.items() if pid != serve.pid and b"BOXKEEPER_DATABASE" in env
        ] == []
        assert (tmp_path / "from-the-environment.db").exists()  # and used
    finally:
        controller.stop()
