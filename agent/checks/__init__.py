"""Health checks: one module per check type, each with its spec (the check's options, validated
from the config), a small class with ``name``, ``type`` and ``run`` that takes the spec, and a
``build`` function; :mod:`agent.checks.registry` lists them (see agent/checks/base.py for the
contract)."""
