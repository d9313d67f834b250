"""Who may write: the bearer token, a login cookie derived from it, and a same-origin check.

Writes (verdicts, retries) need ``OVERNIGHT_API_TOKEN``, given either as
``Authorization: Bearer <token>`` or once in the login form, which sets an HttpOnly,
``SameSite=Strict`` cookie. The cookie holds the reviewer's name and an HMAC of it keyed by the
token, never the token itself, so changing the token signs everybody out. Cookie-authenticated
writes must also come from a page of this service (``Origin``, else ``Referer``, matches the
request's own origin): a second line against cross-site requests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

SESSION_COOKIE = "overnight_qc_session"
#: Header naming the reviewer for bearer-token requests (scripts); default ``api``.
REVIEWER_HEADER = "X-Overnight-Reviewer"
#: Reviewer names: letters, digits, space and ``.@_-``, 1-100 chars.
_NAME = re.compile(r"^[\w .@-]{1,100}$")


@dataclass(frozen=True)
class Reviewer:
    """A person (or script) allowed to write; ``via`` is ``cookie`` or ``bearer``."""

    name: str
    via: str


def clean_name(name: str) -> str | None:
    """The trimmed reviewer name when it is acceptable, else None."""
    name = " ".join(name.split())
    return name if _NAME.match(name) else None


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def _mac(token: str, name: str) -> str:
    return hmac.new(
        token.encode("utf-8"), f"qc-session:{name}".encode(), hashlib.sha256
    ).hexdigest()


def session_value(token: str, name: str) -> str:
    """The cookie value for reviewer ``name``."""
    encoded = base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii")
    return f"{encoded}.{_mac(token, name)}"


def name_from_session(value: str, token: str) -> str | None:
    """The reviewer's name if ``value`` was made by :func:`session_value` with ``token``."""
    encoded, _, mac = value.partition(".")
    try:
        name = base64.urlsafe_b64decode(encoded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    if clean_name(name) != name or not hmac.compare_digest(mac, _mac(token, name)):
        return None
    return name


def reviewer_of(request: Request, token: str | None) -> Reviewer | None:
    """Who the request is from, if it carries the token or a valid login cookie."""
    if not token:
        return None
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given:
        if not token_matches(given.strip(), token):
            return None
        name = clean_name(request.headers.get(REVIEWER_HEADER, "api")) or "api"
        return Reviewer(name, "bearer")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        signed_in = name_from_session(cookie, token)
        if signed_in is not None:
            return Reviewer(signed_in, "cookie")
    return None


def own_origin(request: Request) -> str:
    """``scheme://host[:port]`` of the request as the browser addressed it."""
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}".lower()


def is_same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from one of this service's own pages."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == own_origin(request)
    return origin.lower() == own_origin(request)
