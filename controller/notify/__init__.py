"""Notifications: routing, maintenance windows, the outbox and its dispatcher, the channels."""
