"""The ``mysql`` check against a test box's real MariaDB: settings from the Bitrix docroot or given
with a 0600 password file, thresholds on the query's number and on connections, and what each
failure reads as (down and refused: CRITICAL; a broken query: UNKNOWN). The password appears in
no result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.checks.base import CheckResult, Resources
from agent.checks.registry import build_check
from agent.config import parse
from agent.errors import ConfigError
from agent.mysqlclient import DbSettings, run_statements
from agent.report import Status
from tests.agent.conftest import REPO
from tests.boxes.box import Box

pytestmark = pytest.mark.integration


def run(**keys: Any) -> CheckResult:
    spec = parse({"checks": [{"name": "db", "type": "mysql", **keys}]}).checks[0]
    return build_check(spec, Resources()).run(5.0)


def no_password(result: CheckResult, password: str) -> None:
    text = " ".join([result.summary, result.details, repr(result.perfdata), repr(result.samples)])
    assert password not in text


def password_file(tmp_path: Path, password: str, mode: int = 0o600) -> Path:
    path = tmp_path / "db.password"
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


def test_settings_from_the_docroot(box: Box) -> None:
    result = run(settings_from=box.info.docroot)
    assert result.status is Status.OK, result.summary
    assert result.summary.startswith(f"MySQL at {box.info.db.host}:{box.info.db.port} answered in ")
    assert " of 60 connections (" in result.summary  # the box's max_connections
    samples = {s.name: s for s in result.samples}
    assert samples["boxkeeper_mysql_up"].value == 1.0
    assert samples["boxkeeper_mysql_max_connections"].value == 60.0
    assert samples["boxkeeper_mysql_threads_connected"].labels == {"check": "db"}
    no_password(result, box.info.db.password)


def test_a_number_against_thresholds(box: Box) -> None:
    docroot = box.info.docroot
    assert run(settings_from=docroot, query="SELECT 5", warning=3, critical=10).status is Status.WARNING
    result = run(settings_from=docroot, query="SELECT 12.5", warning=3, critical=10)
    assert result.status is Status.CRITICAL
    assert "12.5" in result.summary and "at or above 10" in result.summary
    result = run(settings_from=docroot, query="SELECT COUNT(*) FROM b_option", critical=1000)
    assert result.status is Status.OK
    assert [s.value for s in result.samples if s.name == "boxkeeper_mysql_query_value"] == [7.0]
    result = run(settings_from=docroot, query="SELECT 'not a number'", warning=1)
    assert result.status is Status.UNKNOWN and "not a number" in result.summary


def test_connections_against_max_connections(box: Box) -> None:
    result = run(settings_from=box.info.docroot, connections_warning="1%")
    assert result.status is Status.WARNING and "of max_connections (at or above 1%)" in result.summary


def test_a_failing_query_is_unknown(box: Box) -> None:
    result = run(settings_from=box.info.docroot, query="SELECT * FROM no_such_table")
    assert result.status is Status.UNKNOWN
    assert "query failed: (1146)" in result.summary and "no_such_table" in result.summary


def test_given_settings_with_a_password_file_over_tcp_and_the_socket(box: Box, tmp_path: Path) -> None:
    db = box.info.db
    secret = password_file(tmp_path, db.password)
    tcp = run(host=db.host, port=db.port, user=db.user, database=db.name, password_file=str(secret))
    assert tcp.status is Status.OK, tcp.summary
    sock = run(socket=db.socket, user=db.user, database=db.name, password_file=str(secret))
    assert sock.status is Status.OK and f"unix socket {db.socket}" in sock.summary


def test_a_password_file_others_can_read_is_refused(box: Box, tmp_path: Path) -> None:
    db = box.info.db
    secret = password_file(tmp_path, db.password, 0o644)
    result = run(host=db.host, port=db.port, user=db.user, password_file=str(secret))
    assert result.status is Status.UNKNOWN
    assert f"chmod 600 {secret}" in result.summary and "0644" in result.summary
    no_password(result, db.password)


def test_a_refused_login_is_critical_and_names_no_password(box: Box, tmp_path: Path) -> None:
    db = box.info.db
    wrong = "wrong-" + db.password
    result = run(host=db.host, port=db.port, user=db.user, password_file=str(password_file(tmp_path, wrong)))
    assert result.status is Status.CRITICAL
    assert f"refused the login of '{db.user}': (1045)" in result.summary
    no_password(result, wrong)


def test_mariadb_stopped_is_critical(box: Box) -> None:
    box.fault("stop-mariadb")
    result = run(settings_from=box.info.docroot)
    assert result.status is Status.CRITICAL
    where = f"{box.info.db.host}:{box.info.db.port}"
    assert result.summary.startswith(f"cannot connect to MySQL at {where}: (2003)")
    assert [(s.name, s.value) for s in result.samples] == [("boxkeeper_mysql_up", 0.0)]
    box.fault("stop-mariadb", undo=True)
    assert run(settings_from=box.info.docroot).status is Status.OK


def test_the_driver_is_loaded_without_cryptography(box: Box) -> None:
    """PyMySQL would import cryptography (+8 MiB RSS) when it is installed (it is, in this venv);
    the agent's driver import keeps it out, and leaves it importable for anyone else. In a fresh
    interpreter, as in the agent's process (this test process may have PyMySQL loaded already)."""
    code = (
        "import sys\n"
        "from agent.mysqlclient import _driver\n"
        "p = _driver()\n"
        "print(p._auth._have_cryptography, 'cryptography' in sys.modules)\n"
        "import cryptography\n"
        "print(cryptography.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True, cwd=REPO).stdout.split()
    assert out == ["False", "False", "cryptography"]
    db = box.info.db
    (result,) = run_statements(DbSettings(user=db.user, password=db.password, host=db.host, port=db.port,
                                          database=db.name), ["SELECT 1"], 5.0)
    assert result.rows == ((1,),)


def test_config_rules() -> None:
    def error(**keys: Any) -> str:
        with pytest.raises(ConfigError) as err:
            parse({"checks": [{"name": "db", "type": "mysql", **keys}]})
        return str(err.value)

    assert "checks[0].settings_from: expected a Bitrix docroot" in error(query="SELECT 1")
    assert "checks[0].host: expected no host with settings_from" in error(settings_from="/www", host="x")
    assert "checks[0].port: expected a port 1-65535" in error(user="u", port=70000)
    assert "checks[0].warning: expected a value not above critical" in error(user="u", warning=5, critical=1)
