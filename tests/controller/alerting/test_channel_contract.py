"""One contract for every notification channel kind of the registry (controller/alerting/channels/).

Each kind, through the real outbox and dispatcher, against a receiver on 127.0.3.x (an HTTP
recorder for the HTTP kinds, aiosmtpd for e-mail):

- delivery: a firing incident reaches the receiver once and its row is ``sent``;
- retry: a temporary refusal (HTTP 503, SMTP 451) and a closed port keep the row ``pending`` for a
  later attempt; a permanent refusal (HTTP 400, SMTP 550) fails it for good;
- secrets: the channel's secret (bot token, SMTP password, HMAC key) appears in no log record, no
  outbox error and no timeline entry, even when the receiver echoes it back in a refusal.

A kind added to the registry without an example below fails :func:`test_every_kind_has_an_example`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from controller import inventory
from controller.alerting import incidents as service
from controller.alerting import queries
from controller.alerting.channels.registry import CHANNELS, build_senders
from controller.alerting.dispatcher import Dispatcher
from controller.alerting.models import Notification
from controller.alerting.outbox import NotifyPolicy
from controller.store.db import Database
from tests.controller.alerting import bitrix24_portal
from tests.controller.alerting.support import (
    FakeClock,
    controller_config,
    free_port,
    parse_channels,
    recorder,
    secret_file,
)

pytestmark = pytest.mark.integration

HOST = "127.0.3.70"
SECRET = "s3cr3t-V4lue-9d1f"  # a secret of each kind: token (as "123:SECRET"), password, HMAC key


class Receiver:
    """A running receiver: its address, what it received, and whether it refuses."""

    address: str
    refuse_with: int | None = None  # HTTP status / SMTP code to answer instead of accepting

    def received(self) -> list[bytes]:
        raise NotImplementedError


class HttpReceiver(Receiver):
    def __init__(self, server: Any) -> None:
        self.server = server
        self.address = server.url

    @property  # type: ignore[override]
    def refuse_with(self) -> int | None:
        return None if self.server.status == 200 else int(self.server.status)

    @refuse_with.setter
    def refuse_with(self, code: int | None) -> None:
        # A refusal that echoes the request, as the Bot API does with its URL: it holds the token.
        self.server.status = 200 if code is None else code
        self.server.answer = {"ok": code is None, "description": f"refused POST /bot123456:{SECRET}/x"}

    def received(self) -> list[bytes]:
        with self.server.lock:
            return [r["body"] for r in self.server.requests]


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    with recorder(HOST) as server:
        yield HttpReceiver(server)


class SmtpReceiver(Receiver):
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_with is not None:
            return f"{self.refuse_with} refused"
        self.messages.append(envelope.content)
        return "250 OK"

    def received(self) -> list[bytes]:
        return list(self.messages)


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"bk" and data.password == SECRET.encode()
    return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_receiver() -> Iterator[Receiver]:
    handler = SmtpReceiver()
    port = free_port(HOST)
    smtpd = Controller(handler, hostname=HOST, port=port, authenticator=_auth, auth_require_tls=False)
    smtpd.start()
    handler.address = f"{HOST}:{port}"
    try:
        yield handler
    finally:
        smtpd.stop()


class Bitrix24Receiver(Receiver):
    """The Bitrix24 REST stand-in (bitrix24_portal.py): its ``address`` is the webhook URL."""

    def __init__(self, server: bitrix24_portal.Portal) -> None:
        self.server = server
        self.address = server.webhook

    @property  # type: ignore[override]
    def refuse_with(self) -> int | None:
        return self.server.refuse_with

    @refuse_with.setter
    def refuse_with(self, code: int | None) -> None:
        self.server.refuse_with = code

    def received(self) -> list[bytes]:
        with self.server.lock:
            return [json.dumps(m, ensure_ascii=False).encode() for m in self.server.messages]


@contextmanager
def bitrix24_receiver() -> Iterator[Receiver]:
    with bitrix24_portal.portal(HOST, code=SECRET) as server:
        yield Bitrix24Receiver(server)


@dataclass(frozen=True)
class Example:
    receiver: Callable[[], AbstractContextManager[Receiver]]
    config: Callable[[str, Path], dict[str, Any]]  # (receiver address, tmp dir) → the notify item
    temporary: int  # a refusal worth retrying
    permanent: int  # a refusal that is final
    has_secret: bool = True


EXAMPLES: dict[str, Example] = {
    "telegram": Example(
        http_receiver,
        lambda address, tmp: {"type": "telegram", "chat_id": "-100123", "api_base": address,
                              "token_file": str(secret_file(tmp / "tg.token", f"123456:{SECRET}"))},
        temporary=503, permanent=400,
    ),
    "email": Example(
        smtp_receiver,
        lambda address, tmp: {"type": "email", "smtp": address, "from": "bk@acme.example",
                              "to": ["ops@acme.example"], "starttls": False, "username": "bk",
                              "password_file": str(secret_file(tmp / "smtp.pw", SECRET))},
        temporary=451, permanent=550,
    ),
    "webhook": Example(
        http_receiver,
        lambda address, tmp: {"type": "webhook", "url": address,
                              "secret_file": str(secret_file(tmp / "hook.secret", SECRET))},
        temporary=503, permanent=400,
    ),
    "bitrix24": Example(
        bitrix24_receiver,
        lambda address, tmp: {"type": "bitrix24", "dialog_id": "chat42",
                              "webhook_file": str(secret_file(tmp / "b24.webhook",
                                                              address if "/rest/" in address  # closed port:
                                                              else f"http://{address}/rest/1/{SECRET}/"))},
        temporary=503, permanent=400,
    ),
    "alertmanager": Example(
        http_receiver,
        lambda address, tmp: {"type": "alertmanager", "url": address},
        temporary=503, permanent=400, has_secret=False,
    ),
}
KINDS = [model.model_fields["type"].annotation.__args__[0] for model in CHANNELS]  # type: ignore[union-attr]


def test_every_kind_has_an_example() -> None:
    assert sorted(KINDS) == sorted(EXAMPLES), "add the new channel kind to EXAMPLES"


class Outbox:
    """One channel behind the real outbox and dispatcher, on SQLite, with a fake clock."""

    def __init__(self, tmp_path: Path, item: dict[str, Any]) -> None:
        self.clock = FakeClock()
        self.db = Database(f"sqlite:///{tmp_path}/bk.db")
        self.db.upgrade()
        inventory.sync_config(controller_config(tmp_path, hosts=[{"name": "portal-01"}]), self.db,
                              clock=self.clock)
        self.policy = NotifyPolicy(channels=parse_channels("c.yaml", [{**item, "name": "chan"}]))
        self.senders = build_senders(self.policy.channels, source="c.yaml")
        self.dispatcher = Dispatcher(self.db, self.senders, clock=self.clock, rng=lambda: 1.0)

    def fire(self, summary: str = "portal down: HTTP 502") -> int:
        with self.db.session() as s:
            return service.open_incident(s, host="portal-01", key="portal-01:check:portal", cause="check",
                                         severity="critical", summary=summary, now=self.clock(),
                                         policy=self.policy).id

    def rows(self) -> list[tuple[str, str, int, str | None]]:
        with self.db.read_session() as s:
            return [(n.event, n.status, n.attempts, n.last_error)
                    for n in s.scalars(select(Notification).order_by(Notification.id))]

    def timeline(self, incident_id: int) -> str:
        with self.db.read_session() as s:
            return " ".join(e.message for e in queries.timeline(s, incident_id))

    def close(self) -> None:
        self.dispatcher.close()
        self.db.dispose()


@pytest.fixture
def outbox_for(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Outbox]]:
    made: list[Outbox] = []

    def make(item: dict[str, Any]) -> Outbox:
        made.append(Outbox(tmp_path, item))
        return made[-1]

    yield make
    for outbox in made:
        outbox.close()


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_delivery(kind: str, tmp_path: Path, outbox_for: Callable[[dict[str, Any]], Outbox]) -> None:
    example = EXAMPLES[kind]
    with example.receiver() as receiver:
        outbox = outbox_for(example.config(receiver.address, tmp_path))
        outbox.fire("portal down: HTTP 502 from nginx")
        assert outbox.dispatcher.dispatch_once() == 1
        assert outbox.dispatcher.dispatch_once() == 0  # sent once, never again
        [message] = receiver.received()
    assert b"portal down: HTTP 502 from nginx" in message
    assert outbox.rows() == [("firing", "sent", 1, None)]


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_a_temporary_refusal_is_retried_and_then_delivered(
    kind: str, tmp_path: Path, outbox_for: Callable[[dict[str, Any]], Outbox]
) -> None:
    example = EXAMPLES[kind]
    with example.receiver() as receiver:
        outbox = outbox_for(example.config(receiver.address, tmp_path))
        receiver.refuse_with = example.temporary
        outbox.fire()
        assert outbox.dispatcher.dispatch_once() == 0
        [(_, status, attempts, error)] = outbox.rows()
        assert (status, attempts) == ("pending", 1) and error and str(example.temporary) in error
        assert outbox.dispatcher.dispatch_once() == 0  # not due again before the backoff
        receiver.refuse_with = None
        outbox.clock.advance(3600)
        assert outbox.dispatcher.dispatch_once() == 1
    assert outbox.rows()[0][:3] == ("firing", "sent", 2)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_a_closed_port_is_retried(kind: str, tmp_path: Path,
                                  outbox_for: Callable[[dict[str, Any]], Outbox]) -> None:
    example = EXAMPLES[kind]
    port = free_port(HOST)  # nothing listens there
    address = f"http://{HOST}:{port}" if example.receiver is http_receiver else f"{HOST}:{port}"
    outbox = outbox_for(example.config(address, tmp_path))
    outbox.fire()
    assert outbox.dispatcher.dispatch_once() == 0
    [(_, status, attempts, error)] = outbox.rows()
    assert (status, attempts) == ("pending", 1) and error


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_a_permanent_refusal_fails_for_good(kind: str, tmp_path: Path,
                                            outbox_for: Callable[[dict[str, Any]], Outbox]) -> None:
    example = EXAMPLES[kind]
    with example.receiver() as receiver:
        outbox = outbox_for(example.config(receiver.address, tmp_path))
        receiver.refuse_with = example.permanent
        incident_id = outbox.fire()
        assert outbox.dispatcher.dispatch_once() == 0
    [(_, status, attempts, error)] = outbox.rows()
    assert (status, attempts) == ("failed", 1) and error and str(example.permanent) in error
    assert "chan: firing failed after 1 attempt(s)" in outbox.timeline(incident_id)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_the_secret_never_shows(kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                outbox_for: Callable[[dict[str, Any]], Outbox]) -> None:
    example = EXAMPLES[kind]
    with example.receiver() as receiver, caplog.at_level(logging.DEBUG):
        outbox = outbox_for(example.config(receiver.address, tmp_path))
        assert bool(outbox.senders["chan"].secrets()) is example.has_secret
        receiver.refuse_with = example.temporary
        incident_id = outbox.fire()
        outbox.dispatcher.dispatch_once()
        receiver.refuse_with = None
        outbox.clock.advance(3600)
        outbox.dispatcher.dispatch_once()
        receiver.refuse_with = example.permanent
        with outbox.db.session() as s:
            service.resolve_incident(s, key="portal-01:check:portal", now=outbox.clock(),
                                     policy=outbox.policy)
        outbox.dispatcher.dispatch_once()
    texts = [caplog.text, outbox.timeline(incident_id), *(str(row[3]) for row in outbox.rows())]
    if example.has_secret:
        leaked = [t for t in texts if SECRET in t]
        assert not leaked, "a channel secret reached a log, the outbox or the timeline"
    assert [row[:2] for row in outbox.rows()] == [("firing", "sent"), ("resolved", "failed")]
