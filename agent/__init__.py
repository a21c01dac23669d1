"""boxkeeper agent: health checks, metrics and durable reports for one customer box."""

__version__ = "0.1.0"
