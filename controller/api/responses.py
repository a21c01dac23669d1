"""What the API answers besides success, declared in ``/openapi.json`` as it is answered.

Every error body is ``{"detail": "..."}`` (the ``ErrorAnswer`` schema), except 422, which is
always FastAPI's ``HTTPValidationError`` (``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``)
— also for the 422s a handler raises itself (:func:`unprocessable`).

:func:`declare` adds to every route the answers the layers around it give, so a new route gets them
without a line of its own: 401/403/429 (the gate and the role dependency) on operator routes, 404
on routes with a path parameter (no such thing, or another client's), 413 everywhere (body limit),
503 where the database is read (database unavailable). A route's own answers (409, a 404 of a body
reference) stay in its decorator.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException

from controller.api import auth
from controller.api.reports import ErrorAnswer

_TEXT = {
    400: "the body is not JSON in UTF-8",
    401: "no or unknown operator token",
    403: "the operator's role does not allow this",
    404: "no such thing (or it belongs to a client this operator does not see)",
    409: "conflicts with the current state",
    413: "body over the size limit",
    429: "too many requests for this token (see the Retry-After header)",
    503: "database unavailable",
}


def error(code: int, text: str | None = None) -> dict[int | str, dict[str, Any]]:
    """One entry of a route's ``responses=``: ``responses={**error(409, "host busy")}``."""
    entry: dict[str, Any] = {"model": ErrorAnswer, "description": text or _TEXT[code]}
    if code == 429:
        entry["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return {code: entry}


def unprocessable(msg: str, *loc: str | int) -> HTTPException:
    """A 422 in the same shape as FastAPI's own validation errors."""
    return HTTPException(422, [{"loc": list(loc) or ["body"], "msg": msg, "type": "value_error"}])


def declare(app: FastAPI, schema: dict[str, Any]) -> None:
    """Add the answers of the layers around the routes to ``schema`` (the OpenAPI document)."""
    error_schema = {"$ref": "#/components/schemas/ErrorAnswer"}
    for route in auth.api_routes(app):
        path, methods = getattr(route, "path", ""), getattr(route, "methods", None) or set()
        for method in methods:
            operation = schema.get("paths", {}).get(path, {}).get(method.lower())
            if operation is None:
                continue
            codes = [413]
            if path.startswith("/api/"):
                codes.append(503)
                if (method, path) not in auth.NOT_OPERATOR_ROUTES:  # ingest answers bad JSON with 422
                    codes += [401, 403, 429] + ([404] if "{" in path else [])
                    codes += [400] if "requestBody" in operation else []
            answers = operation.setdefault("responses", {})
            for code in codes:
                if str(code) in answers:
                    continue
                entry: dict[str, Any] = {"description": _TEXT[code],
                                         "content": {"application/json": {"schema": error_schema}}}
                if code == 429:
                    entry["headers"] = {"Retry-After": {"description": "seconds to wait",
                                                        "schema": {"type": "integer"}}}
                answers[str(code)] = entry

_NO_NUL = "^[^\x00]*$"  # ingest refuses NUL characters in any string (controller/ingest.py)
_LABEL_NAME = "^(_|_[a-zA-Z0-9][a-zA-Z0-9_]*|[a-zA-Z][a-zA-Z0-9_]*)$"  # and not starting with "__"


def report_rules(components: dict[str, Any]) -> None:
    """Write the limits that ingest enforces beyond the report's types (controller/ingest.py
    ``_check_limits``) into its JSON Schema, so that what the schema allows is what is stored. One
    rule is left out because JSON Schema cannot say it: check names unique within a report."""
    from agent.report import MAX_CHECKS, MAX_LABELS, MAX_NAME_LENGTH, MAX_SAMPLES, MAX_SUMMARY_LENGTH

    def text(lo: int | None, hi: int) -> dict[str, Any]:
        return {"type": "string", "pattern": _NO_NUL, "maxLength": hi, **({"minLength": lo} if lo else {})}

    report = components["Report"]["properties"]
    report["host"].update(text(1, MAX_NAME_LENGTH))
    report["agent_version"].update(text(1, MAX_NAME_LENGTH))
    report["seq"].update(minimum=0, maximum=2**63 - 1)
    report["push_interval_seconds"]["exclusiveMinimum"] = 0
    report["checks"]["maxItems"] = MAX_CHECKS
    report["samples"]["maxItems"] = MAX_SAMPLES
    facts = components["Facts"]["properties"]
    facts["hostname"].update(text(1, MAX_SUMMARY_LENGTH))
    facts["os"]["pattern"] = facts["kernel"]["pattern"] = _NO_NUL
    check = components["CheckReport"]["properties"]
    check["name"].update(text(1, MAX_NAME_LENGTH))
    check["type"].update(text(1, MAX_NAME_LENGTH))
    check["summary"].update(text(None, MAX_SUMMARY_LENGTH))
    check["attempt"].update(minimum=0, maximum=1000)
    check["max_attempts"].update(minimum=0, maximum=1000)
    check["perfdata"]["maxItems"] = MAX_LABELS * 4
    perf = components["PerfValue"]["properties"]
    perf["label"].update(text(1, MAX_NAME_LENGTH))
    perf["unit"]["pattern"] = _NO_NUL
    sample = components["Sample"]["properties"]
    sample["name"].update(type="string", pattern="^[a-zA-Z_:][a-zA-Z0-9_:]*$", maxLength=MAX_NAME_LENGTH)
    sample["labels"].update(maxProperties=MAX_LABELS,
                            propertyNames={"pattern": _LABEL_NAME, "maxLength": MAX_NAME_LENGTH},
                            additionalProperties=text(None, MAX_SUMMARY_LENGTH))
