"""Knowledge of a 1C:Enterprise server that is not a check: talking to its cluster through ``rac``
(:mod:`agent.onec.rac`), to its PostgreSQL through ``pg_isready``/``psql``
(:mod:`agent.onec.pgcli`), and where an update run says it is running (:mod:`agent.onec.marker`).
"""
