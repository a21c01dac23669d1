"""What each check can do without root: ``boxkeeper-agent check`` run as the user ``nobody``.

Backs the privilege table in docs/agent-checks.md: process (other users' processes, their user,
RSS and CPU), disk, tcp, http and command checks work unprivileged; file_age needs read access to
the backup directory and says so (UNKNOWN) when it lacks it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.conftest import LOOPBACK, PLUGINS, REPO, HttpServer, respond


def _others_can_reach(path: Path) -> bool:
    """Whether a user with no rights of its own can walk down to ``path`` (o+x on every parent)."""
    return all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"),
    pytest.mark.skipif(not _others_can_reach(REPO), reason=f"user nobody cannot reach the checkout {REPO} "
                       "(a parent directory lacks o+x, e.g. /root is 0700): clone it elsewhere to run this"),
]

NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory ``nobody`` can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="bk-priv-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_checks_as_an_unprivileged_user(
    shared_dir: Path,
    spawn: Callable[..., subprocess.Popen[bytes]],
    http_server: Callable[..., HttpServer],
) -> None:
    marker = f"bk-priv-{os.getpid()}"
    spawn([marker, "300"], executable="/bin/sleep")  # runs as root
    readable = shared_dir / "backup"
    readable.mkdir(mode=0o755)
    (readable / "db.tar.gz").write_bytes(b"x" * 2048)
    private = shared_dir / "private"
    private.mkdir(mode=0o700)
    (private / "db.tar.gz").write_bytes(b"x" * 2048)
    srv = http_server({"/": respond(200, "Bitrix")})
    config = shared_dir / "agent.yaml"
    config.write_text(
        "checks:\n"
        f"  - {{name: proc, type: process, cmdline_regex: '^{marker} ', user: root}}\n"
        f"  - {{name: disk, type: disk, path: /, warning: 100%, critical: 100%, inodes_warning: 100%,"
        f" inodes_critical: 100%}}\n"
        f"  - {{name: backup, type: file_age, glob: '{readable}/*.tar.gz', max_age: 1h}}\n"
        f"  - {{name: private, type: file_age, glob: '{private}/*.tar.gz', max_age: 1h}}\n"
        f"  - {{name: web, type: http, url: '{srv.url('/')}', body_regex: Bitrix}}\n"
        f"  - {{name: port, type: tcp, address: '{LOOPBACK}:{srv.port}'}}\n"
        f"  - {{name: plugin, type: command, command: ['{PLUGINS / 'check_dummy'}', '0', 'fine']}}\n"
    )
    config.chmod(0o644)
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         str(REPO / ".venv" / "bin" / "boxkeeper-agent"), "check", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
    )  # fmt: skip
    assert result.stdout, result.stderr
    data = {d["name"]: d for d in json.loads(result.stdout)}
    for name in ("proc", "disk", "backup", "web", "port", "plugin"):
        assert data[name]["status"] == "OK", (name, data[name]["summary"])
    assert "1 process with cmdline" in data["proc"]["summary"] and "MiB RSS" in data["proc"]["summary"]
    assert data["private"]["status"] == "UNKNOWN"
    assert "permission denied" in data["private"]["summary"]
    assert result.returncode == 3
