"""The on-disk spool: ordered, durable, bounded, and honest about what it drops."""

from __future__ import annotations

import json
import logging
import os
import threading
import zlib
from pathlib import Path

import pytest

from agent.errors import SpoolError
from agent.spool import DELIVERED_FILE, Spool, pack, spool_name


def body(seq: int, size: int = 100, *, noise: bool = False) -> bytes:
    head = f'{{"seq":{seq},"pad":"'.encode()
    fill = size - len(head) - 2
    pad = os.urandom(fill).hex()[:fill].encode() if noise else b"x" * fill
    return head + pad + b'"}'


def stored(*seqs: int) -> int:
    """Bytes on disk of body(seq) for each seq (the spool compresses)."""
    return sum(len(pack(body(seq))) for seq in seqs)


def test_replays_oldest_first_and_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    for seq in (3, 1, 2):
        spool.append(seq, body(seq))
    assert spool.oldest() == (1, body(1))
    reopened = Spool(tmp_path, max_bytes=10_000)
    assert reopened.seqs() == [1, 2, 3]
    assert reopened.stats().bytes == stored(1, 2, 3)
    reopened.remove(1)
    assert reopened.oldest() == (2, body(2))
    assert Spool(tmp_path, max_bytes=10_000).seqs() == [2, 3]


def test_the_report_just_stored_is_sent_from_memory_and_still_on_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(1, body(1))
    (tmp_path / spool_name(1)).write_bytes(b"changed on disk")  # proves where oldest() read from
    assert spool.oldest() == (1, body(1))  # the usual push: no read back of the file just written
    spool.append(2, body(2))
    assert spool.oldest() == (1, b"changed on disk")  # older reports come from their files
    spool.remove(1)
    assert spool.oldest() == (2, body(2))
    assert zlib.decompress((tmp_path / spool_name(2)).read_bytes()) == body(2)  # durable all the same
    spool.reject(2)
    assert spool.oldest() is None


def test_files_are_named_by_zero_padded_seq_and_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10_000)
    spool.append(42, body(42))
    path = tmp_path / "spool" / "00000000000000000042.json"
    assert zlib.decompress(path.read_bytes()) == body(42)
    assert spool_name(42) == path.name
    assert path.stat().st_mode & 0o077 == 0
    assert (tmp_path / "spool").stat().st_mode & 0o077 == 0


