"""What the 1C playbook tests need around a --with-1c test box (tests/boxes, the 1C TEST DOUBLES and
the box's real PostgreSQL): the playbook variables that point at the box, credentials files on the
box, an executor that lets a test act on the cluster right before a given command, and the
observations an admin would make afterwards (the `buh` database, the infobase's locks, the marker)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.workflows.executor import Command, CommandResult, Executor
from tests.boxes import postgres
from tests.boxes.box import Box
from tests.boxes.doubles import PLATFORM
from tests.boxes.doubles.state import ClusterState

PLAYBOOK = Path(__file__).resolve().parents[3] / "playbooks" / "1c-config-update.yaml"
START, NEXT, LAST = "3.1.9.200", "3.1.10.100", "3.1.11.50"
IB_USER, IB_PASSWORD = "Администратор", "secret"  # the doubles' infobase user (tests/README.md)


def cluster(box: Box) -> ClusterState:
    return ClusterState(box.layout.onec_state)


def updates(box: Box) -> Path:
    """The ready-made update directories of the doubles (3.1.10.100, 3.1.11.50, …)."""
    return box.layout.onec_state / "updates"


def marker(box: Box) -> Path:
    return box.layout.root / "var/lib/boxkeeper/onec-update-buh.lock"


def onec_vars(box: Box, **extra: str) -> dict[str, str]:
    """Variables of 1c-config-update.yaml for this box; writes the password files it reads."""
    root, pg = box.layout.root, box.info.pg
    assert pg is not None, "a --with-1c box"
    etc = root / "etc/boxkeeper"
    etc.mkdir(parents=True, exist_ok=True)
    password_file = etc / "onec-buh.password"
    password_file.write_text(IB_PASSWORD + "\n")
    password_file.chmod(0o600)
    pgpass = etc / "pgpass"
    pgpass.write_text(f"{pg.host}:{pg.port}:buh:{pg.user}:{pg.password}\n")
    pgpass.chmod(0o600)
    backup_dir = root / "var/backups/boxkeeper-1c"
    backup_dir.mkdir(parents=True, exist_ok=True)
    psql = postgres.PG_BIN / "psql"
    # The doubles keep the versions in the `config` table of the infobase's database (tests/README.md).
    query = "SELECT key || '=' || value FROM config"
    probe = f'{psql} -h {pg.host} -p {pg.port} -U {pg.user} -d buh -qAt -c "{query}"'
    values = {
        "infobase": "buh",
        "ib_user": IB_USER,
        "ib_password_file": str(password_file),
        "update_dir": str(updates(box) / NEXT),
        "state_probe": probe,
        "pg_database": "buh",
        "pg_user": pg.user,
        "pg_host": pg.host,
        "pg_port": str(pg.port),
        "pgpass_file": str(pgpass),
        "pg_bindir": str(postgres.PG_BIN),
        "platform_dir": str(root / "opt/1cv8/x86_64" / PLATFORM),
        "designer_prefix": "",  # the doubles need no X display
        "backup_dir": str(backup_dir),
        "lock_dir": str(box.layout.run),
        "marker_dir": str(root / "var/lib/boxkeeper"),
        "update_timeout": "60",
    }
    values.update(extra)
    return values


def infobase_content(box: Box) -> str:
    """The `buh` database as a user of the infobase would see it: every config row and document."""
    return postgres.psql(
        box.layout,
        "SELECT key, value FROM config ORDER BY key; SELECT id, title, amount FROM documents ORDER BY id;",
        database="buh",
    )


def versions(box: Box) -> dict[str, str]:
    rows = postgres.psql(box.layout, "SELECT key, value FROM config", database="buh").split()
    return dict(row.split("|", 1) for row in rows if "|" in row)


def locks(box: Box) -> tuple[str, str]:
    ib = cluster(box).infobase()
    return ib["sessions_deny"], ib["scheduled_jobs_deny"]


@dataclass
class HookedExecutor:
    """The real SSH executor, with test actions run right before the first command whose text holds
    a given fragment (a user logging in with the permission code, say), and the commands seen."""

    inner: Executor
    before: dict[str, Callable[[], None]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def run(self, command: Command, timeout: float) -> CommandResult:
        for fragment in list(self.before):
            if fragment in command.text:
                self.before.pop(fragment)()
        self.seen.append(command.text)
        return self.inner.run(command, timeout)

    def put(self, local: str, remote: str) -> None:
        self.inner.put(local, remote)

    def get(self, remote: str, local: str) -> None:
        self.inner.get(remote, local)

    def close(self) -> None:
        self.inner.close()
