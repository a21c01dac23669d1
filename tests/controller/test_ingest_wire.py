"""The Structs ingest decodes into (controller.report_wire) are the agent's report dataclasses."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from agent import report as agent_report
from agent.report import to_json
from controller import report_wire
from controller.errors import InvalidReportError
from controller.ingest import parse_report
from tests.controller.reports import make_report


def _shape(t: mi.Type) -> Any:
    """A comparable description of a msgspec type: dataclasses and Structs alike by their fields."""
    if isinstance(t, (mi.DataclassType, mi.StructType)):
        return ("object", t.cls.__name__,
                tuple((f.name, f.required, repr(f.default), _shape(f.type)) for f in t.fields))
    if isinstance(t, (mi.VarTupleType, mi.ListType)):
        return ("array", _shape(t.item_type))
    if isinstance(t, mi.DictType):
        return ("dict", _shape(t.key_type), _shape(t.value_type))
    if isinstance(t, mi.UnionType):
        return ("union", tuple(_shape(x) for x in t.types))
    if isinstance(t, mi.LiteralType):
        return ("literal", t.values)
    if isinstance(t, mi.EnumType):
        return ("enum", t.cls)
    return type(t).__name__


def test_every_field_type_and_default_is_the_dataclasses() -> None:
    assert _shape(mi.type_info(report_wire.Report)) == _shape(mi.type_info(agent_report.Report))


def test_a_report_decodes_to_the_same_values() -> None:
    report = make_report("web1", 7, checks=4, samples=30, statuses={"check_1": 2})
    parsed = parse_report(to_json(report))
    assert msgspec.to_builtins(parsed) == msgspec.to_builtins(report)
    assert parsed.checks[1].status is agent_report.Status.CRITICAL


@pytest.mark.parametrize("change", [
    lambda d: d["checks"][0].update(status="2"),
    lambda d: d["checks"][0].update(hard=1),
    lambda d: d["checks"][0].pop("name"),
    lambda d: d["samples"][0].update(kind="histogram"),
    lambda d: d.update(schema="boxkeeper.report/2"),
    lambda d: d["facts"].update(boot_time="yesterday"),
])
def test_a_bad_report_is_refused_naming_the_same_field(change: Any) -> None:
    data = json.loads(to_json(make_report("web1", 1)))
    change(data)
    body = json.dumps(data).encode()
    with pytest.raises(msgspec.ValidationError) as by_dataclass:
        msgspec.json.decode(body, type=agent_report.Report)
    with pytest.raises(InvalidReportError) as ours:
        parse_report(body)
    assert str(by_dataclass.value).split(" - at ")[1].strip("`$.") in ours.value.detail
    assert str(by_dataclass.value).split(" - at ")[0] in ours.value.detail
