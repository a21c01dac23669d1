"""The 1C check types (agent/checks/onec) on a --with-1c test box: real PostgreSQL, the rac TEST
DOUBLE (tests/boxes/doubles). Each signal turns its check to the state a sysadmin expects and back
to OK when it is undone."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from agent.checks.base import CheckResult, Resources
from agent.checks.onec.infobase import OnecInfobaseCheck
from agent.checks.registry import build_check
from agent.config import parse
from agent.errors import ConfigError
from agent.proctable import ProcessTable
from agent.report import Status
from tests.agent.conftest import REPO
from tests.boxes import Box
from tests.boxes.doubles import PLATFORM
from tests.boxes.doubles.state import ClusterState

pytestmark = pytest.mark.integration
PASSWORD = "secret"  # the double's Администратор password (tests/README.md)
NOBODY = 65534


def rac_path(box: Box) -> str:
    return str(box.layout.root / "opt/1cv8/x86_64" / PLATFORM / "rac")


def state(box: Box) -> ClusterState:
    return ClusterState(box.layout.onec_state)


def run_check(kind: str, keys: dict[str, Any], tmp_path: Path, name: str = "t") -> CheckResult:
    spec = parse({"checks": [{"name": name, "type": kind, **keys}]}).checks[0]
    check = build_check(spec, Resources(processes=ProcessTable(), state_dir=tmp_path / "state"))
    return check.run(10.0)


def samples(result: CheckResult, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted((k, v) for k, v in s.labels.items() if k != "check")): s.value
            for s in result.samples if s.name == name}


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    path = tmp_path / "buh.pwd"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def infobase_keys(box_1c: Box, pwfile: Path, tmp_path: Path) -> dict[str, Any]:
    return {"rac": rac_path(box_1c), "infobase": "buh", "infobase_user": "Администратор",
            "infobase_password_file": str(pwfile), "password_in_argv": True,
            "update_marker": str(tmp_path / "onec-update-{infobase}.lock")}


def rac(box: Box, *words: str) -> None:
    """Change the cluster the way an operator or a playbook does: through rac."""
    cluster = state(box).read()["cluster"]
    subprocess.run([rac_path(box), words[0], f"--cluster={cluster}", *words[1:]], check=True,
                   capture_output=True, timeout=30)


# -- the cluster answers ----------------------------------------------------------------------------

def test_cluster_down_is_critical_and_ok_again_when_the_agent_is_back(box_1c: Box, tmp_path: Path) -> None:
    keys = {"rac": rac_path(box_1c)}
    ok = run_check("onec_cluster", keys, tmp_path)
    assert ok.status is Status.OK, ok.summary
    assert state(box_1c).read()["cluster"] in ok.summary
    box_1c.fault("1c-agent-down")
    down = run_check("onec_cluster", keys, tmp_path)
    assert down.status is Status.CRITICAL
    assert "Агент кластера недоступен" in down.summary
    assert samples(down, "boxkeeper_onec_cluster_up") == {(): 0.0}
    box_1c.fault("1c-agent-down", undo=True)
    assert run_check("onec_cluster", keys, tmp_path).status is Status.OK


def test_a_rac_that_is_not_there_is_unknown_not_critical(tmp_path: Path) -> None:
    result = run_check("onec_cluster", {"rac": str(tmp_path / "no-rac")}, tmp_path)
    assert result.status is Status.UNKNOWN
    assert "cannot run" in result.summary


# -- infobase: sessions, blocked sessions, locks ---------------------------------------------------

def test_sessions_are_counted_by_application(box_1c: Box, infobase_keys: dict[str, Any],
                                             tmp_path: Path) -> None:
    for app in ("1CV8C", "1CV8C", "WebClient"):
        state(box_1c).add_session(app=app)
    result = run_check("onec_infobase", infobase_keys, tmp_path)
    assert result.status is Status.OK, result.summary
    assert "3 sessions (1CV8C 2, WebClient 1)" in result.summary
    assert samples(result, "boxkeeper_onec_sessions") == {
        (("app", "1CV8C"), ("infobase", "buh")): 2.0, (("app", "WebClient"), ("infobase", "buh")): 1.0}


def test_a_blocked_session_warns_until_it_is_gone(box_1c: Box, infobase_keys: dict[str, Any],
                                                  tmp_path: Path) -> None:
    state(box_1c).add_session()
    blocked = state(box_1c).add_session(blocked_by_dbms=1)
    result = run_check("onec_infobase", infobase_keys, tmp_path)
    assert result.status is Status.WARNING
    assert "1 blocked" in result.summary
    assert samples(result, "boxkeeper_onec_sessions_blocked") == {(("infobase", "buh"),): 1.0}
    rac(box_1c, "session", "terminate", f"--session={blocked}")
    again = run_check("onec_infobase", infobase_keys, tmp_path)
    assert again.status is Status.OK, again.summary
    assert "1 sessions" in again.summary


def test_sessions_deny_left_on_warns_with_how_long_and_clears_when_off(
    box_1c: Box, infobase_keys: dict[str, Any], tmp_path: Path,
) -> None:
    spec = parse({"checks": [{"name": "ib", "type": "onec_infobase", **infobase_keys}]}).checks[0]
    now = [1_000_000.0]

    def make() -> OnecInfobaseCheck:  # a new check object each time: as after an agent restart
        check = build_check(spec, Resources(state_dir=tmp_path / "state"))
        assert isinstance(check, OnecInfobaseCheck)
        return OnecInfobaseCheck(check.spec, check.rac, check.first_seen, clock=lambda: now[0])

    assert make().run(10).status is Status.OK
    rac(box_1c, "infobase", "update", "--infobase=buh", "--infobase-user=Администратор",
        f"--infobase-pwd={PASSWORD}", "--sessions-deny=on", "--scheduled-jobs-deny=on")
    first = make().run(10)
    assert first.status is Status.WARNING
    assert "sessions-deny on for 0 s, scheduled-jobs-deny on for 0 s, outside an update run" in first.summary
    now[0] += 25 * 60
    later = make().run(10)  # a restarted agent still knows since when
    assert later.status is Status.WARNING
    assert "sessions-deny on for 25 min" in later.summary
    assert samples(later, "boxkeeper_onec_deny_age_seconds")[
        (("infobase", "buh"), ("lock", "sessions-deny"))] == 1500.0
    assert PASSWORD not in later.summary + later.details + repr(later.samples)
    rac(box_1c, "infobase", "update", "--infobase=buh", "--infobase-user=Администратор",
        f"--infobase-pwd={PASSWORD}", "--sessions-deny=off", "--scheduled-jobs-deny=off")
    off = make().run(10)
    assert off.status is Status.OK, off.summary
    assert samples(off, "boxkeeper_onec_deny")[(("infobase", "buh"), ("lock", "sessions-deny"))] == 0.0


def test_locks_during_an_update_run_are_ok_while_its_marker_is_there(
    box_1c: Box, infobase_keys: dict[str, Any], tmp_path: Path,
) -> None:
    marker = tmp_path / "onec-update-buh.lock"
    marker.write_text("run 42 started 2026-12-03T12:00:00Z\n")
    rac(box_1c, "infobase", "update", "--infobase=buh", "--infobase-user=Администратор",
        f"--infobase-pwd={PASSWORD}", "--sessions-deny=on")
    during = run_check("onec_infobase", infobase_keys, tmp_path)
    assert during.status is Status.OK, during.summary
    assert "an update run is in progress" in during.summary
    old = time.time() - 13 * 3600
    os.utime(marker, (old, old))
    stale = run_check("onec_infobase", infobase_keys, tmp_path)
    assert stale.status is Status.WARNING
    assert "left behind?" in stale.summary
    marker.unlink()
    assert run_check("onec_infobase", infobase_keys, tmp_path).status is Status.WARNING


def test_without_credentials_the_locks_are_unknown_and_say_what_to_give(box_1c: Box, tmp_path: Path) -> None:
    result = run_check("onec_infobase", {"rac": rac_path(box_1c), "infobase": "buh"}, tmp_path)
    assert result.status is Status.UNKNOWN
    assert "Недостаточно прав" in result.summary and "infobase_password_file" in result.summary
    assert "0 sessions" in result.summary


def test_a_password_file_others_can_read_is_refused_naming_it(
    box_1c: Box, infobase_keys: dict[str, Any], pwfile: Path, tmp_path: Path,
) -> None:
    pwfile.chmod(0o644)
    result = run_check("onec_infobase", infobase_keys, tmp_path)
    assert result.status is Status.UNKNOWN
    assert f"{pwfile} is readable by group or others (mode 0644); run: chmod 600 {pwfile}" in result.summary
    assert PASSWORD not in result.summary


def test_a_password_file_without_consent_to_argv_is_a_config_error(box_1c: Box, pwfile: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"checks": [{"name": "ib", "type": "onec_infobase", "rac": rac_path(box_1c), "infobase": "buh",
                           "infobase_user": "Администратор", "infobase_password_file": str(pwfile)}]})
    assert info.value.key == "checks[0].password_in_argv"
    assert "command line" in info.value.expected


def test_an_infobase_the_cluster_does_not_have_is_critical(box_1c: Box, tmp_path: Path) -> None:
    result = run_check("onec_infobase", {"rac": rac_path(box_1c), "infobase": "zup"}, tmp_path)
    assert result.status is Status.CRITICAL
    assert "zup is not registered" in result.summary and "buh" in result.summary


# -- worker processes ------------------------------------------------------------------------------

def test_a_worker_over_its_memory_limit_warns_and_clears(box_1c: Box, tmp_path: Path) -> None:
    keys = {"rac": rac_path(box_1c)}
    assert run_check("onec_workers", keys, tmp_path).status is Status.OK
    with state(box_1c).edit() as data:
        data["processes"][0].update({"memory-size": 4194304, "memory-excess-time": 300})
    over = run_check("onec_workers", keys, tmp_path)
    assert over.status is Status.WARNING
    assert "rphost :1560 (pid 4242) over the cluster's memory limit for 300 s" in over.summary
    assert samples(over, "boxkeeper_onec_worker_memory_bytes") == {(("port", "1560"),): 4194304 * 1024.0}
    with state(box_1c).edit() as data:
        data["processes"][0].update({"memory-size": 524288, "memory-excess-time": 0})
    assert run_check("onec_workers", keys, tmp_path).status is Status.OK


def test_no_worker_process_is_critical(box_1c: Box, tmp_path: Path) -> None:
    with state(box_1c).edit() as data:
        data["processes"] = []
    result = run_check("onec_workers", {"rac": rac_path(box_1c)}, tmp_path)
    assert result.status is Status.CRITICAL
    assert "no worker process" in result.summary


# -- the DBMS --------------------------------------------------------------------------------------

@pytest.fixture
def dbms_keys(box_1c: Box, tmp_path: Path) -> dict[str, Any]:
    pg = box_1c.info.pg
    assert pg is not None
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{pg.host}:{pg.port}:*:{pg.user}:{pg.password}\n")
    passfile.chmod(0o600)
    return {"host": pg.host, "port": pg.port, "user": pg.user, "database": "buh", "passfile": str(passfile)}


def test_pg_stopped_is_critical_and_ok_when_started(box_1c: Box, dbms_keys: dict[str, Any],
                                                    tmp_path: Path) -> None:
    ok = run_check("onec_dbms", dbms_keys, tmp_path)
    assert ok.status is Status.OK, ok.summary
    assert "accepts connections" in ok.summary and "no open transaction" in ok.summary
    assert samples(ok, "boxkeeper_onec_pg_database_size_bytes")[(("database", "buh"),)] > 1e6
    box_1c.fault("stop-pg")
    down = run_check("onec_dbms", dbms_keys, tmp_path)
    assert down.status is Status.CRITICAL
    assert "no response" in down.summary
    box_1c.fault("stop-pg", undo=True)
    assert run_check("onec_dbms", dbms_keys, tmp_path).status is Status.OK


def test_a_transaction_held_open_warns_then_ok_when_it_ends(box_1c: Box, dbms_keys: dict[str, Any],
                                                            tmp_path: Path) -> None:
    pg = box_1c.info.pg
    assert pg is not None
    keys = {**dbms_keys, "transaction_warning": "1s"}
    login = {"host": pg.host, "port": pg.port, "user": pg.user, "password": pg.password, "dbname": "buh"}
    with psycopg.connect(**login) as conn:
        conn.execute("UPDATE documents SET amount = amount WHERE id = 1")  # psycopg opened a transaction
        result = run_check("onec_dbms", keys, tmp_path)
        for _ in range(50):  # until the transaction is a second old (bounded)
            if result.status is not Status.OK:
                break
            time.sleep(0.1)
            result = run_check("onec_dbms", keys, tmp_path)
        assert result.status is Status.WARNING, result.summary
        assert "oldest transaction" in result.summary and "buh, idle in transaction" in result.summary
        assert samples(result, "boxkeeper_onec_pg_oldest_transaction_seconds")[(("database", "buh"),)] >= 1
        conn.rollback()
        after = run_check("onec_dbms", keys, tmp_path)
    assert after.status is Status.OK, after.summary
    assert "no open transaction" in after.summary


def test_a_wrong_password_is_critical_and_a_readable_passfile_is_refused(
    box_1c: Box, dbms_keys: dict[str, Any], tmp_path: Path,
) -> None:
    passfile = Path(dbms_keys["passfile"])
    passfile.write_text(f"*:*:*:{dbms_keys['user']}:wrong\n")
    wrong = run_check("onec_dbms", dbms_keys, tmp_path)
    assert wrong.status is Status.CRITICAL
    assert "password authentication failed" in wrong.summary and "wrong" not in wrong.summary
    passfile.chmod(0o640)
    loose = run_check("onec_dbms", dbms_keys, tmp_path)
    assert loose.status is Status.UNKNOWN
    assert f"{passfile} is readable by group or others (mode 0640)" in loose.summary
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o640  # the check never changes it


# -- the web publication ---------------------------------------------------------------------------

def start_ragent(where: Path, version: str, spawn: Callable[..., Any]) -> None:
    """A process that looks like a running cluster agent as its unit starts it (name ``ragent``,
    command line ``…/<version>/ragent``): ``/bin/sleep`` through a link of that name."""
    link = where / "opt/1cv8/x86_64" / version / "ragent"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/bin/sleep")
    spawn([str(link), "300"])


@pytest.fixture
def ragent(tmp_path: Path, spawn: Callable[..., Any]) -> Iterator[None]:
    start_ragent(tmp_path, PLATFORM, spawn)
    yield


def test_publication_names_the_running_platform_or_is_critical(box_1c: Box, ragent: None,
                                                               tmp_path: Path) -> None:
    platforms = box_1c.layout.root / "opt/1cv8/x86_64"
    conf = tmp_path / "apache2.conf"

    def publish(version: str) -> None:  # what webinst -publish -apache24 writes
        conf.write_text(f'ServerRoot "/etc/apache2"\n# 1c publication\n'
                        f'LoadModule _1cws_module "{platforms / version / "wsap24.so"}"\n')

    keys = {"url": box_1c.info.portal_url, "apache_conf": str(conf)}
    publish(PLATFORM)
    ok = run_check("onec_publication", keys, tmp_path)
    assert ok.status is Status.OK, ok.summary
    assert f"wsap24.so of {PLATFORM}, the running platform" in ok.summary
    publish("8.3.26.1521")
    wrong = run_check("onec_publication", keys, tmp_path)
    assert wrong.status is Status.CRITICAL
    assert f"loads wsap24.so of 8.3.26.1521 but the platform running is {PLATFORM}" in wrong.summary
    assert samples(wrong, "boxkeeper_onec_publication_version_match") == {(): 0.0}
    publish(PLATFORM)
    assert run_check("onec_publication", keys, tmp_path).status is Status.OK
    box_1c.fault("stop-nginx")
    assert run_check("onec_publication", keys, tmp_path).status is Status.CRITICAL


# -- as the agent's unprivileged user ---------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
@pytest.mark.skipif(not all(os.stat(p).st_mode & 0o001 for p in (REPO, *REPO.parents)),
                    reason=f"user nobody cannot reach the checkout {REPO} (as in test_checks_privileges.py)")
def test_the_1c_checks_as_an_unprivileged_user_with_its_own_secret_files(box_1c: Box) -> None:
    """``boxkeeper-agent check`` as ``nobody``: the password files belong to it, mode 0600."""
    pg = box_1c.info.pg
    assert pg is not None
    shared = Path(tempfile.mkdtemp(prefix="bk-onec-priv-"))
    try:
        shared.chmod(0o755)
        pwd, pgpass = shared / "buh.pwd", shared / "pgpass"
        pwd.write_text(PASSWORD + "\n")
        pgpass.write_text(f"{pg.host}:{pg.port}:*:{pg.user}:{pg.password}\n")
        for secret in (pwd, pgpass):
            secret.chmod(0o600)
            os.chown(secret, NOBODY, NOBODY)
        config = shared / "agent.yaml"
        config.write_text(yaml.safe_dump({"checks": [
            {"name": "cluster", "type": "onec_cluster", "rac": rac_path(box_1c)},
            {"name": "workers", "type": "onec_workers", "rac": rac_path(box_1c)},
            {"name": "ib", "type": "onec_infobase", "rac": rac_path(box_1c), "infobase": "buh",
             "infobase_user": "Администратор", "infobase_password_file": str(pwd), "password_in_argv": True,
             "update_marker": str(shared / "onec-update-{infobase}.lock")},
            {"name": "db", "type": "onec_dbms", "host": pg.host, "port": pg.port, "user": pg.user,
             "database": "buh", "passfile": str(pgpass)},
        ]}, allow_unicode=True))
        config.chmod(0o644)
        result = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             str(REPO / ".venv" / "bin" / "boxkeeper-agent"), "check", "--config", str(config), "--json"],
            capture_output=True, text=True, timeout=120, check=False, cwd="/",
        )  # fmt: skip
        rows = {r["name"]: r for r in json.loads(result.stdout or "[]")}
        output = result.stdout + result.stderr
        statuses = {n: r["status"] for n, r in rows.items()}
        assert statuses == dict.fromkeys(("cluster", "workers", "ib", "db"), "OK"), output
        assert PASSWORD not in output and pg.password not in output
    finally:
        shutil.rmtree(shared)
