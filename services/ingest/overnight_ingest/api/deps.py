"""FastAPI dependencies: settings, Redis, storage, the submitter and the token checks.

Everything comes from ``app.state`` (filled by :func:`overnight_ingest.app.create_app`), so a
test builds an app with its own settings instead of patching globals.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from redis import Redis

from overnight.jobs.state import JobBook
from overnight.jobs.submit import Submitter
from overnight.storage import ObjectStore
from overnight_ingest.core.config import IngestSettings
from overnight_ingest.core.security import bearer_matches


def get_app_settings(request: Request) -> IngestSettings:
    """The settings the app was built with."""
    settings: IngestSettings = request.app.state.settings
    return settings


def get_redis(request: Request) -> Redis:
    """The app's Redis client."""
    client: Redis = request.app.state.redis
    return client


def get_store(request: Request) -> ObjectStore:
    """The results store."""
    store: ObjectStore = request.app.state.store
    return store


SettingsDep = Annotated[IngestSettings, Depends(get_app_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]


def get_book(redis: RedisDep) -> JobBook:
    """Job and dataset state in Redis."""
    return JobBook(redis)


def get_submitter(redis: RedisDep, store: StoreDep, settings: SettingsDep) -> Submitter:
    """Registers datasets and enqueues images."""
    return Submitter(redis, store, settings)


BookDep = Annotated[JobBook, Depends(get_book)]
SubmitterDep = Annotated[Submitter, Depends(get_submitter)]


def require_token(request: Request) -> None:
    """Refuse a request without ``Authorization: Bearer <token>`` (401)."""
    if not bearer_matches(request.headers.get("authorization"), request.app.state.token):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_read_access(request: Request, settings: SettingsDep) -> None:
    """Let reads through, unless ``protect_reads`` is set: then the token is needed too."""
    if settings.protect_reads:
        require_token(request)


WriteAccess = Depends(require_token)
ReadAccess = Depends(require_read_access)
