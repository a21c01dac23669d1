"""``boxkeeper`` CLI: hosts add/list/revoke, status, operators, config errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from controller.cli import main
from controller.store.db import Database

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, database_url: str | None = None) -> Path:
    path = tmp_path / "controller.yaml"
    db_line = f"database: {database_url}\n" if database_url else ""
    path.write_text(
        f"""listen: 127.0.2.1:0
state_dir: {tmp_path}/state
{db_line}clients:
  - name: acme
    timezone: Europe/Moscow
    hosts:
      - {{name: portal-01, portal_url: "http://127.0.2.99:9/"}}
""",
        encoding="utf-8",
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hosts_add_list_revoke(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path, database_url))
    code, out, _ = _run(capsys, "hosts", "add", "web1", "--client", "acme", "--json", "--config", cfg)
    assert code == 0
    added = json.loads(out)
    assert added["host"] == "web1" and added["client"] == "acme" and added["token"].startswith("bka_")

    code, out, err = _run(capsys, "--config", cfg, "hosts", "add", "web1", "--client", "acme")
    assert code == 1 and "already has an agent token" in err

    code, out, _ = _run(capsys, "hosts", "list", "--json", "--config", cfg)
    rows = {r["host"]: r for r in json.loads(out)}
    assert rows["web1"]["token"] is True and rows["portal-01"]["token"] is False

    code, out, _ = _run(capsys, "hosts", "revoke", "web1", "--config", cfg)
    assert code == 0 and "1 token(s) revoked" in out
    code, out, _ = _run(capsys, "hosts", "list", "--config", cfg)
    assert "web1" in out and "none" in out

    code, out, _ = _run(capsys, "hosts", "add", "web1", "--client", "acme", "--config", cfg)
    assert code == 0 and "shown once" in out  # a new token after the revoke

    code, _, err = _run(capsys, "hosts", "add", "x", "--client", "nope", "--config", cfg)
    assert code == 1 and "no client 'nope'" in err
    code, _, err = _run(capsys, "hosts", "revoke", "ghost", "--config", cfg)
    assert code == 1 and "no host 'ghost'" in err


def test_status_json_lists_hosts_with_state_and_checks(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from controller import ingest
    from controller.cli.common import load_config
    from controller.store.db import Database
    from tests.controller.reports import body, make_report

    monkeypatch.setenv("BOXKEEPER_CONFIG", str(_config(tmp_path)))
    _, out, _ = _run(capsys, "hosts", "add", "web1", "--client", "acme", "--json")
    token = json.loads(out)["token"]
    cfg = load_config(type("A", (), {"config": None})())  # type: ignore[arg-type]
    db = Database(cfg.database)
    ingest.ingest(db, token, body(make_report("web1", 1, checks=2, statuses={"check_1": 1})))
    db.dispose()

    code, out, _ = _run(capsys, "status", "--json")
    assert code == 0
    fleet = {h["host"]: h for h in json.loads(out)}
    assert fleet["web1"]["client"] == "acme" and fleet["web1"]["state"] == "warning"
    assert [c["name"] for c in fleet["web1"]["checks"]] == ["check_0", "check_1"]
    assert fleet["portal-01"]["state"] == "unknown"

    code, out, _ = _run(capsys, "status")
    header, *lines = out.splitlines()
    assert header.split() == ["HOST", "CLIENT", "STATE", "LAST", "REPORT", "OPEN", "INCIDENTS", "CHECKS"]
    assert any(line.startswith("web1") and "warning" in line and "1 ok, 1 warning" in line for line in lines)


def test_operators_add_prints_the_token_once_and_stores_a_hash(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = str(_config(tmp_path))
    code, out, _ = _run(capsys, "operators", "add", "alice", "--json", "--config", cfg)
    assert code == 0
    token = json.loads(out)["token"]
    stored = tmp_path / "state" / "operators.yaml"
    assert token not in stored.read_text() and "alice" in stored.read_text()
    assert stored.stat().st_mode & 0o077 == 0
    assert _run(capsys, "operators", "add", "alice", "--config", cfg)[0] == 1


def test_a_config_error_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clients:\n  - name: acme\n    hosts: [{name: a, ssh: {address: nowhere}}]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "status", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert f"{bad}: clients[0].hosts[0].ssh.address: expected an address" in proc.stderr


READ_ONLY = (
    ["status", "--json"], ["hosts", "list"], ["incidents"], ["incidents", "--open", "--json"], ["runs"],
    ["windows", "list"], ["maintenance", "list"], ["rollouts"],
)


def _snapshot(state: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state.iterdir()) if p.is_file()}


def test_read_only_commands_never_migrate_or_write(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path))
    state = tmp_path / "state"
    for argv in READ_ONLY:  # nothing there yet: refused, and nothing created
        code, _, err = _run(capsys, *argv, "--config", cfg)
        assert code == 1 and "run `boxkeeper migrate`" in err, argv
    assert not state.exists() or not any(state.iterdir())

    assert _run(capsys, "migrate", "--config", cfg)[0] == 0
    assert _run(capsys, "hosts", "add", "portal-01", "--client", "acme", "--config", cfg)[0] == 0
    db = Database(f"sqlite:///{state}/boxkeeper.db")
    db.dispose()  # every connection closed: the WAL is checkpointed into the file
    before = _snapshot(state)
    for argv in READ_ONLY:
        code, _, err = _run(capsys, *argv, "--config", cfg)
        assert code == 0, (argv, err)
    assert _snapshot(state) == before, "a read-only command changed the database files"

    db = Database(f"sqlite:///{state}/boxkeeper.db")
    with db.session() as s:  # a database one migration behind this boxkeeper (as after an upgrade)
        s.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    db.dispose()
    code, _, err = _run(capsys, "status", "--config", cfg)
    assert code == 1 and "schema at revision 0003" in err and "run `boxkeeper migrate`" in err
    db = Database(f"sqlite:///{state}/boxkeeper.db")
    with db.read_session() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"
    db.dispose()
