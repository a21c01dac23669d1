"""The agent config: the issue's example parses; every broken value names file, key path and expectation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import load, parse, parse_address, parse_duration, parse_percent, parse_size
from agent.errors import ConfigError

EXAMPLE = """\
host: portal-01                  # the name the controller knows this box by
interval: 15s                    # default check interval
listen: 127.0.0.1:9847           # local /metrics
controller:
  url: https://boxkeeper.example.org
  token_file: /etc/boxkeeper/agent.token
  push_interval: 15s
  ca_file: null                  # TLS is verified by default; a custom CA may be given
spool:
  dir: /var/lib/boxkeeper/spool
  max_bytes: 64MiB
checks:
  - {name: portal, type: http, url: "http://127.0.0.1/", expect_status: [200, 302], body_regex: "Bitrix", timeout: 10s, retries: 3, retry_interval: 5s}
  - {name: nginx, type: process, match: nginx, min_count: 1}          # or cmdline_regex:
  - {name: mysql-port, type: tcp, address: "127.0.0.1:3306"}
  - {name: root-disk, type: disk, path: /, warning: 85%, critical: 95%}  # space and inodes
  - {name: backup-fresh, type: file_age, glob: "/home/bitrix/backup/archive/*.tar.gz", max_age: 26h, min_size: 1MiB}
  - {name: load, type: command, command: ["/usr/lib/nagios/plugins/check_load", "-w", "4,3,2", "-c", "8,6,4"], timeout: 10s}
