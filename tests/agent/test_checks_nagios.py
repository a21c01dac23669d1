"""Plugin output parsing per the Monitoring Plugins Development Guidelines."""

from __future__ import annotations

from agent.checks.nagios import parse_output, parse_perfdata
from agent.report import PerfValue


def test_full_item_with_all_fields() -> None:
    assert parse_perfdata("time=0.012s;1;2;0;10") == (PerfValue("time", 0.012, "s", 1.0, 2.0, 0.0, 10.0),)


def test_quoted_labels_with_spaces_and_quotes() -> None:
    items = parse_perfdata("'/ used'=12MB;;;0;100 'it''s'=3 plain=4%")
    assert [i.label for i in items] == ["/ used", "it's", "plain"]
    assert items[0].unit == "MB" and items[0].max == 100.0 and items[0].warn is None
    assert items[2].unit == "%"


def test_trailing_semicolons_empty_fields_and_counters() -> None:
    items = parse_perfdata("procs=0;;;0; bytes=1024c")
    assert items == (PerfValue("procs", 0.0, "", None, None, 0.0, None), PerfValue("bytes", 1024.0, "c"))


def test_ranges_keep_one_number() -> None:
    (item,) = parse_perfdata("x=5;~:10;@20:30;;")
    assert (item.warn, item.crit) == (10.0, 30.0)
    (item,) = parse_perfdata("x=5;10:;5")
    assert (item.warn, item.crit) == (10.0, 5.0)


def test_undetermined_and_garbage_items_are_skipped_not_fatal() -> None:
    items = parse_perfdata("a=U;1;2 b=oops c= 'unterminated d=1 e=-1.5e3ms")
    assert [i.label for i in items] == ["d", "e"]
    assert items[1].value == -1500.0 and items[1].unit == "ms"


def test_negative_and_exponent_values() -> None:
    (item,) = parse_perfdata("temp=-3.5;;;-40;85")
    assert item.value == -3.5 and item.min == -40.0


def test_summary_long_output_and_multiline_perfdata() -> None:
    text = (
        "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
        "/ 15272 MB (77%);\n"
        "/boot 68 MB (69%);\n"
        "/home 69357 MB (27%);\n"
        "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
        "/home=69357MB;253404;253409;0;253414\n"
        "/var/log=818MB;970;975;0;980\n"
    )
    out = parse_output(text)
    assert out.summary == "DISK OK - free space: / 3326 MB (56%);"
    assert out.details.splitlines() == [
        "/ 15272 MB (77%);",
        "/boot 68 MB (69%);",
        "/home 69357 MB (27%);",
        "/var/log 819 MB (84%);",
    ]
    assert [p.label for p in out.perfdata] == ["/", "/boot", "/home", "/var/log"]
    assert out.perfdata[3].crit == 975.0


def test_output_without_perfdata_or_output() -> None:
    assert parse_output("OK: fine\n").perfdata == ()
    assert parse_output("OK: fine\n").summary == "OK: fine"
    empty = parse_output("")
    assert (empty.summary, empty.details, empty.perfdata) == ("", "", ())


def test_real_check_load_output() -> None:
    text = (
        "LOAD OK - total load average: 0.26, 0.20, 0.12|load1=0.260;4.000;8.000;0; "
        "load5=0.200;3.000;6.000;0; load15=0.120;2.000;4.000;0; \n"
    )
    out = parse_output(text)
    assert out.summary == "LOAD OK - total load average: 0.26, 0.20, 0.12"
    assert [(p.label, p.value, p.warn, p.crit) for p in out.perfdata] == [
        ("load1", 0.26, 4.0, 8.0),
        ("load5", 0.2, 3.0, 6.0),
        ("load15", 0.12, 2.0, 4.0),
    ]


def test_numbers_beyond_float_range_are_skipped_not_sent_as_infinity() -> None:
    # 1e999 parses to inf, which JSON cannot carry: the whole report would be refused (422).
    items = parse_perfdata("huge=1e999 thr=5;1e999;-1e999;0;1e999 ok=3")
    assert [(p.label, p.value, p.warn, p.crit, p.max) for p in items] == [
        ("thr", 5.0, None, None, None),
        ("ok", 3.0, None, None, None),
    ]
