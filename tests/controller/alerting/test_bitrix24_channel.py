"""The Bitrix24 chat channel: the REST call's shape, the message an admin reads, config errors.

Against the REST stand-in of bitrix24_portal.py (it checks the call as the Bitrix24 REST
documentation gives it); delivery, retries and secrets are also held by the channel contract.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.alerting.channels.registry import build_senders
from controller.errors import ConfigError
from tests.controller.alerting import bitrix24_portal
from tests.controller.alerting.support import parse_channels, secret_file
from tests.controller.alerting.test_channel_contract import HOST, Outbox

pytestmark = pytest.mark.integration
CODE = "q8w7e6r5t4y3"


def item(tmp_path: Path, webhook: str, **extra: object) -> dict[str, object]:
    return {"type": "bitrix24", "dialog_id": "chat42",
            "webhook_file": str(secret_file(tmp_path / "b24.webhook", webhook)), **extra}


def test_an_incident_becomes_a_chat_message_with_a_link(tmp_path: Path) -> None:
    with bitrix24_portal.portal(HOST, user_id=7, code=CODE) as portal:
        outbox = Outbox(tmp_path, item(tmp_path, portal.webhook,
                                       incident_link="https://bk.example/ui/incidents/{id}"))
        try:
            incident_id = outbox.fire("portal down: HTTP 502 from nginx")
            assert outbox.dispatcher.dispatch_once() == 1
        finally:
            outbox.close()
        [call] = portal.messages
    assert portal.refusals == []
    assert call["DIALOG_ID"] == "chat42" and call["URL_PREVIEW"] == "N"
    text = call["MESSAGE"]
    assert text.startswith("[b]boxkeeper: [FIRING] critical")
    assert "portal-01" in text and "portal down: HTTP 502 from nginx" in text
    assert f"[URL=https://bk.example/ui/incidents/{incident_id}]incident #{incident_id}[/URL]" in text
    assert "\n" not in text and "[BR]" in text  # lines as the chat shows them


def test_a_revoked_webhook_fails_for_good_without_showing_its_code(tmp_path: Path) -> None:
    with bitrix24_portal.portal(HOST, user_id=7, code=CODE) as portal:
        revoked = portal.webhook.replace(CODE, "revoked0code")
        outbox = Outbox(tmp_path, item(tmp_path, revoked))
        try:
            outbox.fire()
            assert outbox.dispatcher.dispatch_once() == 0
            [(_, status, _, error)] = outbox.rows()
        finally:
            outbox.close()
    assert status == "failed" and error is not None and "HTTP 401 INVALID_CREDENTIALS" in error
    assert "revoked0code" not in error and portal.messages == []


@pytest.mark.parametrize(("change", "key", "expected"), [
    ({"dialog_id": "general"}, "notify[0].dialog_id", "a Bitrix24 dialog id"),
    ({"incident_link": "https://bk.example/ui/incidents/"}, "notify[0].incident_link", "a URL with {id}"),
])
def test_config_mistakes_are_named(tmp_path: Path, change: dict[str, object], key: str,
                                   expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_channels("c.yaml", [{**item(tmp_path, "https://p.example/rest/1/x/"), **change}])
    assert (info.value.key, info.value.expected.startswith(expected)) == (key, True)


def test_a_webhook_file_that_is_not_a_webhook_is_named_without_its_content(tmp_path: Path) -> None:
    channels = parse_channels("c.yaml", [item(tmp_path, "p.example/rest/1/T0pS3cret")])
    with pytest.raises(ConfigError) as info:
        build_senders(channels, source="c.yaml")
    assert info.value.key == "notify[0].webhook_file" and "T0pS3cret" not in str(info.value)
    channels = parse_channels("c.yaml", [item(tmp_path, "https://p.example/rest/1/x/")])
    (tmp_path / "b24.webhook").chmod(0o644)
    with pytest.raises(ConfigError, match="not readable by others"):
        build_senders(channels, source="c.yaml")
