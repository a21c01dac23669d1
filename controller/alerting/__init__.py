"""Incidents: the store (models), lifecycle (service), detection reconcile, queries, API and CLI."""
