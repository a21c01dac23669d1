"""What the 1C checks read, without a box: rac's records, Apache's LoadModule line, the running
platform version, and the specs' rules between keys."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agent.checks.onec.publication import running_versions, wsap_line
from agent.checks.onec.rac import parse_records
from agent.config import parse
from agent.errors import ConfigError

RAC_OUTPUT = """\
infobase : 1f0e6a36-3f2c-4a55-9d8a-6b1ef1a0f001
name     : buh
descr    : "Бухгалтерия предприятия"

infobase : 6c3f2b4e-0000-4000-8000-00000000002a
name     : zup
descr    : ""
"""


def test_rac_records_are_split_at_blank_lines_and_lose_their_quotes() -> None:
    assert parse_records(RAC_OUTPUT) == [
        {"infobase": "1f0e6a36-3f2c-4a55-9d8a-6b1ef1a0f001", "name": "buh",
         "descr": "Бухгалтерия предприятия"},
        {"infobase": "6c3f2b4e-0000-4000-8000-00000000002a", "name": "zup", "descr": ""},
    ]
    assert parse_records("") == []
    assert parse_records("\n\ncluster : c1\n\n\n") == [{"cluster": "c1"}]


def test_the_last_uncommented_loadmodule_line_counts() -> None:
    conf = ('#LoadModule _1cws_module "/opt/1cv8/x86_64/8.3.20.100/wsap24.so"\n'
            'LoadModule _1cws_module "/opt/1cv8/x86_64/8.3.24.1467/wsap24.so"\n'
            "  LoadModule _1cws_module /opt/1cv8/x86_64/8.3.27.1000/wsap24.so\n")
    assert wsap_line(conf) == "/opt/1cv8/x86_64/8.3.27.1000/wsap24.so"
    assert wsap_line("LoadModule rewrite_module modules/mod_rewrite.so\n") is None


def proc(*argv: str) -> Any:
    return SimpleNamespace(info={"cmdline": list(argv)})


def test_the_running_version_is_the_ragent_directory() -> None:
    assert running_versions([
        proc("/opt/1cv8/x86_64/8.3.27.1000/ragent", "-daemon", "-port", "1540"),
        proc("/opt/1cv8/x86_64/8.3.27.1000/rphost", "-range", "1560:1591"),  # not the agent
        proc("/usr/sbin/nginx"), proc(),
    ]) == {"8.3.27.1000"}


@pytest.mark.parametrize(("keys", "key", "expected"), [
    ({"blocked_warning": 5, "blocked_critical": 2}, "blocked_warning", "a value not above blocked_critical"),
    ({"infobase_password_file": "/etc/boxkeeper/1c.pwd"}, "infobase_user", "the infobase user"),
])
def test_infobase_rules_between_keys_name_the_key(keys: dict[str, Any], key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"checks": [{"name": "ib", "type": "onec_infobase", "rac": "/opt/1cv8/rac", "infobase": "buh",
                           **keys}]}, source="agent.yaml")
    assert info.value.key == f"checks[0].{key}"
    assert info.value.expected.startswith(expected)


def test_dbms_thresholds_in_order() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"checks": [{"name": "db", "type": "onec_dbms", "database": "buh", "user": "boxkeeper",
                           "transaction_warning": "2h", "transaction_critical": "1h"}]})
    assert info.value.key == "checks[0].transaction_warning"
