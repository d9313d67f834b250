"""The QC web service's FastAPI application: :func:`create_app` builds one from settings."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from overnight import __version__
from overnight.errors import (
    AnnotationConflictError,
    AnnotationError,
    ConfigError,
    ObjectNotFoundError,
    OvernightError,
    StorageError,
    UnsafeKeyError,
)
from overnight.storage.base import ObjectStore
from overnight_qc.api.deps import LoginRequired
from overnight_qc.api.routes import annotations, auth, datasets, images, pk, stats
from overnight_qc.core.config import QcSettings, get_settings
from overnight_qc.core.editing import OperationError
from overnight_qc.core.state import QcState
from overnight_qc.core.templating import make_templates

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Only this service's own scripts, styles and pictures; no framing, no plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds the content security policy and related headers to every response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Pass the request on, then set the headers (and ``Server-Timing`` in ms)."""
        start = time.perf_counter()
        response = await call_next(request)
        elapsed_ms = (time.perf_counter() - start) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _error(request: Request, code: int, message: str) -> Response:
    if _wants_html(request):
        return request.app.state.templates.TemplateResponse(
            request,
            "error.html",
            {"code": code, "message": message, "reviewer": None, "read_only": False},
            status_code=code,
        )
    return JSONResponse({"detail": message}, status_code=code)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(UnsafeKeyError)
    async def unsafe_key(request: Request, err: UnsafeKeyError) -> Response:
        logger.warning("refused %s: %s", request.url.path, err)
        return _error(request, 404, "Not found.")

    @app.exception_handler(ObjectNotFoundError)
    async def not_found(request: Request, err: ObjectNotFoundError) -> Response:
        return _error(
            request, 404, "Not found: no such dataset or image (or it is not complete yet)."
        )

    @app.exception_handler(AnnotationConflictError)
    async def annotation_conflict(request: Request, err: AnnotationConflictError) -> Response:
        logger.info("refused a stale annotation on %s: %s", request.url.path, err)
        return _error(
            request,
            409,
            "Another reviewer saved corrections of this image after you loaded it. Reload the "
            "page to see them (your unsaved edits are lost), then edit again.",
        )

    @app.exception_handler(AnnotationError)
    async def annotation_invalid(request: Request, err: AnnotationError) -> Response:
        response = _error(request, 422, str(err))
        if isinstance(err, OperationError):
            response.headers["X-Overnight-Edit-Index"] = str(err.index)
        return response

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, err: StorageError) -> Response:
        logger.error("storage error on %s: %s", request.url.path, err)
        return _error(request, 503, "Storage is not reachable right now; try again shortly.")

    @app.exception_handler(OvernightError)
    async def overnight_error(request: Request, err: OvernightError) -> Response:
        logger.error("error on %s: %s", request.url.path, err)
        return _error(request, 500, str(err))

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, err: LoginRequired) -> Response:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/login?next={target}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        response = _error(request, err.status_code, str(err.detail))
        for key, value in (err.headers or {}).items():
            response.headers[key] = value
        return response


def create_app(settings: QcSettings | None = None, store: ObjectStore | None = None) -> FastAPI:
    """Build the QC service for ``settings`` (default: :func:`get_settings`).

    ``store`` replaces the store the settings name (tests, embedding).

    Raises
    ------
    ConfigError
        When pages are private (``qc_reads_public`` off) but no token is set: nobody could
        ever read them.
    """
    settings = settings or get_settings()
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    if not settings.qc_reads_public and not token:
        raise ConfigError(
            "OVERNIGHT_QC_READS_PUBLIC=false needs OVERNIGHT_API_TOKEN to sign in with"
        )
    if not token:
        logger.warning("OVERNIGHT_API_TOKEN is not set: the QC service is read-only")
    app = FastAPI(title="overnight QC", version=__version__, docs_url=None, redoc_url=None)
    app.state.qc = QcState(settings, store)
    app.state.templates = make_templates()
    app.state.templates.env.globals["pk_path_of"] = pk.pk_path_of
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (datasets, images, annotations, stats, pk, auth):
        app.include_router(module.router)
    _install_handlers(app)
    return app
