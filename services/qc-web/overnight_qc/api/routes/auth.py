"""Sign in with the API token (sets an HttpOnly, SameSite=Strict cookie) and sign out.

Each sign-in also gets a session id (:mod:`overnight_qc.api.sessions`); signing out revokes
it, so a copy of the cookies stops working at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from overnight_qc.api.deps import OptionalReviewerDep, StateDep
from overnight_qc.api.sessions import (
    SESSION_ID_COOKIE,
    SESSION_MAX_AGE_S,
    new_session_id,
    revoked_sessions,
)
from overnight_qc.core.security import (
    SESSION_COOKIE,
    clean_name,
    is_same_origin,
    session_value,
    token_matches,
)

router = APIRouter()


def _safe_next(target: str) -> str:
    """Only local paths (``/...``, not ``//host``) are followed after signing in."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _form(
    request: Request, state: StateDep, error: str = "", next_url: str = "/", code: int = 200
) -> Response:
    return request.app.state.templates.TemplateResponse(
        request,
        "login.html",
        {
            "error": error,
            "next_url": _safe_next(next_url),
            "reviewer": None,
            "read_only": state.token is None,
        },
        status_code=code,
    )


@router.get("/login", response_class=HTMLResponse, name="login")
def login_page(request: Request, state: StateDep, reviewer: OptionalReviewerDep) -> Response:
    """The sign-in form: reviewer name and the API token."""
    return _form(request, state, next_url=request.query_params.get("next", "/"))


@router.post("/login", name="login_submit")
def login_submit(
    request: Request,
    state: StateDep,
    name: str = Form(""),
    token: str = Form(""),
    next_url: str = Form("/", alias="next"),
) -> Response:
    """Check the token; on success set the session cookie and go back where the user was."""
    if not is_same_origin(request):
        return _form(
            request, state, "Cross-site sign-in refused.", next_url, status.HTTP_403_FORBIDDEN
        )
    if state.token is None:
        return _form(
            request,
            state,
            "This service is read-only: OVERNIGHT_API_TOKEN is not set.",
            next_url,
            status.HTTP_403_FORBIDDEN,
        )
    reviewer = clean_name(name)
    if reviewer is None:
        return _form(
            request,
            state,
            "Give your name (letters, digits, spaces, . @ _ -).",
            next_url,
            status.HTTP_400_BAD_REQUEST,
        )
    if not token_matches(token.strip(), state.token):
        return _form(request, state, "Wrong token.", next_url, status.HTTP_401_UNAUTHORIZED)
    response = RedirectResponse(_safe_next(next_url), status_code=status.HTTP_303_SEE_OTHER)
    for name, value in (
        (SESSION_COOKIE, session_value(state.token, reviewer)),
        (SESSION_ID_COOKIE, new_session_id(state.token)),
    ):
        response.set_cookie(
            name,
            value,
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


@router.post("/logout", name="logout")
def logout(request: Request) -> Response:
    """Revoke this sign-in's session id and forget the cookies: a copy of them stops working."""
    session_id = request.cookies.get(SESSION_ID_COOKIE, "").partition(".")[0]
    if session_id:
        revoked_sessions(request).revoke(session_id)
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    for name in (SESSION_COOKIE, SESSION_ID_COOKIE):
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")
    return response
