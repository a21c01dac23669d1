"""Fixtures of the workflow tests: a migrated store, a recording incident sink, a test playbook."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from controller.store.db import Database
from controller.workflows.outcomes import IncidentRequest

# Every phase's commands are short words the FakeExecutor rules can match.
TEST_PLAYBOOK = """
name: test-update
backup_location: "{{ backup_dir }}/run-{{ run_id }}"
rollback_notice: "Next online update may fail with ERROR_WRONG_CODE."
lock_file: "{{ lock_dir }}/update.lock"
variables:
  backup_dir: {type: path, default: /backup}
  lock_dir: {type: path, default: /var/lock}
  api_token: {type: str, secret: true, default: tok-DEFAULT-123}
phases:
  preflight:
    - name: disk
      run: check-disk {{ backup_dir }}
    - name: version before
      run:
        command: read-version
        capture: {name: version_before, regex: 'VERSION=(\\S+)'}
    - name: db password
      run:
        command: read-password
        capture: {name: db_password, regex: 'PASSWORD=(\\S+)', secret: true}
  backup:
    - name: pause cron
      run: pause-cron
    - name: dump
      run: DB_PASSWORD={{ captured.db_password }} make-backup {{ backup_dir }}/run-{{ run_id }}
  backup_verify:
    - name: check backup
      run:
        command: verify-backup
        success_regex: 'backup ok'
  update:
    - name: update modules
      timeout: 30
      run:
        command: TOKEN={{ api_token }} do-update
        until: {not_regex: 'Restart the command', attempts: 3}
        failure_regex: 'UPD_ERROR'
  verify:
    - name: version moved
      after: update
      run: version-moved {{ captured.version_before }}
    - name: version restored
      after: rollback
      run: version-is {{ captured.version_before }}
  rollback:
    - name: restore
      run: DB_PASSWORD={{ captured.db_password }} restore {{ backup_dir }}/run-{{ run_id }}
  finally:
    - name: resume cron
      run: resume-cron
"""


class RecordingIncidents:
    def __init__(self) -> None:
        self.opened: list[IncidentRequest] = []

    def open(self, session: Session, request: IncidentRequest) -> None:
        self.opened.append(request)


@pytest.fixture
def store(tmp_path: Path, migrated_sqlite: Callable[[Path], str]) -> Iterator[Database]:
    database = Database(migrated_sqlite(tmp_path / "boxkeeper.db"))  # a copy of the session's migrated file
    try:
        yield database
    finally:
        database.engine.dispose()


@pytest.fixture
def incidents() -> RecordingIncidents:
    return RecordingIncidents()


@pytest.fixture
def test_playbook_path(tmp_path: Path) -> Path:
    path = tmp_path / "test-update.yaml"
    path.write_text(textwrap.dedent(TEST_PLAYBOOK))
    return path


@pytest.fixture
def service_incidents() -> object:
    """The real incident service (controller.alerting.incidents.open_incident)."""
    from controller.workflows.outcomes import ServiceIncidents

    return ServiceIncidents()
