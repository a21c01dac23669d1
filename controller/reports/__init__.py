"""The monthly client report and the work log it bills from.

::

    models.py      the ``worklog`` table (minutes of work by an operator, for a client)
    worklog.py     recording and listing work-log entries
    period.py      a report month in the client's time zone (local midnight to local midnight)
    intervals.py   unions and intersections of time intervals (availability arithmetic)
    availability.py  downtime and planned intervals per host and portal, from incidents, silences,
                   runs, update windows and the config's maintenance windows
    build.py       the one computation: stored history -> the report as a JSON-ready dict
    render.py      renderers of that dict: html (jinja2, inline SVG), md, csv, json

Everything is computed from tables kept long-term (incidents and their timelines, runs, window
occurrences, silences, check states, the work log), never from raw agent reports.
"""
