"""The FastAPI application factory of the ingest service."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from overnight import __version__
from overnight.errors import (
    ConfigError,
    ModelNotFoundError,
    NoImagesError,
    ObjectNotFoundError,
    OvernightError,
    StorageError,
    TransientError,
    UnsafeKeyError,
)
from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS, check_redis, connect
from overnight.storage import open_store
from overnight_ingest.api.routes import datasets, health, jobs, models
from overnight_ingest.core.config import IngestSettings, get_settings
from overnight_ingest.core.metrics import QueueCollector
from overnight_ingest.core.security import load_token
from overnight_ingest.core.uploads import BadUpload, UploadTooLarge

logger = logging.getLogger(__name__)

#: Error type → HTTP status; the first matching entry wins (subclasses first).
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UploadTooLarge, status.HTTP_413_CONTENT_TOO_LARGE),
    (BadUpload, status.HTTP_400_BAD_REQUEST),
    (UnsafeKeyError, status.HTTP_400_BAD_REQUEST),
    (ObjectNotFoundError, status.HTTP_404_NOT_FOUND),
    (ModelNotFoundError, status.HTTP_404_NOT_FOUND),
    (ConfigError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (NoImagesError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (TransientError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (StorageError, status.HTTP_502_BAD_GATEWAY),
    (OvernightError, status.HTTP_500_INTERNAL_SERVER_ERROR),
)


def create_app(settings: IngestSettings | None = None, *, check: bool = True) -> FastAPI:
    """Build the API: load the token (refusing to start without one), connect Redis and storage.

    ``check=False`` skips the start-up Redis check (for tools that build the app offline, such
    as the OpenAPI export).
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="overnight ingest",
        version=__version__,
        description="Register datasets, upload images and follow their analysis.",
    )
    app.state.settings = settings
    app.state.token = load_token(settings)
    app.state.redis = connect(settings.redis_url)
    if check:
        check_redis(app.state.redis)
    app.state.store = open_store(settings.storage_url, settings)
    app.state.metrics = CollectorRegistry()
    app.state.metrics.register(QueueCollector(app.state.redis))
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    app.include_router(models.router)
    app.include_router(health.router)
    app.add_exception_handler(OvernightError, _overnight_error)
    for error in REDIS_TRANSIENT_ERRORS:
        app.add_exception_handler(error, _redis_unavailable)
    return app


async def _overnight_error(request: Request, err: Exception) -> JSONResponse:
    code = next(code for kind, code in ERROR_STATUS if isinstance(err, kind))
    if code >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, err)
    return JSONResponse({"detail": str(err)}, status_code=code)


async def _redis_unavailable(request: Request, err: Exception) -> JSONResponse:
    logger.error("Redis unavailable during %s %s: %s", request.method, request.url.path, err)
    return JSONResponse({"detail": "the queue (Redis) is unavailable; try again"}, status_code=503)
