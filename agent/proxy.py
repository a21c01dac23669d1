"""Which HTTP proxy the push goes through: the config's ``controller.proxy``, else the environment.

- ``controller.proxy: http://[user:password@]host:port`` wins; ``proxy: none`` means no proxy
  whatever the environment says.
- Without it, as curl and Python's ``urllib`` read them: ``https_proxy`` / ``HTTPS_PROXY`` for an
  ``https://`` controller, ``http_proxy`` / ``HTTP_PROXY`` for an ``http://`` one (lower case
  first), unless ``no_proxy`` / ``NO_PROXY`` names the controller's host: a comma-separated list of
  host names (``example.com`` also covers ``ctl.example.com``; a leading dot is ignored), IP
  addresses, or ``*`` (no proxy at all). Address ranges (CIDR) in NO_PROXY are not understood.

An ``https://`` controller is reached through a ``CONNECT`` tunnel (:func:`agent.httpwire.connect`),
so the proxy sees only the host and port; TLS (and the pinned ``ca_file``) is end to end. An
``http://`` controller gets its requests in absolute form (``POST http://host/path``). Basic
credentials in the proxy URL go in ``Proxy-Authorization``; log lines show the proxy without them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Optional
from urllib.parse import unquote, urlsplit

from agent.configtypes import ProxyUrl
from agent.errors import ConfigError
from agent.httpwire import Proxy
from agent.validation import NOT_SHOWN

__all__ = ["Proxy", "bypassed", "choose", "parse_proxy"]


def parse_proxy(url: str) -> Proxy:
    """A validated proxy URL (:class:`agent.configtypes.ProxyUrl`) as a :class:`Proxy`."""
    parts = urlsplit(url)
    auth = None
    if parts.username is not None:
        plain = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(plain.encode("utf-8")).decode("ascii")
    return Proxy(parts.hostname or "", int(parts.port or 0), auth)


def bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``host`` is listed in a NO_PROXY value."""
    host = host.lower().strip("[]")
    for entry in no_proxy.split(","):
        entry = entry.strip().lower().lstrip(".").strip("[]")
        if not entry:
            continue
        if entry == "*" or host == entry or host.endswith("." + entry):
            return True
    return False


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name.lower()) or environ.get(name.upper()) or ""


def choose(controller_url: str, setting: Optional[str], environ: Mapping[str, str]) -> Optional[Proxy]:
    """The proxy for ``controller_url`` (None: connect directly). ConfigError for an environment
    variable that is not a proxy URL (its value not shown: it may hold a password)."""
    if setting is not None:
        return None if setting == "none" else parse_proxy(setting)
    parts = urlsplit(controller_url)
    name = "https_proxy" if parts.scheme == "https" else "http_proxy"
    raw = _env(environ, name)
    if not raw or bypassed(parts.hostname or "", _env(environ, "no_proxy")):
        return None
    try:
        value = ProxyUrl.parse(raw)
    except ValueError:
        raise ConfigError("(environment)", f"{name.upper()} / {name}", ProxyUrl.expected, NOT_SHOWN) from None
    return None if value == "none" else parse_proxy(value)
