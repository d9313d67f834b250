"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS
from overnight_ingest.api.deps import RedisDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(redis: RedisDep, response: Response) -> dict[str, str]:
    """``ok`` when Redis answers, 503 otherwise (the container's health check)."""
    try:
        redis.ping()
    except REDIS_TRANSIENT_ERRORS as err:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "redis": str(err)}
    return {"status": "ok", "redis": "ok"}


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format: queue depth, jobs by state, job durations."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
