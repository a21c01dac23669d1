"""Controller config: defaults → file → environment → CLI flags; errors name file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import load, parse
from controller.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "controller.example.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "controller.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_sketch_parses(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
listen: 127.0.0.1:8470
database: sqlite:///var/lib/boxkeeper/boxkeeper.db
operator_tokens_file: /etc/boxkeeper/operators.yaml
clients:
  - name: acme
    timezone: Europe/Moscow
    hosts:
      - {name: portal-01, portal_url: "https://portal.acme.example/", ssh: {address: "203.0.113.5:22"}}
""",
    )
    cfg = load(path, environ={})
    assert (cfg.listen_host, cfg.listen_port) == ("127.0.0.1", 8470)
    assert cfg.database == "sqlite:///var/lib/boxkeeper/boxkeeper.db"
    assert cfg.operator_tokens_file == "/etc/boxkeeper/operators.yaml"
    client, host = cfg.host("portal-01")  # type: ignore[misc]
    assert (client.name, host.timezone, host.ssh_address) == ("acme", "Europe/Moscow", ("203.0.113.5", 22))


def test_the_example_config_loads(tmp_path: Path) -> None:
    cfg = load(EXAMPLE, environ={})
    assert cfg.database.startswith("sqlite:///")
    assert cfg.clients


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    path = _write(tmp_path, "listen: 127.0.0.1:9000\nstate_dir: state\n")
    assert load(path, environ={}).listen_port == 9000
    assert load(path, environ={}).database == f"sqlite:///{tmp_path}/state/boxkeeper.db"  # relative to file
    env = {"BOXKEEPER_LISTEN": "127.0.0.1:9001", "BOXKEEPER_DATABASE": "postgresql://bk@db/bk"}
    cfg = load(path, environ=env)
    assert (cfg.listen_port, cfg.database) == (9001, "postgresql+psycopg://bk@db/bk")
    assert load(path, overrides={"listen": "127.0.0.1:9002"}, environ=env).listen_port == 9002
    assert load(None, environ={}).listen_port == 8470


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("listen: nowhere", "listen", "an address such as"),
        ("database: mysql://x", "database", "a database URL"),
        ("clients: {}", "clients", "a list of clients"),
        ("clients: [{name: acme, timezone: Mars/Base}]", "clients[0].timezone", "IANA time zone"),
        (
            "clients: [{name: acme, hosts: [{name: a, ssh: {address: x}}]}]",
            "clients[0].hosts[0].ssh.address",
            "an address such as 203.0.113.5:22",
        ),
        (
            "clients: [{name: acme, hosts: [{name: a, portal_url: ftp://x}]}]",
            "clients[0].hosts[0].portal_url",
            "http:// or https:// URL",
        ),
        (
            "clients: [{name: acme, hosts: [{name: a}]}, {name: b, hosts: [{name: a}]}]",
            "clients[1].hosts[0].name",
            "unique in the fleet",
        ),
        (
            "clients: [{name: acme, hosts: [{name: a, labels: {host: x}}]}]",
            "clients[0].hosts[0].labels",
            "other than 'client' and 'host'",
        ),
        ("lisen: 127.0.0.1:1", "lisen", "no such key"),
        ("ingest: {max_report_bytes: lots}", "ingest.max_report_bytes", "a size such as 1MiB"),
        ("listen: [unclosed", "line 1", "valid YAML"),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path: Path, text: str, key: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    message = str(info.value)
    assert message.startswith(f"{path}: {key}")
    assert expected in message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a readable YAML file"):
        load(tmp_path / "nope.yaml", environ={})


def test_an_environment_value_is_checked_like_a_file_value() -> None:
    with pytest.raises(ConfigError, match="listen: expected an address"):
        parse({}, "x.yaml", {"listen": "bad"})
