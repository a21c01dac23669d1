"""``boxkeeper-agent discover``: inspect a box, read-only, and write an agent config for it.

::

    survey.discover(root, ProcessSource, host) -> model.Discovery     what is there (pure reading)
    render.render(discovery, paths_under_root=False) -> str           the config as YAML text

Modules, one idea each: ``boxroot`` (reading files under a root without leaving it), ``model``
(the frozen values), ``nginx``, ``apache``, ``php`` (web server and PHP configs), ``services``
(the service catalogue and processes), ``bitrix`` (bitrix-env, sites, cron), ``system`` (host
name, mounts, MySQL, backups, plugins), ``onec`` (a 1C server), ``survey`` (joins them),
``render`` (the text). Nothing here runs a command or writes to the box.
"""

from agent.discover.model import Discovery
from agent.discover.render import render
from agent.discover.services import ProcessSource
from agent.discover.survey import discover

__all__ = ["Discovery", "ProcessSource", "discover", "render"]
