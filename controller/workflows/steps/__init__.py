"""Playbook steps: the contract every kind fulfils and what all steps share (base.py), the option
types (fields.py), one module per kind (run, put, get, http, testinfra, wait_healthy) and the list
of kinds (registry.py)."""
