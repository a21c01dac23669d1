"""Persistence: SQLAlchemy 2 models and sessions; SQLite (WAL) by default, PostgreSQL for larger installs."""
