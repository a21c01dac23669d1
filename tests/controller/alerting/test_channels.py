"""Each channel against a real receiver on 127.0.3.x: an SMTP server with STARTTLS (aiosmtpd, a
self-signed certificate made here), a loopback stand-in for the Telegram Bot API, a webhook
receiver checking the HMAC signature, and a real Alertmanager (Debian package)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from controller import inventory
from controller.alerting import incidents as service
from controller.alerting import queries
from controller.alerting.channels.registry import build_senders
from controller.alerting.dispatcher import Dispatcher
from controller.alerting.models import Notification
from controller.alerting.outbox import NotifyPolicy, sync_pending
from controller.store.db import Database
from tests.controller.alerting.support import (
    controller_config,
    free_port,
    parse_channels,
    recorder,
    secret_file,
    self_signed,
)

pytestmark = pytest.mark.integration

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[tuple[Database, Path]]:
    db = Database(f"sqlite:///{tmp_path}/bk.db")
    db.upgrade()
    cfg = controller_config(tmp_path, hosts=[{"name": "portal-01"}])
    inventory.sync_config(cfg, db)
    try:
        yield db, tmp_path
    finally:
        db.dispose()


def _fire_and_deliver(
    db: Database,
    channels: list[dict[str, Any]],
    summary: str = "portal down: HTTP 502",
    resolve: bool = False,
) -> tuple[int, list[tuple[str, str, str | None]]]:
    policy = NotifyPolicy(channels=parse_channels("c.yaml", channels))
    dispatcher = Dispatcher(db, build_senders(policy.channels, source="c.yaml"))
    try:
        with db.session() as s:
            incident_id = service.open_incident(
                s,
                host="portal-01",
                key="portal-01:check:portal",
                cause="check",
                severity="critical",
                summary=summary,
                policy=policy,
            ).id
        dispatcher.dispatch_once()
        if resolve:
            with db.session() as s:
                service.resolve_incident(s, incident_id=incident_id, policy=policy)
            dispatcher.dispatch_once()
    finally:
        dispatcher.close()
    with db.read_session() as s:
        rows = s.scalars(select(Notification).order_by(Notification.id))
        return incident_id, [(n.event, n.status, n.last_error) for n in rows]


# ------------------------------------------------------------------------------------ e-mail


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.ssl is not None)
        )
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"bk" and data.password == b"s3cret-pw"
    return AuthResult(success=ok, handled=False)


def test_email_over_starttls_with_login_arrives(sqlite_db: tuple[Database, Path]) -> None:
    db, tmp_path = sqlite_db
    host = "127.0.3.40"
    cert, key = self_signed(tmp_path, host)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = _Mailbox()
    port = free_port(host)
    smtpd = Controller(
        mailbox,
        hostname=host,
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    smtpd.start()
    try:
        channel = {
            "type": "email",
            "smtp": f"{host}:{port}",
            "from": "boxkeeper@acme.example",
            "to": ["ops@acme.example", "duty@acme.example"],
            "username": "bk",
            "password_file": str(secret_file(tmp_path / "smtp.pw", "s3cret-pw")),
            "ca_file": str(cert),
        }
        _, rows = _fire_and_deliver(db, [channel], resolve=True)
    finally:
        smtpd.stop()
    assert rows == [("firing", "sent", None), ("resolved", "sent", None)]
    (sender, rcpts, content, tls), (_, _, resolved, _) = mailbox.messages
    assert sender == "boxkeeper@acme.example" and rcpts == ["ops@acme.example", "duty@acme.example"] and tls
    message = message_from_bytes(content)
    assert message["Subject"] == "[FIRING] critical acme/portal-01: portal down: HTTP 502"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "Incident #1 (portal-01:check:portal)" in body and "boxkeeper incidents ack 1" in body
    assert message_from_bytes(resolved)["Subject"].startswith("[RESOLVED] critical acme/portal-01")


def test_email_refuses_an_untrusted_certificate(sqlite_db: tuple[Database, Path]) -> None:
    db, tmp_path = sqlite_db
    host = "127.0.3.41"
    cert, key = self_signed(tmp_path, host)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = _Mailbox()
    port = free_port(host)
    smtpd = Controller(mailbox, hostname=host, port=port, tls_context=context, require_starttls=True)
    smtpd.start()
    try:  # no ca_file: the system trust store does not know our self-signed certificate
        channel = {
            "type": "email",
            "smtp": f"{host}:{port}",
            "from": "bk@acme.example",
            "to": "ops@acme.example",
        }
        _, [(event, status, error)] = _fire_and_deliver(db, [channel])
    finally:
        smtpd.stop()
    assert (
        (event, status) == ("firing", "pending")
        and error is not None
        and "CERTIFICATE_VERIFY_FAILED" in error
    )
    assert mailbox.messages == []


# ------------------------------------------------------------------------------------ Telegram

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_telegram_send_message_request_shape(sqlite_db: tuple[Database, Path]) -> None:
    db, tmp_path = sqlite_db
    with recorder("127.0.3.42", answer={"ok": True, "result": {"message_id": 1}}) as api:
        channel = {
            "type": "telegram",
            "chat_id": "-100123",
            "api_base": api.url,
            "token_file": str(secret_file(tmp_path / "tg.token", TOKEN)),
        }
        _, rows = _fire_and_deliver(db, [channel], summary="portal down: <html> & 502")
    assert rows == [("firing", "sent", None)]
    [request] = api.requests
    assert request["path"] == f"/bot{TOKEN}/sendMessage"
    body = json.loads(request["body"])
    assert body["chat_id"] == "-100123" and body["parse_mode"] == "HTML"
    assert (
        "portal down: &lt;html&gt; &amp; 502" in body["text"] and "<b>[FIRING] critical</b>" in body["text"]
    )


def test_telegram_errors_never_show_the_token(
    sqlite_db: tuple[Database, Path], caplog: pytest.LogCaptureFixture
) -> None:
    db, tmp_path = sqlite_db
    answer = {"ok": False, "error_code": 400, "description": f"Bad Request: chat not found (bot{TOKEN})"}
    with recorder("127.0.3.43", status=400, answer=answer) as api, caplog.at_level(logging.DEBUG):
        channel = {
            "type": "telegram",
            "chat_id": "-100123",
            "api_base": api.url,
            "token_file": str(secret_file(tmp_path / "tg.token", TOKEN)),
        }
        incident_id, [(_, status, error)] = _fire_and_deliver(db, [channel])
    assert status == "failed" and error is not None and "chat not found" in error
    secret_part = TOKEN.split(":")[1]
    with db.read_session() as s:
        timeline = " ".join(e.message for e in queries.timeline(s, incident_id))
    assert secret_part not in error and secret_part not in timeline and secret_part not in caplog.text


# ------------------------------------------------------------------------------------ webhook


def test_webhook_is_signed_with_hmac_sha256(sqlite_db: tuple[Database, Path]) -> None:
    db, tmp_path = sqlite_db
    with recorder("127.0.3.44") as hook:
        channel = {
            "type": "webhook",
            "url": hook.url + "/bk",
            "secret_file": str(secret_file(tmp_path / "hook.secret", "hook-secret")),
        }
        _fire_and_deliver(db, [channel], resolve=True)
    firing, resolved = hook.requests
    for request in (firing, resolved):
        expected = "sha256=" + hmac.new(b"hook-secret", request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-Boxkeeper-Signature"] == expected
        assert request["headers"]["Idempotency-Key"] == json.loads(request["body"])["idempotency_key"]
    assert [json.loads(r["body"])["event"] for r in (firing, resolved)] == ["firing", "resolved"]
    assert json.loads(firing["body"])["incident"]["key"] == "portal-01:check:portal"


# ------------------------------------------------------------------------------------ Alertmanager


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if not Path(ALERTMANAGER).exists():
        pytest.skip("prometheus-alertmanager is not installed (tests/run.sh installs it)")
    host = "127.0.3.50"
    port = free_port(host)
    config = tmp_path / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    data = tmp_path / "am-data"
    data.mkdir()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={data}",
            f"--web.listen-address={host}:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    "alertmanager exited: " + (tmp_path / "alertmanager.log").read_text()[-2000:]
                )
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("alertmanager did not become ready in 30 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _alerts(url: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = httpx.get(url + "/api/v2/alerts", timeout=5).json()
    return alerts


def test_alertmanager_receives_firing_repeats_and_resolved(
    sqlite_db: tuple[Database, Path], alertmanager: str
) -> None:
    db, _ = sqlite_db
    policy = NotifyPolicy(
        channels=parse_channels(
            "c.yaml",
            [
                {
                    "type": "alertmanager",
                    "url": alertmanager,
                    "repeat_interval": "1s",
                    "min_severity": "warning",
                }
            ],
        )
    )
    dispatcher = Dispatcher(db, build_senders(policy.channels, source="c.yaml"))
    try:
        with db.session() as s:
            incident_id = service.open_incident(
                s,
                host="portal-01",
                key="portal-01:unreachable",
                cause="unreachable",
                severity="critical",
                summary="host portal-01 unreachable",
                policy=policy,
            ).id
        dispatcher.dispatch_once()
        [alert] = _alerts(alertmanager)
        assert alert["labels"] == {
            "alertname": "BoxkeeperUnreachable",
            "client": "acme",
            "host": "portal-01",
            "severity": "critical",
            "cause": "unreachable",
            "incident_id": str(incident_id),
            "dedup_key": "portal-01:unreachable",
        }
        assert alert["status"]["state"] == "active"
        assert alert["annotations"]["summary"] == "host portal-01 unreachable"

        time.sleep(1.1)  # repeat_interval passed: re-sent so Alertmanager keeps it firing
        with db.session() as s:
            assert sync_pending(s, policy, time.time()) == 1
        dispatcher.dispatch_once()
        assert [a["status"]["state"] for a in _alerts(alertmanager)] == ["active"]

        with db.session() as s:
            service.resolve_incident(s, incident_id=incident_id, policy=policy)
        dispatcher.dispatch_once()
        deadline = time.monotonic() + 20
        while _alerts(alertmanager) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alerts(alertmanager) == []  # endsAt reached: resolved, no longer listed as active
        resolved = httpx.get(alertmanager + "/api/v2/alerts/groups", timeout=5).json()
        assert all(not g["alerts"] for g in resolved)
    finally:
        dispatcher.close()
    with db.read_session() as s:
        events = [n.event for n in s.scalars(select(Notification).order_by(Notification.id))]
        statuses = {n.status for n in s.scalars(select(Notification))}
    assert events == ["firing", "repeat", "resolved"] and statuses == {"sent"}
