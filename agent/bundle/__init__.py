"""The agent's offline bundle: ``python -m agent.bundle`` (docs/agent.md, "Install").

Built on a machine that reaches PyPI, installed on boxes that reach nothing:

- :mod:`agent.bundle.wheels` — the agent's own wheel (the ``agent`` package alone, Python >= 3.9,
  from a generated ``pyproject.toml``: the repository's builds agent + controller for 3.11) and the
  wheels of its pinned dependencies (``requirements.txt``) for CPython 3.9 to 3.13 on manylinux
  x86_64, downloaded once into a cache;
- :mod:`agent.bundle.build` — ``boxkeeper-agent-VERSION-linux-x86_64.tar.gz``: those wheels, pip's
  wheel, ``install.sh`` (the installer and service control run on the box), the systemd unit and an
  init script for boxes without systemd, ``SHA256SUMS``;
- :mod:`agent.bundle.packages` — a ``.deb`` (dpkg-deb) and an ``.rpm`` (rpmbuild) of the same
  content, whose scripts run ``install.sh``.

Nothing here runs on a customer box except ``install.sh`` and ``boxkeeper-agent.init``; the agent's
wheel leaves this subpackage out.
"""
