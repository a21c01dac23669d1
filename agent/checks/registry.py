"""The check types: one line each. From this list come the config's check parsing (the spec type by
the ``type`` key), the type names that errors list, and the check objects.

Adding a check type: a module in agent/checks/ with its spec (a :class:`~agent.checks.base.CheckSpec`
subclass whose ``type`` default is the type's name), its check class (taking the spec) and a
``build(spec, resources)`` function; one line below; an example spec in
tests/agent/test_check_contract.py (the contract test fails for a type without one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from agent.checks import command, disk, file_age, http, log, mysql, process, tcp
from agent.checks.base import Check, CheckSpec, CheckType, Resources
from agent.checks.bitrix import (
    agents,
    backup,
    licence,
    mail_queue,
    php_fatals,
    push_server,
    site_checker,
    updates,
)
from agent.checks.onec import cluster, dbms, infobase, publication, workers
from agent.errors import ConfigError
from agent.validation import convert

CHECK_TYPES: tuple[CheckType[Any], ...] = (
    CheckType(http.HttpSpec, http.build),
    CheckType(process.ProcessSpec, process.build),
    CheckType(tcp.TcpSpec, tcp.build),
    CheckType(disk.DiskSpec, disk.build),
    CheckType(file_age.FileAgeSpec, file_age.build),
    CheckType(command.CommandSpec, command.build),
    CheckType(log.LogSpec, log.build, log.METRICS),
    CheckType(mysql.MysqlSpec, mysql.build, mysql.METRICS),
    CheckType(licence.LicenceSpec, licence.build, licence.METRICS),
    CheckType(agents.AgentsSpec, agents.build, agents.METRICS),
    CheckType(mail_queue.MailQueueSpec, mail_queue.build, mail_queue.METRICS),
    CheckType(backup.BackupSpec, backup.build, backup.METRICS),
    CheckType(updates.UpdatesSpec, updates.build, updates.METRICS),
    CheckType(site_checker.SiteCheckerSpec, site_checker.build, site_checker.METRICS),
    CheckType(php_fatals.PhpFatalsSpec, php_fatals.build, php_fatals.METRICS),
    CheckType(push_server.PushServerSpec, push_server.build, push_server.METRICS),
    CheckType(cluster.OnecClusterSpec, cluster.build, cluster.METRICS),
    CheckType(infobase.OnecInfobaseSpec, infobase.build, infobase.METRICS),
    CheckType(workers.OnecWorkersSpec, workers.build, workers.METRICS),
    CheckType(dbms.OnecDbmsSpec, dbms.build, dbms.METRICS),
    CheckType(publication.OnecPublicationSpec, publication.build, publication.METRICS),
)

_BY_NAME: dict[str, CheckType[Any]] = {t.name: t for t in CHECK_TYPES}


def type_names() -> tuple[str, ...]:
    """The names of the check types, in registry order."""
    return tuple(_BY_NAME)


def sample_help() -> dict[str, str]:
    """HELP text of every series a check type's results may carry (for /metrics)."""
    return {name: text for t in CHECK_TYPES for name, text in t.metrics.items()}


def check_type(name: str) -> CheckType[Any]:
    """The registered type called ``name`` (KeyError if there is none)."""
    return _BY_NAME[name]


def parse_check(raw: object, *, source: str, path: str, default_interval: float) -> CheckSpec:
    """One check's raw mapping → its type's spec; ``path`` (``checks[2]``) prefixes every error.

    A key given as null counts as not given; ``interval`` not given is ``default_interval`` (the
    config's top-level one)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(source, path, "a mapping with at least name and type", raw)
    names = "one of " + ", ".join(_BY_NAME)
    if raw.get("type") is None:
        raise ConfigError(source, f"{path}.type", f"{names} (required)")
    kind = raw["type"]
    if not isinstance(kind, str) or kind not in _BY_NAME:
        raise ConfigError(source, f"{path}.type", names, kind)
    data = {key: value for key, value in raw.items() if value is not None}
    data.setdefault("interval", default_interval)
    spec: type[CheckSpec] = _BY_NAME[kind].spec
    return convert(spec, data, source=source, path=path)


def build_check(spec: CheckSpec, resources: Optional[Resources] = None) -> Check:
    """The check object for a validated spec (its type's build function)."""
    check_type = _BY_NAME[spec.type]
    if not isinstance(spec, check_type.spec):
        raise TypeError(f"a {spec.type} check needs a {check_type.spec.__name__}, not {type(spec).__name__}")
    return check_type.build(spec, resources or Resources())
