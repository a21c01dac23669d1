"""Outage detection: liveness, the controller's own probes, classification of what is down."""
