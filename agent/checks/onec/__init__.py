"""The 1C:Enterprise server's check types, one module per signal: ``cluster`` (the cluster answers
``rac``), ``infobase`` (sessions, blocked sessions, locks left on), ``workers`` (the worker
processes' memory and performance), ``dbms`` (the infobase's PostgreSQL), ``publication`` (the web
publication and its ``wsap24.so`` version). ``common.py`` what the rac-based ones share."""
