"""Sign-in sessions of the QC web: a signed random id per sign-in, revoked at sign-out.

The reviewer cookie (``overnight_qc.core.security``) names the reviewer and is signed with
the token, the same for every sign-in of that name; the session id cookie set beside it is
random, so signing out can revoke exactly that sign-in. Revocations live in the QC web
process (one per deployment; a restart forgets them, the 12 h cookie expiry still holds).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from fastapi import Request

#: How long a sign-in lasts (s).
SESSION_MAX_AGE_S = 12 * 3600
#: Cookie holding the signed id of one sign-in, revoked at sign-out.
SESSION_ID_COOKIE = "overnight_qc_sid"


@dataclass
class RevokedSessions:
    """Session ids signed out, each forgotten once its cookie would have expired anyway."""

    until: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke(self, session_id: str, now: float | None = None) -> None:
        """Refuse ``session_id`` from now on (for the cookie's lifetime)."""
        now = time.time() if now is None else now
        with self.lock:
            self.until = {k: v for k, v in self.until.items() if v > now}
            self.until[session_id] = now + SESSION_MAX_AGE_S

    def __contains__(self, session_id: object) -> bool:
        with self.lock:
            return self.until.get(str(session_id), 0.0) > time.time()


def revoked_sessions(request: Request) -> RevokedSessions:
    """The app's revoked session ids (made on first use)."""
    revoked = getattr(request.app.state, "qc_revoked_sessions", None)
    if revoked is None:
        revoked = request.app.state.qc_revoked_sessions = RevokedSessions()
    return revoked


def _sign(token: str, session_id: str) -> str:
    return hmac.new(token.encode(), f"qc-sid:{session_id}".encode(), hashlib.sha256).hexdigest()


def new_session_id(token: str) -> str:
    """A fresh signed session id: ``<random>.<hmac>``."""
    session_id = secrets.token_urlsafe(18)
    return f"{session_id}.{_sign(token, session_id)}"


def live_session(request: Request, token: str) -> bool:
    """Whether the request's session id cookie is signed with ``token`` and not signed out."""
    session_id, _, mac = request.cookies.get(SESSION_ID_COOKIE, "").partition(".")
    if not session_id or not hmac.compare_digest(mac, _sign(token, session_id)):
        return False
    return session_id not in revoked_sessions(request)