def test_torn_temp_file_from_a_crash_is_discarded_on_start(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(1, body(1))
    (tmp_path / f".{spool_name(2)}.tmp").write_bytes(b'{"seq":2,"pa')  # kill -9 mid-write
    with caplog.at_level(logging.WARNING):
        reopened = Spool(tmp_path, max_bytes=10_000)
    assert reopened.seqs() == [1]
    assert not list(tmp_path.glob("*.tmp"))
    assert "partly written" in caplog.text


def test_over_max_bytes_drops_oldest_first_counts_and_logs_the_range(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = Spool(tmp_path, max_bytes=stored(3, 4, 5))
    with caplog.at_level(logging.WARNING, logger="agent.spool"):
        for seq in range(1, 6):
            spool.append(seq, body(seq))
    assert spool.seqs() == [3, 4, 5]
    stats = spool.stats()
    assert (stats.reports, stats.bytes, stats.dropped_total) == (3, stored(3, 4, 5), 2)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [spool_name(s) for s in (3, 4, 5)]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("dropped 1 oldest report(s), seq 1..1" in m for m in messages)
    assert any("seq 2..2" in m for m in messages)


def test_one_big_append_drops_several_and_the_newest_is_always_kept(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = Spool(tmp_path, max_bytes=stored(1, 2, 3) + 50)
    for seq in range(1, 4):
        spool.append(seq, body(seq))
    with caplog.at_level(logging.WARNING, logger="agent.spool"):
        spool.append(4, body(4, size=1000, noise=True))  # hex noise: ~500 bytes compressed
    assert spool.seqs() == [4]
    assert spool.stats().dropped_total == 3
    assert "dropped 3 oldest report(s), seq 1..3" in caplog.text


def test_reject_moves_aside_and_keeps_only_the_last_n(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000, keep_rejected=2)
    for seq in range(1, 5):
        spool.append(seq, body(seq))
    for seq in (1, 2, 3):
        spool.reject(seq)
    assert spool.seqs() == [4]
    assert sorted(p.name for p in (tmp_path / "rejected").iterdir()) == [spool_name(2), spool_name(3)]
    assert spool.stats().rejected_total == 3
    assert spool.max_seq() == 4
    spool.remove(4)
    assert spool.max_seq() == 4  # the delivered report counts for seq recovery
    (tmp_path / DELIVERED_FILE).unlink()
    assert Spool(tmp_path, max_bytes=100_000).max_seq() == 3  # rejected reports count too


def test_delivered_reports_keep_the_highest_seq_on_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000)
    for seq in (5, 6, 7):
        spool.append(seq, body(seq))
    spool.remove(5)
    spool.remove(7)  # delivered out of order: the newest delivered one is kept
    spool.remove(6)
    assert spool.seqs() == [] and spool.stats().reports == 0 and spool.stats().bytes == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [DELIVERED_FILE]
    assert Spool(tmp_path, max_bytes=100_000).max_seq() == 7  # after a restart (or kill -9)
    (tmp_path / DELIVERED_FILE).write_bytes(b"torn")
    assert Spool(tmp_path, max_bytes=100_000).max_seq() is None  # unreadable: ignored, not a crash


def test_concurrent_appends_and_removes_keep_the_books_straight(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**9)

    def writer(start: int) -> None:
        for seq in range(start, start + 50):
            spool.append(seq, body(seq))

    threads = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(1, 4)]
    for t in threads:
        t.start()
    removed = 0
    while any(t.is_alive() for t in threads) or spool.oldest() is not None:
        item = spool.oldest()
        if item is not None:
            spool.remove(item[0])
            removed += 1
    for t in threads:
        t.join()
    assert removed == 150
    assert spool.stats().reports == 0 and spool.stats().bytes == 0


def test_unusable_directory_is_a_spool_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="not usable"):
        Spool(blocker / "spool", max_bytes=1000)


def test_reports_are_stored_compressed_and_sent_as_they_were(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000)
    report = json.dumps({"seq": 1, "checks": [{"name": f"disk-{i}", "status": 0, "summary": "OK: 12% used"}
                                               for i in range(100)]}).encode()
    spool.append(1, report)
    spool.append(2, body(2))
    on_disk = (tmp_path / spool_name(1)).read_bytes()
    assert len(on_disk) * 5 < len(report)  # a report's JSON repeats its keys: it compresses well
    assert spool.stats().bytes == len(on_disk) + len(pack(body(2)))
    assert Spool(tmp_path, max_bytes=100_000).oldest() == (1, report)  # read back after a restart


def test_uncompressed_reports_of_an_earlier_version_are_still_sent_after_an_upgrade(tmp_path: Path) -> None:
    # an agent before compression left these (plain JSON files) and a delivered report
    (tmp_path / spool_name(7)).write_bytes(b'{"seq":7,"older":"agent"}')
    (tmp_path / spool_name(8)).write_bytes(b'{"seq":8,"older":"agent"}')
    (tmp_path / DELIVERED_FILE).write_bytes(b'{"seq":6,"older":"agent"}')
    spool = Spool(tmp_path, max_bytes=100_000)
    assert spool.max_seq() == 8
    spool.append(9, body(9))  # the upgraded agent's first report, compressed
    sent = []
    while (item := spool.oldest()) is not None:
        sent.append(item)
        spool.remove(item[0])
    assert sent == [(7, b'{"seq":7,"older":"agent"}'), (8, b'{"seq":8,"older":"agent"}'), (9, body(9))]
    assert Spool(tmp_path, max_bytes=100_000).max_seq() == 9  # the compressed delivered file is read too
