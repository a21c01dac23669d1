"""Reports are built from the latest states, and their seq only grows, across restarts too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agent.report import CheckReport, Facts, PerfValue, Report, Sample, Status, to_json
from agent.reporter import SEQ_FILE, Reporter, SeqCounter
from agent.spool import Spool, unpack


def check(name: str = "portal", summary: str = "HTTP 200") -> CheckReport:
    return CheckReport(
        name, "http", Status.OK, True, False, summary, 0.012, perfdata=(PerfValue("time", 0.012, "s"),)
    )


def make(tmp_path: Path, checks: list[CheckReport] | None = None, floor: int = 0) -> Reporter:
    return Reporter(
        host="portal-01",
        agent_version="0.1.0",
        push_interval=15.0,
        seq=SeqCounter(tmp_path / SEQ_FILE, floor=floor),
        checks=lambda: checks if checks is not None else [check()],
        samples=lambda: [Sample("boxkeeper_load1", 0.3)],
        facts=lambda: Facts("portal-01.acme.local", "Rocky Linux 9.4", "5.14.0", 1.0),
        wall=lambda: 1_764_300_000.5,
    )


def test_report_carries_states_samples_and_facts(tmp_path: Path) -> None:
    report = make(tmp_path).build()
    assert isinstance(report, Report)
    data = json.loads(to_json(report))
    assert data["schema"] == "boxkeeper.report/1"
    assert (data["host"], data["seq"], data["sent_at"], data["push_interval_seconds"]) == (
        "portal-01",
        1,
        1_764_300_000.5,
        15.0,
    )
    assert data["checks"][0]["name"] == "portal" and data["checks"][0]["status"] == 0
    assert data["samples"] == [{"name": "boxkeeper_load1", "value": 0.3, "kind": "gauge", "labels": {}}]
    assert data["facts"]["os"] == "Rocky Linux 9.4"


def test_seq_grows_and_is_persisted_once_the_report_is_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    reporter = make(tmp_path)
    assert [reporter.spool_next(spool).seq for _ in range(3)] == [1, 2, 3]
    assert spool.seqs() == [1, 2, 3]
    assert json.loads(unpack((tmp_path / "00000000000000000002.json").read_bytes()))["seq"] == 2
    assert not (tmp_path / SEQ_FILE).exists()  # the spooled report is the seq's record: no second write
    for seq in (1, 2, 3):
        spool.remove(seq)  # delivered
    assert spool.seqs() == []
    restarted = Spool(tmp_path, max_bytes=10**6)
    assert restarted.seqs() == [] and restarted.max_seq() == 3  # the delivered report keeps it
    assert make(tmp_path, floor=restarted.max_seq() or 0).spool_next(restarted).seq == 4  # continues


def test_a_seq_file_of_an_older_agent_is_still_honoured(tmp_path: Path) -> None:
    (tmp_path / SEQ_FILE).write_text("41\n")  # written by an earlier agent version, spool empty
    spool = Spool(tmp_path, max_bytes=10**6)
    assert make(tmp_path, floor=spool.max_seq() or 0).spool_next(spool).seq == 42


def test_a_report_that_was_never_spooled_does_not_use_up_a_seq(tmp_path: Path) -> None:
    reporter = make(tmp_path)
    assert reporter.build().seq == 1
    assert reporter.build().seq == 1  # built, but not spooled: nobody has seen seq 1


def test_crash_after_spooling_before_the_seq_file_continues_after_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    make(tmp_path).spool_next(spool)
    spool.append(2, b'{"seq":2}')  # spooled, then kill -9 before the seq file said 2
    restarted = Spool(tmp_path, max_bytes=10**6)
    counter = SeqCounter(tmp_path / SEQ_FILE, floor=restarted.max_seq() or 0)
    assert counter.reserve() == 3


def test_seq_survives_kill_9(tmp_path: Path) -> None:
    # five reports spooled and delivered (the spool then holds only the "delivered" file), kill -9
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from agent.reporter import SEQ_FILE, SeqCounter\n"
        "from agent.spool import Spool\n"
        "d = Path(sys.argv[1])\n"
        "spool = Spool(d, max_bytes=10**6)\n"
        "c = SeqCounter(d / SEQ_FILE, floor=spool.max_seq() or 0)\n"
        "for _ in range(5):\n"
        "    seq = c.reserve()\n"
        "    spool.append(seq, b'{\"seq\":%d}' % seq)\n"
        "    c.advance(seq)\n"
        "    spool.remove(seq)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False, timeout=60)
    assert result.returncode == -9
    spool = Spool(tmp_path, max_bytes=10**6)
    assert spool.seqs() == []
    assert SeqCounter(tmp_path / SEQ_FILE, floor=spool.max_seq() or 0).reserve() == 6


def test_lost_seq_file_never_reuses_a_spooled_seq(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    spool.append(41, b"{}")
    (tmp_path / SEQ_FILE).write_text("7\n")  # stale (restored from an old backup, say)
    assert SeqCounter(tmp_path / SEQ_FILE, floor=spool.max_seq() or 0).reserve() == 42
    (tmp_path / SEQ_FILE).write_text("garbage")
    assert SeqCounter(tmp_path / SEQ_FILE, floor=spool.max_seq() or 0).reserve() == 42


def test_long_summaries_and_too_many_checks_are_clipped_to_the_schema_limits(tmp_path: Path) -> None:
    checks = [check(f"c{i}", "x" * 10_000) for i in range(600)]
    report = make(tmp_path, checks).build()
    assert len(report.checks) == 500
    assert len(report.checks[0].summary) == 4096 and report.checks[0].summary.endswith("…")


def test_fast_to_dict_matches_dataclasses_asdict(tmp_path: Path) -> None:
    """report.to_dict is hand-written for speed: it must stay equal to asdict (new fields too)."""
    from dataclasses import asdict

    from agent.report import to_dict

    soft = CheckReport(
        "b",
        "process",
        Status.CRITICAL,
        False,
        True,
        "0 procs",
        0.1,
        attempt=2,
        max_attempts=3,
        last_change=5.0,
    )
    report = make(tmp_path, [check("a"), soft]).build()
    expected = asdict(report)
    for item in expected["checks"]:
        item["status"] = int(item["status"])
    assert to_dict(report) == expected
    assert list(to_dict(report)) == list(expected)
    assert json.loads(to_json(report)) == json.loads(json.dumps(expected))


def test_a_reinstalled_agent_numbers_after_everything_its_predecessor_sent(tmp_path: Path) -> None:
    # A fresh agent starts numbering at the wall clock in milliseconds (agent.reporter.unix_millis):
    # the predecessor sent far fewer reports than milliseconds passed (one per push interval), so
    # the reinstalled agent's first seq is above its last. The clock is injected: the predecessor
    # starts at t0 and sends 50 reports, the reinstall comes one minute later.
    t0_ms = 1_796_000_000_000
    old = tmp_path / "old"
    old.mkdir()
    spool = Spool(old, max_bytes=10**6)
    first = SeqCounter(old / SEQ_FILE, floor=spool.max_seq() or 0, initial=lambda: t0_ms)
    for _ in range(50):  # spooled and delivered, as Reporter.spool_next and the Pusher do
        seq = first.reserve()
        spool.append(seq, b'{"seq":%d}' % seq)
        first.advance(seq)
        spool.remove(seq)
    previous_highest = first.last
    assert previous_highest == t0_ms + 50
    new = tmp_path / "new"  # /var/lib/boxkeeper wiped: no seq file, empty spool
    new.mkdir()
    fresh = SeqCounter(new / SEQ_FILE, floor=Spool(new, max_bytes=10**6).max_seq() or 0,
                       initial=lambda: t0_ms + 60_000)
    assert fresh.reserve() > previous_highest
    restarted = SeqCounter(old / SEQ_FILE, floor=Spool(old, max_bytes=10**6).max_seq() or 0,
                           initial=lambda: t0_ms + 60_000)
    assert restarted.reserve() == previous_highest + 1  # a restart continues, it does not jump
