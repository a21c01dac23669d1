"""``file_age`` checks on real files (ages set with os.utime, the clock injected)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.checks.file_age import FileAgeCheck, FileAgeSpec, age_text, base_directory
from agent.report import Status

NOW = 1_800_000_000.0
HOUR = 3600.0
MiB = 2**20


def _file(path: Path, age: float, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: big files cost nothing
    os.utime(path, (NOW - age, NOW - age))
    return path


def _check(pattern: str, **kw: object) -> FileAgeCheck:
    kw.setdefault("max_age", 26 * HOUR)
    return FileAgeCheck(FileAgeSpec(name="backup", glob=pattern, **kw), wall=lambda: NOW)  # type: ignore[arg-type]


def test_fresh_big_newest_backup_is_ok(tmp_path: Path) -> None:
    _file(tmp_path / "archive" / "old.tar.gz", 50 * HOUR, 10 * MiB)
    newest = _file(tmp_path / "archive" / "new.tar.gz", 3 * HOUR + 720, 5 * MiB)
    _file(tmp_path / "archive" / "newer.log", 1, 1)  # does not match the glob
    result = _check(str(tmp_path / "archive" / "*.tar.gz"), min_size=MiB).run(5)
    assert result.status is Status.OK
    assert result.summary == f"newest {newest} is 3h 12m old, 5.0 MiB"
    perf = {p.label: p for p in result.perfdata}
    assert perf["age"].value == 3 * HOUR + 720 and perf["age"].unit == "s"
    assert perf["size"].value == 5 * MiB
    assert perf["count"].value == 2


def test_no_file_is_critical(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    result = _check(str(tmp_path / "archive" / "*.tar.gz")).run(5)
    assert result.status is Status.CRITICAL
    assert result.summary == f"no file matches {tmp_path}/archive/*.tar.gz"


def test_missing_directory_is_critical_and_says_so(tmp_path: Path) -> None:
    result = _check(str(tmp_path / "nope" / "*.tar.gz")).run(5)
    assert result.status is Status.CRITICAL
    assert f"directory {tmp_path}/nope does not exist" in result.summary


def test_too_old_is_critical(tmp_path: Path) -> None:
    _file(tmp_path / "b.tar.gz", 27 * HOUR, 10 * MiB)
    result = _check(str(tmp_path / "*.tar.gz")).run(5)
    assert result.status is Status.CRITICAL
    assert result.summary.endswith("is 1d 3h old, 10.0 MiB: older than 1d 2h")


def test_older_than_warning_age_is_warning(tmp_path: Path) -> None:
    _file(tmp_path / "b.tar.gz", 25 * HOUR, 10 * MiB)
    result = _check(str(tmp_path / "*.tar.gz"), warning_age=24 * HOUR).run(5)
    assert result.status is Status.WARNING
    assert result.summary.endswith("older than 1d 0h")


def test_too_small_is_critical_even_when_fresh(tmp_path: Path) -> None:
    _file(tmp_path / "b.tar.gz", HOUR, 100)
    result = _check(str(tmp_path / "*.tar.gz"), min_size=MiB).run(5)
    assert result.status is Status.CRITICAL
    assert result.summary.endswith("1h 0m old, 100 B: smaller than 1.0 MiB")


def test_only_the_newest_file_is_judged(tmp_path: Path) -> None:
    _file(tmp_path / "a.tar.gz", HOUR, 100)  # newest, too small
    _file(tmp_path / "b.tar.gz", 2 * HOUR, 10 * MiB)
    assert _check(str(tmp_path / "*.tar.gz"), min_size=MiB).run(5).status is Status.CRITICAL


def test_min_count(tmp_path: Path) -> None:
    _file(tmp_path / "a.tar.gz", HOUR, 10)
    result = _check(str(tmp_path / "*.tar.gz"), min_count=3).run(5)
    assert result.status is Status.CRITICAL
    assert result.summary == f"only 1 files match {tmp_path}/*.tar.gz (want at least 3)"
    assert _check(str(tmp_path / "*.zip"), min_count=0).run(5).status is Status.OK


def test_directories_do_not_count_and_recursive_glob_works(tmp_path: Path) -> None:
    (tmp_path / "dir.tar.gz").mkdir()
    deep = _file(tmp_path / "site1" / "2026" / "db.sql.gz", HOUR, 10)
    result = _check(str(tmp_path / "**" / "*.gz")).run(5)
    assert result.status is Status.OK
    assert str(deep) in result.summary


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_unreadable_directory_is_unknown(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        result = _check(str(locked / "*.tar.gz")).run(5)
    finally:
        locked.chmod(0o755)
    assert result.status is Status.UNKNOWN
    assert "permission denied" in result.summary


def test_helpers() -> None:
    assert base_directory("/home/bitrix/backup/archive/*.tar.gz") == "/home/bitrix/backup/archive"
    assert base_directory("/backup/*/daily/*.gz") == "/backup"
    assert base_directory("*.gz") == "."
    assert age_text(45) == "45s" and age_text(125) == "2m 5s" and age_text(90000) == "1d 1h"
    assert age_text(-10) == "0s"
