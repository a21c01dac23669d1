"""os-packages-update.yaml's dnf path, as far as this Debian machine allows: the whole playbook runs
through the engine on the FakeExecutor, whose every command is the rendered command run in a local
``sh`` with TEST DOUBLES of ``dnf``, ``rpm``, ``needs-restarting``, ``systemctl`` and ``mysql`` first
on the PATH (the real ``php``, ``df``, ``awk``, ``sed``). So the dnf branch's shell (the plan read
from ``dnf check-update``, the history id, ``needs-restarting -r``, ``history undo``) really runs,
but against doubles whose output is modelled on dnf(8) and rpm(8), not on a real Rocky/Alma host
[unverified]: see docs/workflows.md "OS packages" for what that leaves open.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.loader import load_playbook
from controller.workflows.outcomes import IncidentRequest
from tests.controller.workflows.fakes import FakeExecutor

PLAYBOOK = Path(__file__).resolve().parents[3] / "playbooks" / "os-packages-update.yaml"
OLD, NEW = "8.2.1-1.el9", "8.2.2-1.el9"

DOUBLES = {
    # dnf 4: check-update exits 100 and lists "name.arch  version  repo" when updates exist
    "dnf": """
S={state}; echo "dnf $*" >> $S/calls
while [ $# -gt 0 ]; do case $1 in -q|-y|--setopt=*) shift ;; *) break ;; esac; done
case $1 in
  makecache|check) exit 0 ;;
  check-update)
    if [ "$(cat $S/installed)" != "$(cat $S/available)" ]; then
      printf '\\nphp-cli.x86_64    %s    appstream\\n' "$(cat $S/available)"; exit 100; fi; exit 0 ;;
  upgrade)
    cp $S/available $S/installed; echo $(( $(cat $S/history) + 1 )) > $S/history
    [ -e $S/upgrade-breaks-httpd ] && touch $S/httpd-broken; echo Complete! ;;
  history)
    case $2 in
      list) printf 'ID     | Command line | Date and time    | Action(s) | Altered\\n'
            printf -- '-------------------------------------------------------------\\n'
            printf '    %s | upgrade php-cli | 2026-12-03 03:00 | Upgrade | 1\\n' "$(cat $S/history)" ;;
      undo) echo "$3" > $S/undone; cp $S/old $S/installed; rm -f $S/httpd-broken
            echo $(( $(cat $S/history) + 1 )) > $S/history; echo Complete! ;;
    esac ;;
esac
""",
    # rpm -q --qf FORMAT NAME / rpm -qa --qf FORMAT: the installed php-cli
    "rpm": """
S={state}; case $1 in -qa) echo "php-cli.x86_64=$(cat $S/installed)" ;; *) cat $S/installed ;; esac
""",
    # needs-restarting -r (dnf-utils): exit 1 when a reboot is needed
    "needs-restarting": """
[ -e {state}/needs-reboot ] && { echo 'Reboot is required to fully utilize these updates.'; exit 1; }
echo 'No core libraries or services have been updated since boot-up.'; exit 0
""",
    "systemctl": """
S={state}; echo "systemctl $*" >> $S/calls
case $1 in
  is-active) if [ "$2" = httpd ] && [ -e $S/httpd-broken ]; then echo failed; exit 3; fi; echo active ;;
