"""Notification channels: one module per kind, each a :class:`~controller.notify.channels.base.Sender`."""
