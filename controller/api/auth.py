"""Operator authentication: ``Authorization: Bearer <operator token>`` checked against the hashes in
``operator_tokens_file`` (see :mod:`controller.operators`). Agents use their own tokens, on ingest only.

Use as a dependency: ``@router.get(..., dependencies=[Depends(require_operator)])`` or
``operator: str = Depends(require_operator)`` to get the operator's name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.operators import OperatorTokens

_bearer = HTTPBearer(auto_error=False, description="Operator token (boxkeeper operators add NAME)")


def operator_tokens(request: Request) -> OperatorTokens:
    tokens: OperatorTokens = request.app.state.operator_tokens
    return tokens


def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The operator's name; 401 when the bearer token is missing or not an operator's."""
    token = credentials.credentials if credentials is not None else None
    name = operator_tokens(request).check(token)
    if name is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="operator token required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return name


Operator = Annotated[str, Depends(require_operator)]
