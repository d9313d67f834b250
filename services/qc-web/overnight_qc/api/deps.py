"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from overnight_qc.api.sessions import live_session
from overnight_qc.core.config import QcSettings
from overnight_qc.core.security import Reviewer, is_same_origin, reviewer_of
from overnight_qc.core.state import QcState


class LoginRequired(Exception):
    """A page needs a signed-in reviewer (``qc_reads_public`` is off); redirect to the login."""


def get_state(request: Request) -> QcState:
    """The app's shared state."""
    state: QcState = request.app.state.qc
    return state


StateDep = Annotated[QcState, Depends(get_state)]


def get_settings_dep(state: StateDep) -> QcSettings:
    """The app's settings."""
    return state.settings


SettingsDep = Annotated[QcSettings, Depends(get_settings_dep)]


def get_reviewer(request: Request, state: StateDep) -> Reviewer | None:
    """The signed-in reviewer, if any (a cookie sign-in only while its session is live)."""
    reviewer = reviewer_of(request, state.token)
    if reviewer is not None and reviewer.via == "cookie":
        assert state.token is not None
        if not live_session(request, state.token):
            return None
    return reviewer


OptionalReviewerDep = Annotated[Reviewer | None, Depends(get_reviewer)]


def require_reader(
    request: Request, state: StateDep, reviewer: OptionalReviewerDep
) -> Reviewer | None:
    """Let the request read pages: always when reads are public, else only when signed in."""
    if not state.settings.qc_reads_public and reviewer is None:
        if "text/html" in request.headers.get("accept", "") and request.method == "GET":
            raise LoginRequired()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in or send the bearer token")
    return reviewer


ReaderDep = Annotated[Reviewer | None, Depends(require_reader)]


def require_writer(request: Request, state: StateDep, reviewer: OptionalReviewerDep) -> Reviewer:
    """A reviewer allowed to write: token configured, credential valid, same-origin if a cookie.

    Raises
    ------
    HTTPException
        403 when the service is read-only (no ``OVERNIGHT_API_TOKEN``) or a cookie-signed
        request comes from another site; 401 without a valid token or login.
    """
    if state.token is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "read-only: OVERNIGHT_API_TOKEN is not set for the QC service",
        )
    if reviewer is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in (or send Authorization: Bearer <token>) to review",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if reviewer.via == "cookie" and not is_same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
    return reviewer


WriterDep = Annotated[Reviewer, Depends(require_writer)]
