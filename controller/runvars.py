"""A run's variables from the inventory: what the controller config says about the host (and site).

Precedence, lowest first (every way a run starts — ``update run``, ``POST /api/v1/runs``, an
update window — goes through :func:`run_values`)::

    the playbook's defaults
    < the host's portal_url                     clients[].hosts[].portal_url
    < the host's vars                           clients[].hosts[].vars
    < the site's docroot and portal_url         clients[].hosts[].sites[].docroot / .portal_url  (--site)
    < the site's vars                           clients[].hosts[].sites[].vars                    (--site)
    < --var (the API's vars, a window's vars)

A name in ``vars`` that the playbook being run does not declare is left out for that playbook, as
long as some playbook of the playbooks directory declares it (one inventory serves every
playbook). A name no playbook declares is a typo: the run is refused with a ConfigError naming the
config file and the key. A value of the wrong type for the playbook's variable is refused the same
way. A variable the playbook requires (no default) that nothing gives is refused before anything
runs, with where to set it — so ``portal_url`` is never guessed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from controller.config import ControllerConfig, HostConfig
from controller.errors import ConfigError
from controller.workflows.loader import convert
from controller.workflows.playbook import Playbook
from controller.workflows.template import Value


@dataclass(frozen=True)
class Layer:
    """Values from one place of the config (``path``: its key path, a value's key is appended)."""

    path: str
    values: Mapping[str, Value]
    free: bool  # a ``vars:`` mapping (any name; a name no playbook declares is a typo)


@dataclass(frozen=True)
class HostPlace:
    """The host in the config, with its key path (``clients[0].hosts[1]``)."""

    path: str
    host: HostConfig


def place_of(cfg: ControllerConfig, name: str) -> HostPlace:
    for ci, client in enumerate(cfg.clients):
        for hi, host in enumerate(client.hosts):
            if host.name == name:
                return HostPlace(f"clients[{ci}].hosts[{hi}]", host)
    raise ConfigError(cfg.source, f"clients[].hosts[name={name}]", "the host in the controller config")


def layers(cfg: ControllerConfig, host: str, site: str | None = None) -> list[Layer]:
    """The inventory's values for a run on ``host`` (and ``site``), lowest precedence first."""
    place = place_of(cfg, host)
    h = place.host
    found: list[Layer] = []
    if h.portal_url:
        found.append(Layer(place.path, {"portal_url": h.portal_url}, free=False))
    found.append(Layer(f"{place.path}.vars", h.vars, free=True))
    if site is not None:
        picked = h.site(site)
        if picked is None:
            names = ", ".join(s.name for s in h.sites) or "none are configured"
            raise ConfigError(cfg.source, f"{place.path}.sites",
                              f"a site named {site!r} (the host's sites: {names})")
        i, s = picked
        fields: dict[str, Value] = {"docroot": s.docroot}
        if s.portal_url:
            fields["portal_url"] = s.portal_url
        found.append(Layer(f"{place.path}.sites[{i}]", fields, free=False))
        found.append(Layer(f"{place.path}.sites[{i}].vars", s.vars, free=True))
    return found


def undeclared(cfg: ControllerConfig, declared: Collection[str]) -> list[ConfigError]:
    """Every ``vars`` name of every host and site that no playbook declares (``boxkeeper serve``
    warns of them at start; a run on that host is refused)."""
    found: list[ConfigError] = []
    for ci, client in enumerate(cfg.clients):
        for hi, host in enumerate(client.hosts):
            at = f"clients[{ci}].hosts[{hi}]"
            places = [(f"{at}.vars", host.vars)]
            places += [(f"{at}.sites[{si}].vars", s.vars) for si, s in enumerate(host.sites)]
            found += [ConfigError(cfg.source, f"{path}.{name}", "a variable that a playbook declares", name)
                      for path, values in places for name in values if name not in declared]
    return found


def run_values(cfg: ControllerConfig, host: str, playbook: Playbook, given: Mapping[str, Value], *,
               site: str | None = None, declared_elsewhere: Collection[str] = ()) -> dict[str, Value]:
    """The values a run of ``playbook`` on ``host`` starts with (before the playbook's defaults):
    the inventory's, type-checked, overridden by ``given`` (``--var``, checked by the loader)."""
    values: dict[str, Value] = {}
    for layer in layers(cfg, host, site):
        for name, raw in layer.values.items():
            key = f"{layer.path}.{name}"
            var = playbook.variable(name)
            if var is not None:
                values[name] = convert(var, raw, cfg.source, key)
            elif layer.free and name not in declared_elsewhere:
                names = ", ".join(v.name for v in playbook.variables) or "none"
                raise ConfigError(cfg.source, key,
                                  f"a variable that a playbook declares ({playbook.name} has: {names})", name)
    values.update(given)
    _require(cfg, host, site, playbook, values)
    return values


def _require(cfg: ControllerConfig, host: str, site: str | None, playbook: Playbook,
             values: Mapping[str, Value]) -> None:
    """Refuse the run when a variable without a default has no value, saying where to set it."""
    place = place_of(cfg, host)
    for var in playbook.variables:
        if var.default is not None or var.name in values:
            continue
        what = f" ({var.description})" if var.description else ""
        where = f"{place.path}.vars.{var.name}"
        if var.name == "portal_url":
            where = f"{place.path}.portal_url"
            hint = (f"the portal's URL for {playbook.name}: set portal_url of host {host!r} "
                    f"(or of its site, or vars.portal_url) in {cfg.source}, or give --var portal_url=URL; "
                    "boxkeeper does not guess it")
        else:
            hint = (f"a value for the variable {var.name} of {playbook.name}{what}: set it under vars of "
                    f"host {host!r}" + (f" or of its site {site!r}" if site else "")
                    + f" in {cfg.source}, or give --var {var.name}=VALUE")
        raise ConfigError(cfg.source, where, hint)
