"""Secrets masked in every log record, and never echoed by a config error."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.config import parse
from controller.errors import ConfigError
from controller.redact import LOG_REDACTOR, Redactor, install_log_redaction, url_secrets
from tests.tlsfiles import self_signed


@pytest.fixture
def records() -> list[logging.LogRecord]:
    """What a handler of the root logger is given (after the record factory ran)."""
    install_log_redaction()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield seen
    root.removeHandler(handler)
    root.setLevel(old_level)


class Url:
    """Stands in for httpx.URL: an object whose str() is the URL."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def formatted(record: logging.LogRecord) -> str:
    return logging.Formatter("%(name)s %(message)s").format(record)


def test_every_logger_masks_message_arguments_objects_and_tracebacks(
    records: list[logging.LogRecord],
) -> None:
    hook = "https://hooks.slack.example/services/T01/B02/LogSecretHookPath"
    LOG_REDACTOR.add(*url_secrets(hook, whole=True))
    Redactor(["run-secret-value-42"])  # a run's redactor: its values are masked in logs too
    third_party = logging.getLogger("httpx.some.child")  # no filter of its own
    third_party.info('HTTP Request: %s %s "%s %d %s"', "POST", Url(hook), "HTTP/1.1", 200, "OK")
    logging.getLogger("paramiko.transport").debug("env TOKEN=%s", "run-secret-value-42")
    logging.getLogger("x").warning("path only: /services/T01/B02/LogSecretHookPath")
    try:
        raise RuntimeError(f"cannot reach {hook}")
    except RuntimeError:
        logging.getLogger("boxkeeper.notify").exception("delivery failed")
    logging.getLogger("y").info("n=%d, rate=%.1f", 3, 0.5)  # numbers stay numbers
    text = "\n".join(formatted(r) for r in records)
    assert "LogSecretHookPath" not in text and "run-secret-value-42" not in text
    assert 'httpx.some.child HTTP Request: POST *** "HTTP/1.1 200 OK"' in text
    assert "paramiko.transport env TOKEN=***" in text
    assert "RuntimeError: cannot reach ***" in text
    assert "y n=3, rate=0.5" in text


def test_a_telegram_token_in_a_url_is_masked_even_if_never_added(records: list[logging.LogRecord]) -> None:
    logging.getLogger("httpx").info(
        "HTTP Request: POST %s", "https://api.telegram.org/bot111222:AAFnever_added/x"
    )
    assert formatted(records[-1]) == "httpx HTTP Request: POST https://api.telegram.org/bot***/x"


def test_url_secrets_cover_basic_auth_in_every_form() -> None:
    found = url_secrets("http://am%40user:p%40ss@127.0.0.1:9093/", whole=False)
    assert "am%40user:p%40ss" in found and "am@user:p@ss" in found and "p@ss" in found
    assert "YW1AdXNlcjpwQHNz" in found  # base64 of am@user:p@ss: the Authorization header's value
    assert url_secrets("http://127.0.0.1:9093", whole=False) == ()


@pytest.mark.parametrize(
    ("raw", "secret", "message"),
    [
        (
            {"database": "mysql://bk:DbSecretPw1@db/bk"},
            "DbSecretPw1",
            "database: expected a database URL: sqlite:////path/to/file.db or "
            "postgresql+psycopg://user@host/db, got a value not shown here (it may hold a credential)",
        ),
        (
            {"notify": [{"type": "webhook", "url": "hooks.slack.com/services/T/B/HookSecretPart"}]},
            "HookSecretPart",
            "notify[0].url: expected an http:// or https:// URL, got a value not shown here",
        ),
        (
            {"notify": [{"type": "alertmanager", "url": "am:AmSecretPw@host:9093"}]},
            "AmSecretPw",
            "notify[0].url: expected an http:// or https:// URL, got a value not shown here",
        ),
    ],
)
def test_config_errors_on_secret_keys_do_not_echo_the_value(
    raw: dict[str, object],
    secret: str,
    message: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(raw, "c.yaml")
    assert message in str(caught.value)
    assert secret not in str(caught.value) and secret not in repr(caught.value.got)


def test_other_keys_still_show_what_was_given() -> None:
    expected = r"notify\[0\].timeout: expected a duration such as 10s, 5m or 1h, got 'soon'"
    with pytest.raises(ConfigError, match=expected):
        parse({"notify": [{"type": "webhook", "url": "https://h/x", "timeout": "soon"}]}, "c.yaml")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory path: the errors below quote file paths whole, and a long pytest (xdist)
    temp path would be shortened with "…" in them."""
    path = Path(tempfile.mkdtemp(prefix="bk-tls-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_tls_files_are_checked_with_clear_errors(short_dir: Path) -> None:
    tmp_path = short_dir

    def pair(name: str) -> tuple[Path, Path]:
        return self_signed(tmp_path / f"{name}.crt", tmp_path / f"{name}.key", cn=name, days=1)

    cert, key = pair("one")
    _, other_key = pair("two")
    assert parse({"tls": {"certificate": str(cert), "key": str(key)}}).tls is not None
    cases = [
        (
            {"certificate": str(tmp_path / "none.crt"), "key": str(key)},
            "tls.certificate: expected a readable PEM file (No such file or directory), "
            f"got '{tmp_path}/none.crt'",
        ),
        (
            {"certificate": str(cert), "key": str(other_key)},
            f"tls.key: expected the private key of the certificate {cert} (this key does not match it)",
        ),
        (
            {"certificate": str(key), "key": str(key)},
            "tls.certificate: expected a PEM certificate, with an unencrypted PEM private key in tls.key",
        ),
        ({"certificate": str(cert)}, "tls.key: expected a non-empty string (required)"),
    ]
    (tmp_path / "junk.crt").write_text("not a certificate\n")
    cases.append(
        (
            {"certificate": str(tmp_path / "junk.crt"), "key": str(key)},
            "tls.certificate: expected a PEM file (it has no -----BEGIN line)",
        )
    )
    for tls, message in cases:
        with pytest.raises(ConfigError) as caught:
            parse({"tls": tls}, "c.yaml")
        assert message in str(caught.value)
