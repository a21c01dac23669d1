"""The 1C:Enterprise server's check types, one module per signal: ``cluster`` (the cluster answers
``rac``), ``infobase`` (sessions, blocked sessions, locks left on), ``workers`` (the worker
processes' memory and performance), ``dbms`` (the infobase's PostgreSQL), ``publication`` (the web
publication and its ``wsap24.so`` version). What they share: ``common.py`` (the rac keys),
``rac.py`` (running rac, reading its records), ``pgcli.py`` (``pg_isready``/``psql``), ``marker.py``
(the update-run marker file)."""
