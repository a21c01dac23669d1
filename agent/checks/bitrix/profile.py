"""The ``bitrix:`` block of the agent config: one item per site, expanded at load time into one
check per signal::

    bitrix:
      - docroot: /home/bitrix/www          # one item per site
        site: default                      # optional (see below)
        interval: 1m                       # optional: every signal's interval (default: each its own)
        signals:                           # optional: every signal with its defaults when absent
          licence: {warning_days: 30, critical_days: 7}
          agents: {max_lag: 15m}
          php_fatals: {log: /var/log/httpd/error_log}
          push_server: false               # false turns a signal off

Signals (:data:`SIGNALS`): each is one check type of :mod:`agent.checks.bitrix` (plus ``mysql``:
the ``mysql`` check with ``settings_from`` the docroot); a signal's value is a mapping of that
type's options (its ``interval``, ``timeout``, ``retries``, ``retry_interval`` too), ``true`` or
null for the defaults, ``false`` for off. ``site`` defaults to ``default`` for a docroot
``…/bitrix/www`` (bitrix-env's ``/home/bitrix/www``) and to ``<name>`` for
``…/ext_www/<name>``; any other docroot needs it. A site's checks are named ``bitrix-<signal>``
(site ``default``) or ``bitrix-<signal>-<site>``; their series carry ``site="<site>"``.

Errors name the key in the block: ``bitrix[0].signals.agents.max_lag: expected a duration such
as 10s, 5m or 1h, got 'soon'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, Optional

import msgspec

from agent.checks.base import CheckSpec
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
from agent.checks.bitrix.portal import DEFAULT_SITE, BitrixSpec
from agent.checks.mysql import MysqlSpec
from agent.configtypes import NAME_RE, Duration, Name, Text
from agent.errors import ConfigError
from agent.validation import convert, join

#: signal name in the block → its check type's spec, in the order the checks are made.
SIGNALS: dict[str, type[CheckSpec]] = {
    "mysql": MysqlSpec,
    "licence": licence.LicenceSpec,
    "agents": agents.AgentsSpec,
    "mail_queue": mail_queue.MailQueueSpec,
    "backup": backup.BackupSpec,
    "updates": updates.UpdatesSpec,
    "site_checker": site_checker.SiteCheckerSpec,
    "php_fatals": php_fatals.PhpFatalsSpec,
    "push_server": push_server.PushServerSpec,
}
MYSQL_INTERVAL = Duration(60.0)
#: keys a signal's options may not hold: the item sets them (or the expansion does).
_FROM_THE_ITEM = ("name", "type", "docroot", "site", "settings_from")


class BitrixSite(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    docroot: Text
    site: Optional[Name] = None
    interval: Optional[Duration] = None
    signals: Optional[dict[str, Any]] = None


def default_site(docroot: str) -> Optional[str]:
    """``default`` for ``…/bitrix/www``, ``<name>`` for ``…/ext_www/<name>``, else None."""
    parts = PurePosixPath(docroot.rstrip("/") or "/").parts
    if len(parts) >= 2 and parts[-2] == "ext_www" and NAME_RE.fullmatch(parts[-1]):
        return parts[-1]
    if len(parts) >= 2 and parts[-2:] == ("bitrix", "www"):
        return str(DEFAULT_SITE)
    return None


def check_name(signal: str, site: str) -> str:
    return f"bitrix-{signal}" if site == DEFAULT_SITE else f"bitrix-{signal}-{site}"


def expand(raw: object, *, source: str) -> list[CheckSpec]:
    """The checks of the ``bitrix:`` block ``raw`` (a list of site items)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(source, "bitrix", "a list of sites (each with a docroot)", raw)
    checks: list[CheckSpec] = []
    sites: dict[str, int] = {}
    for i, item in enumerate(raw):
        path = f"bitrix[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(source, path, "a mapping with at least docroot", item)
        given = {key: value for key, value in item.items() if value is not None}
        site_item = convert(BitrixSite, given, source=source, path=path)
        site = site_item.site or default_site(site_item.docroot)
        if site is None:
            raise ConfigError(source, join(path, "site"),
                              "a site name (required when the docroot is not …/bitrix/www or "
                              "…/ext_www/<name>)")
        if len(check_name("site_checker", site)) > 100:
            raise ConfigError(source, join(path, "site"), "a site name of at most 80 characters", site)
        if site in sites:
            raise ConfigError(source, join(path, "site"),
                              f"a site name no other item has (bitrix[{sites[site]}] is {site!r} too)", site)
        sites[site] = i
        checks += _site_checks(site_item, site, path, source)
    return checks


def _site_checks(item: BitrixSite, site: str, path: str, source: str) -> list[CheckSpec]:
    signals = item.signals or {}
    unknown = [name for name in signals if name not in SIGNALS]
    if unknown:
        raise ConfigError(source, join(join(path, "signals"), str(unknown[0])),
                          "a signal: one of " + ", ".join(SIGNALS))
    checks: list[CheckSpec] = []
    for signal, spec_type in SIGNALS.items():
        value = signals.get(signal, True)
        where = join(join(path, "signals"), signal)
        if value is False:
            continue
        if value is True or value is None:
            options: dict[str, Any] = {}
        elif isinstance(value, Mapping):
            options = {key: v for key, v in value.items() if v is not None}
        else:
            raise ConfigError(source, where, "a mapping of the signal's options, true or false", value)
        for key in _FROM_THE_ITEM:
            if key in options:
                raise ConfigError(source, join(where, key),
                                  "no such key in a signal (docroot and site are set on the site item)")
        if "interval" not in options:
            own = MYSQL_INTERVAL if spec_type is MysqlSpec else spec_type.PROFILE_INTERVAL  # type: ignore[attr-defined]
            options["interval"] = item.interval if item.interval is not None else own
        data: dict[str, Any] = {**options, "name": check_name(signal, site)}
        if spec_type is MysqlSpec:
            data.update(type="mysql", settings_from=item.docroot)
        else:
            assert issubclass(spec_type, BitrixSpec)
            data.update(type=_type_name(spec_type), docroot=item.docroot, site=site)
        checks.append(convert(spec_type, data, source=source, path=where))
    return checks


def _type_name(spec_type: type[CheckSpec]) -> str:
    for field in msgspec.structs.fields(spec_type):
        if field.name == "type" and isinstance(field.default, str):
            return field.default
    raise TypeError(f"{spec_type.__name__} has no default for type")
