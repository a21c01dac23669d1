"""Alerting: incidents, their notifications and silences — one package, no cycles inside the controller.

models.py (incidents, timeline, outbox, silences) · incidents.py (open, escalate, acknowledge,
note, resolve) · reconcile.py (a detection pass → incidents) · queries.py (read-only views) ·
silences.py (owned silences, "is this host muted now?") · maintenance.py (the config's
maintenance windows) · routing.py (which channel hears what, repeats) · outbox.py (incidents →
outbox rows, in the incident's transaction) · dispatcher.py (outbox → channels, retries) ·
render.py (message text) · metrics.py (outbox metrics) · secrets.py (secret files) ·
channels/ (one module per kind; registry.py lists them).

Imports only the foundation (store, configkit, schedule, redact, errors) and
``controller.detection`` (the incident kinds it reconciles); never the config, API or CLI.
"""
