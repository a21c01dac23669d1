"""Leader election (controller/leader.py): on PostgreSQL one election of several holds the advisory
lock and a follower takes over when the leader's connection ends; a leader whose connection is cut
finds out and steps down. On SQLite a second ``serve`` on the same file is refused with a clear
error.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from controller import leader
from controller.leader import PostgresElection
from controller.store.db import Database
from tests.controller.conftest import PostgresServer
from tests.controller.proc import ControllerProcess

pytestmark = pytest.mark.integration


def test_one_election_leads_and_a_follower_takes_over_when_it_ends(postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.new_database())
    events: list[str] = []
    first = PostgresElection(db, on_elected=lambda: events.append("first"), on_lost=lambda: None,
                             keepalive=0.2)
    second = PostgresElection(db, on_elected=lambda: events.append("second"), on_lost=lambda: None,
                              keepalive=0.2)
    try:
        assert first.try_once() is True
        first.leader = True
        assert second.try_once() is False  # the lock is held: a follower
        assert first.try_once() is True  # the keep-alive sees the lock still held
        first.stop()  # its connection closes: the server releases the lock (once its backend exits)
        assert any(second.try_once() or time.sleep(0.1) for _ in range(100))
    finally:
        second.stop()
        db.dispose()


def test_a_leader_whose_connection_is_cut_steps_down(postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.new_database())
    lost: list[bool] = []
    election = PostgresElection(db, on_elected=lambda: None, on_lost=lambda: lost.append(True),
                                keepalive=0.2)
    try:
        election.start()
        deadline = 50
        while not leader.is_leader() and deadline:
            deadline -= 1
            election._stop.wait(0.1)
        assert leader.is_leader()
        with db.session() as s:  # an administrator (or a network cut) ends the leader's session
            s.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE application_name LIKE 'boxkeeper-leader%'"))
        election._thread.join(10)  # type: ignore[union-attr]
        assert lost == [True] and not leader.is_leader()
    finally:
        election.stop()
        db.dispose()


def test_a_second_serve_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text(f"database: sqlite:///{tmp_path}/bk.db\nstate_dir: {tmp_path}/state\n"
                      "clients:\n  - name: acme\n    hosts: [{name: h1}]\n")
    first = ControllerProcess(config, tmp_path, listen="127.0.3.95:0")
    first.start()
    try:
        serve = [sys.executable, "-m", "controller.cli", "serve", "--config", str(config),
                 "--listen", "127.0.3.95:0"]
        second = subprocess.run(serve, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2
        expected = f"{config}: database: expected a SQLite file that no other `boxkeeper serve` uses"
        assert expected in second.stderr
        assert "SQLite supports one controller: for two, use PostgreSQL" in second.stderr
        assert f"pid {first.proc.pid if first.proc else '?'} serves it" in second.stderr
        # an API-only replica does not run the singletons and may share the file
        api_only = subprocess.Popen(
            [*serve, "--no-monitor", "--ready-file", str(tmp_path / "api-ready")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                if (tmp_path / "api-ready").exists() or api_only.poll() is not None:
                    break
                subprocess.run(["sleep", "0.1"], check=True)
            assert api_only.poll() is None and (tmp_path / "api-ready").exists()
        finally:
            api_only.terminate()
            api_only.wait(30)
    finally:
        first.stop()
    # once the first has stopped, a new serve starts
    again = ControllerProcess(config, tmp_path, listen="127.0.3.95:0")
    again.start()
    again.stop()


def test_a_serve_that_loses_its_leader_lock_stops_with_status_3(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    config = tmp_path / "controller.yaml"
    config.write_text(f"database: {url}\nstate_dir: {tmp_path}/state\n"
                      "clients:\n  - name: acme\n    hosts: [{name: h1}]\n")
    controller = ControllerProcess(config, tmp_path, listen="127.0.3.96:0")
    controller.start()
    db = Database(url)
    try:
        def leading() -> bool:
            with db.read_session() as s:
                return bool(s.execute(text("SELECT count(*) FROM pg_stat_activity"
                                           " WHERE application_name LIKE 'boxkeeper-leader%'")).scalar())
        assert any(leading() or time.sleep(0.2) for _ in range(150))
        with db.session() as s:  # its database session ends (a network cut, an administrator)
            s.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE application_name LIKE 'boxkeeper-leader%'"))
        assert controller.proc is not None
        assert controller.proc.wait(timeout=60) == 3
        assert "lost the leader lock" in controller.log_tail()
    finally:
        controller.stop()
        db.dispose()
