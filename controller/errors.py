"""Errors of the controller, grouped by what the caller does next.

::

    ControllerError                 anything the controller raises on purpose
    ├── ConfigError                 fix the config file (or env/CLI value); the CLI exits 2
    ├── InventoryError              an inventory operation cannot be done as asked; exit 1
    │   ├── UnknownClientError      the client is not in the config/DB
    │   ├── UnknownHostError        the host is not in the DB
    │   └── HostExistsError         the host already has an active token
    ├── OperatorTokenError          the operator tokens file is unusable (missing, bad YAML); exit 2
    └── IngestError                 a pushed report is refused; carries the HTTP status to answer
        ├── AuthError               401: no, unknown or revoked agent token
        ├── ForbiddenError          403: the token belongs to another host
        ├── PayloadTooLargeError    413: body over the size limit
        └── InvalidReportError      422: the body is not a valid report (message says what is wrong)

Database errors are SQLAlchemy's own (``sqlalchemy.exc.SQLAlchemyError``); the API answers 503 for
them and counts them in ``boxkeeper_controller_db_errors_total``.
"""

from __future__ import annotations


class ControllerError(Exception):
    """Base of every error the controller raises on purpose."""


class ConfigError(ControllerError):
    """A config value is missing or wrong. Names the file, the key path and what was expected."""

    def __init__(self, source: str, key: str, expected: str, got: object = ...) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        self.got = got
        text = f"{source}: {key}: expected {expected}"
        if got is not ...:
            shown = repr(got)
            text += f", got {shown[:80] + '…' if len(shown) > 80 else shown}"
        super().__init__(text)


class InventoryError(ControllerError):
    """An inventory operation (add/revoke a host, add an operator) cannot be done as asked."""


class UnknownClientError(InventoryError):
    """The named client does not exist."""


class UnknownHostError(InventoryError):
    """The named host does not exist."""


class HostExistsError(InventoryError):
    """The host already exists with an active token (revoke it first to issue a new one)."""


class OperatorTokenError(ControllerError):
    """The operator tokens file cannot be read or parsed."""


class IngestError(ControllerError):
    """A pushed report is refused; ``status_code`` is the HTTP answer."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class AuthError(IngestError):
    status_code = 401


class ForbiddenError(IngestError):
    status_code = 403


class PayloadTooLargeError(IngestError):
    status_code = 413


class InvalidReportError(IngestError):
    status_code = 422