esac
""",
    "mysql": "echo 1",
    # systemctl reboot: a new boot id, /run emptied
    "reboot-double": "cat /proc/sys/kernel/random/uuid > {state}/boot_id; rm -f {state}/needs-reboot",
}


class Portal(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"PORTAL_OK")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def portal_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class RockyHost:
    """A FakeExecutor that runs each rendered command in a local sh, the doubles first on PATH."""

    def __init__(self, tmp: Path) -> None:
        self.state = tmp / "state"
        self.bin = tmp / "bin"
        self.docroot = tmp / "www"
        for d in (self.state, self.bin, self.docroot / "bitrix", tmp / "backup", tmp / "lock"):
            d.mkdir(parents=True)
        for name, body in DOUBLES.items():
            script = self.bin / name
            body = body.replace("{state}", str(self.state))
            script.write_text(f"#!/bin/sh\n# TEST DOUBLE ({__name__})\n{body}")
            script.chmod(0o755)
        (self.docroot / "bitrix/.settings.php").write_text(
            "<?php return ['connections' => ['value' => ['default' => ['host' => '127.0.0.1:3306', "
            "'database' => 'portal', 'login' => 'bitrix', 'password' => 'pw-secret']]]];\n")
        for name, value in (("installed", OLD), ("old", OLD), ("available", NEW), ("history", "5"),
                            ("boot_id", "first-boot")):
            (self.state / name).write_text(value + "\n")
        self.fake = FakeExecutor().on(r"", self.run)

    def run(self, text: str) -> tuple[int, str, str]:
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LANG": "C", "LC_ALL": "C"}
        done = subprocess.run(["sh", "-c", text], env=env, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    def read(self, name: str) -> str:
        path = self.state / name
        return path.read_text().strip() if path.exists() else ""

    def variables(self, portal_url: str) -> dict[str, str]:
        tmp = self.state.parent
        return {
            "package_manager": "auto",  # dnf is on the PATH: detected
            "packages": "'php*'",
            "backup_dir": str(tmp / "backup"), "lock_dir": str(tmp / "lock"), "min_free_mb": "1",
            "docroot": str(self.docroot), "portal_url": portal_url,
            "php_modules": "Core", "pair_packages": "^no-such-package",
            "reboot_command": str(self.bin / "reboot-double"),
            "boot_id_command": f"cat {self.state}/boot_id", "reboot_timeout": "60",
        }


class Incidents:
    def __init__(self) -> None:
        self.opened: list[IncidentRequest] = []

    def open(self, session: Session, request: IncidentRequest) -> None:
        self.opened.append(request)


def run(store: Database, host: RockyHost, portal_url: str) -> Any:
    engine = Engine(store.session, incidents=Incidents(), sleep=lambda s: time.sleep(min(s, 0.2)))
    return engine.run(load_playbook(PLAYBOOK), "rocky-1", host.fake, host.variables(portal_url))


def test_dnf_update_reboots_when_needs_restarting_says_so(store: Database, tmp_path: Path,
                                                          portal_url: str) -> None:
    host = RockyHost(tmp_path)
    (host.state / "needs-reboot").touch()
    result = run(store, host, portal_url)

    assert result.state == "SUCCEEDED", result.error
    assert result.captured["pm"] == "dnf"
    assert result.captured["plan"] == f"php-cli={OLD}>{NEW}"
    assert result.captured["history_before"] == "5"
    assert "dnf -y upgrade php*" in host.read("calls")  # only the chosen set, the glob as given
    assert host.read("installed") == NEW
    assert result.captured["reboot"] == "yes:first-boot" and host.read("boot_id") != "first-boot"
    recorded = tmp_path / f"backup/boxkeeper-run-{result.id}/versions.before"
    assert "php-cli.x86_64=" + OLD in recorded.read_text()


def test_dnf_update_that_breaks_a_service_is_undone_by_history_undo(store: Database, tmp_path: Path,
                                                                   portal_url: str) -> None:
    host = RockyHost(tmp_path)
    (host.state / "upgrade-breaks-httpd").touch()
    result = run(store, host, portal_url)

    assert result.state == "ROLLED_BACK", result.error
    assert result.failed_step == "verify/services are active"
    assert host.read("undone") == "6"  # the transaction after the one recorded before the update
    assert host.read("installed") == OLD
    assert result.captured["reboot"] == "no:first-boot"


def test_nothing_to_update_with_dnf_changes_nothing(store: Database, tmp_path: Path, portal_url: str) -> None:
    host = RockyHost(tmp_path)
    (host.state / "available").write_text(OLD + "\n")
    result = run(store, host, portal_url)
    assert result.state == "SUCCEEDED", result.error
    assert result.captured["plan"] == "none"
    assert "upgrade" not in host.read("calls").replace("check-update", "")