"""  # noqa: E501  (the issue's example, verbatim)


def _error(write_config: Callable[[str], Path], text: str) -> ConfigError:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert str(info.value).startswith(f"{path}: "), "the message names the file first"
    return info.value


def test_issue_example_parses_with_every_value(write_config: Callable[[str], Path]) -> None:
    cfg = load(write_config(EXAMPLE), environ={})
    assert cfg.host == "portal-01"
    assert cfg.interval == 15.0
    assert cfg.listen == "127.0.0.1:9847"
    assert cfg.controller is not None
    assert cfg.controller.url == "https://boxkeeper.example.org"
    assert cfg.controller.token_file == Path("/etc/boxkeeper/agent.token")
    assert cfg.controller.ca_file is None
    assert cfg.spool.max_bytes == 64 * 2**20
    assert [c.name for c in cfg.checks] == [
        "portal",
        "nginx",
        "mysql-port",
        "root-disk",
        "backup-fresh",
        "load",
    ]
    portal, nginx, mysql, disk, backup, loadcheck = cfg.checks
    assert (portal.timeout, portal.retries, portal.retry_interval, portal.interval) == (10.0, 3, 5.0, 15.0)
    assert portal.options["expect_status"] == (200, 302)
    assert portal.options["body_regex"] == "Bitrix"
    assert portal.options["follow_redirects"] is True and portal.options["verify_tls"] is True
    assert (portal.options["tls_warning_days"], portal.options["tls_critical_days"]) == (21, 7)
    assert nginx.options["match"] == "nginx" and nginx.options["min_count"] == 1
    assert nginx.retries == 1 and nginx.timeout == 10.0
    assert mysql.options["address"] == ("127.0.0.1", 3306)
    assert (disk.options["warning"], disk.options["critical"]) == (85.0, 95.0)
    assert (disk.options["inodes_warning"], disk.options["inodes_critical"]) == (90.0, 95.0)
    assert backup.options["max_age"] == 26 * 3600 and backup.options["min_size"] == 2**20
    assert loadcheck.options["command"] == (
        "/usr/lib/nagios/plugins/check_load",
        "-w",
        "4,3,2",
        "-c",
        "8,6,4",
    )


def test_shipped_example_config_validates() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "agent.example.yaml"
    cfg = load(example, environ={})
    assert cfg.checks


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        (
            "checks:\n  - {name: a, type: tcp, address: 'x:1'}\n  - {name: b, type: tcp, address: 'x:2'}\n"
            "  - {name: c, type: tcp, address: 'x:3', timeout: ten}\n",
            "checks[2].timeout",
            "expected a duration such as 10s, 5m or 1h, got 'ten'",
        ),
        ("interval: 0s\n", "interval", "expected a duration greater than zero"),
        ("listen: localhost\n", "listen", "expected an address such as 127.0.0.1:9847"),
        ("listen: 127.0.0.1:70000\n", "listen", "port 1-65535"),
        ("spool: {max_bytes: lots}\n", "spool.max_bytes", "expected a size such as 512KiB, 64MiB or 1GB"),
        ("spool: /var/spool\n", "spool", "expected a mapping of keys to values"),
        ("controller: {token_file: /t}\n", "controller.url", "(required)"),
        ("controller: {url: ftp://x, token_file: /t}\n", "controller.url", "an http:// or https:// URL"),
        (
            "checks:\n  - {name: d, type: disk, path: /, warning: 120%}\n",
            "checks[0].warning",
            "a percentage between 0% and 100%",
        ),
        (
            "checks:\n  - {name: d, type: disk, path: /, warning: 96%}\n",
            "checks[0].warning",
            "a percentage not above critical",
        ),
        (
            "checks:\n  - {name: d, type: disk, path: /, inodes_warning: 99%}\n",
            "checks[0].inodes_warning",
            "not above inodes_critical",
        ),
        (
            "checks:\n  - {name: w, type: http, url: 'http://x/', expect_status: [200, 1000]}\n",
            "checks[0].expect_status",
            "a list of HTTP status codes",
        ),
        (
            "checks:\n  - {name: w, type: http, url: 'http://x/', body_regex: '(unclosed'}\n",
            "checks[0].body_regex",
            "a valid regular expression",
        ),
        (
            "checks:\n  - {name: w, type: http, url: 'http://x/', follow_redirects: 'yes please'}\n",
            "checks[0].follow_redirects",
            "true or false",
        ),
        (
            "checks:\n  - {name: w, type: http, url: 'http://x/', tls_critical_days: 30}\n",
            "checks[0].tls_critical_days",
            "not above tls_warning_days",
        ),
        ("checks:\n  - {name: w, type: http}\n", "checks[0].url", "(required)"),
        (
            "checks:\n  - {name: p, type: process}\n",
            "checks[0].match",
            "a process name (match) or a cmdline_regex",
        ),
        (
            "checks:\n  - {name: p, type: process, match: x, min_count: 3, max_count: 1}\n",
            "checks[0].max_count",
            "not below min_count",
        ),
        (
            "checks:\n  - {name: p, type: process, match: x, min_count: -1}\n",
            "checks[0].min_count",
            "an integer of 0 or more",
        ),
        ("checks:\n  - {name: t, type: tcp, address: 3306}\n", "checks[0].address", "an address such as"),
        (
            "checks:\n  - {name: t, type: tcp}\n",
            "checks[0].address",
            "an address such as 127.0.0.1:9847 (required)",
        ),
        (
            "checks:\n  - {name: c, type: command, command: 'check_load -w 1'}\n",
            "checks[0].command",
            "a non-empty list of strings",
        ),
        (
            "checks:\n  - {name: f, type: file_age, glob: '/b/*', max_age: soon}\n",
            "checks[0].max_age",
            "a duration",
        ),
        (
            "checks:\n  - {name: x, type: http, url: 'http://x/', retries: 0}\n",
            "checks[0].retries",
            "an integer of 1 or more",
        ),
        (
            "checks:\n  - {name: 'has space', type: tcp, address: 'x:1'}\n",
            "checks[0].name",
            "a name of letters",
        ),
        ("checks:\n  - {type: tcp, address: 'x:1'}\n", "checks[0].name", "a name of letters"),
        (
            "checks:\n  - {name: x, type: ping}\n",
            "checks[0].type",
            "one of http, process, tcp, disk, file_age",
        ),
        ("checks:\n  - just-a-string\n", "checks[0]", "a mapping with at least name and type"),
        (
            "checks:\n  - {name: w, type: http, url: 'http://x/', headers: {X-A: \"1\\r\\nHost: y\"}}\n",
            "checks[0].headers",
            "header values on one line (X-A has a line break or NUL)",
        ),
        (
            "checks:\n  - {name: w, type: http, url: 'http://x/', headers: {'X A': b}}\n",
            "checks[0].headers",
            "header names of letters, digits and '-' ('X A' is not one)",
        ),
        ("checks:\n  - {name: w, type: http, url: 'http://x/', method: 'GET /'}\n", "checks[0].method",
         "an HTTP method"),
        ("checks: 5\n", "checks", "a list of checks"),
        ("- a\n- b\n", "(top level)", "a mapping of keys to values"),
    ],
)
def test_broken_value_names_key_path_and_expectation(
    write_config: Callable[[str], Path],
    text: str,
    key: str,
    expected: str,
) -> None:
    err = _error(write_config, text)
    assert err.key == key
    assert expected in str(err)


def test_unknown_keys_are_rejected_with_the_allowed_ones(write_config: Callable[[str], Path]) -> None:
    err = _error(write_config, "hots: portal-01\n")
    assert err.key == "hots"
    assert "no such key" in str(err) and "host" in str(err)

    err = _error(write_config, "checks:\n  - {name: t, type: tcp, address: 'x:1', adress: 'y:2'}\n")
    assert err.key == "checks[0].adress"
    assert "address" in err.expected

    # a key of another check type is unknown here
    err = _error(write_config, "checks:\n  - {name: t, type: tcp, address: 'x:1', url: 'http://x/'}\n")
    assert err.key == "checks[0].url"

    err = _error(write_config, "controller: {url: 'http://x', token_file: /t, tokn: abc}\n")
    assert err.key == "controller.tokn"
    err = _error(write_config, "spool: {dir: /s, max: 1}\n")
    assert err.key == "spool.max"


def test_duplicate_check_names_point_at_both(write_config: Callable[[str], Path]) -> None:
    err = _error(
        write_config,
        "checks:\n  - {name: db, type: tcp, address: 'x:1'}\n"
        "  - {name: web, type: tcp, address: 'x:2'}\n"
        "  - {name: db, type: tcp, address: 'x:3'}\n",
    )
    assert err.key == "checks[2].name"
    assert "checks[0] has it too" in str(err)


def test_yaml_syntax_error_names_line_and_column(write_config: Callable[[str], Path]) -> None:
    err = _error(write_config, "host: a\nchecks:\n  - {name: x, type: tcp\n")
    assert err.key.startswith("line ")
    assert "valid YAML" in str(err)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.yaml", environ={})
    assert "a readable YAML file" in str(info.value)
    assert "No such file" in str(info.value)


def test_defaults_apply_to_an_empty_file(write_config: Callable[[str], Path]) -> None:
    cfg = load(write_config(""), environ={})
    assert cfg.interval == 15.0
    assert cfg.listen == "127.0.0.1:9847"
    assert cfg.controller is None
    assert cfg.checks == ()


def test_check_defaults_follow_the_global_interval(write_config: Callable[[str], Path]) -> None:
    cfg = load(
        write_config(
            "interval: 1m\nchecks:\n  - {name: t, type: tcp, address: 'x:1'}\n"
            "  - {name: u, type: tcp, address: 'x:1', interval: 3s}\n"
        ),
        environ={},
    )
    t, u = cfg.checks
    assert (t.interval, t.timeout, t.retries, t.retry_interval) == (60.0, 10.0, 1, 5.0)
    assert (u.interval, u.retry_interval) == (3.0, 3.0)  # retry_interval never above interval by default


def test_environment_overrides_file_and_flags_override_environment(
    write_config: Callable[[str], Path],
) -> None:
    path = write_config(EXAMPLE)
    env = {
        "BOXKEEPER_AGENT_HOST": "portal-02",
        "BOXKEEPER_AGENT_LISTEN": "127.0.1.5:9000",
        "BOXKEEPER_AGENT_INTERVAL": "30s",
        "BOXKEEPER_AGENT_CONTROLLER_URL": "https://other.example.org/",
        "BOXKEEPER_AGENT_TOKEN_FILE": "/run/token",
        "BOXKEEPER_AGENT_SPOOL_DIR": "/tmp/spool",
    }
    cfg = load(path, environ=env)
    assert cfg.host == "portal-02"
    assert cfg.listen == "127.0.1.5:9000"
    assert cfg.interval == 30.0
    assert cfg.controller is not None and cfg.controller.url == "https://other.example.org"
    assert cfg.controller.token_file == Path("/run/token")
    assert cfg.spool.dir == Path("/tmp/spool")
    assert cfg.spool.max_bytes == 64 * 2**20  # untouched keys of the section stay

    cfg = load(path, {("listen",): "127.0.1.6:9001"}, environ=env)
    assert cfg.listen == "127.0.1.6:9001"

    with pytest.raises(ConfigError) as info:
        load(path, environ={"BOXKEEPER_AGENT_INTERVAL": "often"})
    err = info.value
    assert err.key == "interval" and "got 'often'" in str(err)

    # an empty variable is ignored
    assert load(path, environ={"BOXKEEPER_AGENT_HOST": ""}).host == "portal-01"


def test_parse_without_file_uses_the_given_source_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"interval": "x"}, source="<test>")
    assert str(info.value).startswith("<test>: interval: ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("5m", 300.0),
        ("26h", 93600.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        (10, 10.0),
        (2.5, 2.5),
        ("10", 10.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["ten", "-5s", "5 weeks", True, "", "0", 0])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64MiB", 64 * 2**20),
        ("1GB", 10**9),
        ("512", 512),
        (1024, 1024),
        ("1.5KiB", 1536),
        ("1mib", 2**20),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "-1", True, "1 PB"])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


def test_percent_and_address() -> None:
    assert parse_percent("85%") == 85.0 and parse_percent(85) == 85.0 and parse_percent("99.5") == 99.5
    with pytest.raises(ValueError):
        parse_percent(True)
    assert parse_address("127.0.0.1:9847") == ("127.0.0.1", 9847)
    assert parse_address("[::1]:9847") == ("::1", 9847)
    assert parse_address(":9847", default_host="0.0.0.0") == ("0.0.0.0", 9847)
    with pytest.raises(ValueError):
        parse_address("127.0.0.1:0")
