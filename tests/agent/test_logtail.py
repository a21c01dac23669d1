"""The kept-offset tail of a log file: first start at the end, growth, partial lines, rotation
(the old file found by its inode), truncation, bounded reads, the state file, read-only reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.logtail import LogError, LogTail


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "error_log"
    path.write_text("old line 1\nold line 2\n")
    return path


def test_the_first_start_reads_nothing_and_begins_at_the_end(log: Path, tmp_path: Path) -> None:
    tail = LogTail(log, tmp_path / "state/x.json")
    first = tail.read()
    assert first.started and first.lines == () and first.size == 22
    append(log, "new 1\nnew 2\n")
    assert tail.read().lines == ("new 1", "new 2")
    assert tail.read().lines == ()


def test_a_line_still_being_written_waits_for_its_newline(log: Path, tmp_path: Path) -> None:
    tail = LogTail(log, None)
    tail.read()
    append(log, "complete\npart")
    assert tail.read().lines == ("complete",)
    append(log, "ial\n")
    assert tail.read().lines == ("partial",)


def test_the_offset_survives_a_restart_through_the_state_file(log: Path, tmp_path: Path) -> None:
    state = tmp_path / "state" / "check.json"
    LogTail(log, state).read()
    append(log, "while the agent was down\n")
    assert LogTail(log, state).read().lines == ("while the agent was down",)
    data = json.loads(state.read_text())
    assert data["offset"] == log.stat().st_size and data["ino"] == log.stat().st_ino
    assert state.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in state.parent.iterdir()] == ["check.json"]  # no temporary file left


def test_a_read_only_tail_never_moves_the_kept_offset(log: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    LogTail(log, state).read()
    append(log, "line for the agent\n")
    assert LogTail(log, state, save=False).read().lines == ("line for the agent",)
    assert LogTail(log, state).read().lines == ("line for the agent",)  # still there for the agent
    fresh = tmp_path / "none.json"
    assert LogTail(log, fresh, save=False).read().started and not fresh.exists()


@pytest.mark.parametrize("rotated_name", ["error_log.1", "error_log-20261203"])
def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(
    log: Path, tmp_path: Path, rotated_name: str,
) -> None:
    tail = LogTail(log, tmp_path / "s.json")
    tail.read()
    append(log, "before rotation\n")
    os.rename(log, tmp_path / rotated_name)
    append(tmp_path / rotated_name, "last words of the old file")  # no newline: the file is finished
    log.write_text("first of the new file\n")
    read = tail.read()
    assert read.lines == ("before rotation", "last words of the old file", "first of the new file")
    assert read.rotated_from == str(tmp_path / rotated_name)
    assert "rotated" in read.notes[0]


def test_rotation_without_the_old_file_starts_the_new_one_at_its_beginning(log: Path, tmp_path: Path) -> None:
    tail = LogTail(log, None)
    tail.read()
    new = tmp_path / "replacement"
    new.write_text("new file line\n")
    os.replace(new, log)  # the old file is gone (rotated and compressed away)
    read = tail.read()
    assert read.lines == ("new file line",) and read.rotated_from == ""
    assert read.notes == ["rotated: read the new file from its start"]


def test_truncation_reads_from_the_beginning(log: Path) -> None:
    tail = LogTail(log, None)
    tail.read()
    with open(log, "w") as f:  # copytruncate: same inode, size 0, then new lines
        f.write("after truncation\n")
    read = tail.read()
    assert read.lines == ("after truncation",) and read.truncated


def test_a_flood_is_read_from_its_newest_bytes_and_says_what_it_skipped(log: Path) -> None:
    tail = LogTail(log, None, max_read=1024)
    tail.read()
    append(log, "".join(f"flood line {i:05d}\n" for i in range(10_000)))
    read = tail.read()
    assert read.lines[-1] == "flood line 09999"
    assert all(line.startswith("flood line ") for line in read.lines)  # starts at a line start
    assert read.bytes_read <= 1024 and read.bytes_read + read.skipped_bytes == 170_000
    assert "skipped" in read.notes[0]
    assert tail.read().lines == ()  # caught up


def test_invalid_utf8_is_replaced_not_fatal(log: Path) -> None:
    tail = LogTail(log, None)
    tail.read()
    with open(log, "ab") as f:
        f.write(b"PHP Fatal error: \xff\xfe broken\n")
    assert tail.read().lines == ("PHP Fatal error: \ufffd\ufffd broken",)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    assert LogTail(tmp_path / "absent", None, missing_ok=True).read().missing
    with pytest.raises(LogError, match="does not exist"):
        LogTail(tmp_path / "absent", None).read()
    with pytest.raises(LogError, match="not a regular file"):
        LogTail(tmp_path, None).read()


def test_a_state_dir_that_cannot_be_written_keeps_the_offset_in_memory(log: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    tail = LogTail(log, blocker / "state.json")
    assert "offset not saved" in " ".join(tail.read().notes)
    append(log, "still counted\n")
    assert tail.read().lines == ("still counted",)
