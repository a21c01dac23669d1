"""boxkeeper controller: fleet state, outage detection, incidents, notifications, update workflows."""

__version__ = "0.1.0"
