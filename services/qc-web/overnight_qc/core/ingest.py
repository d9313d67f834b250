"""Calls to the ingest API: a dataset's progress, re-running failed images, re-analysis."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote

from overnight.review.datasets import Failure, Progress

logger = logging.getLogger(__name__)

_STATES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class IngestStatus:
    """What ``GET /datasets/{id}`` of the ingest API says."""

    progress: Progress
    failures: tuple[Failure, ...]


@dataclass(frozen=True)
class RetryOutcome:
    """Whether the ingest API accepted a retry, and its answer for the reviewer."""

    ok: bool
    message: str


def _dataset_url(base_url: str, dataset_id: str, tail: str = "") -> str:
    return f"{base_url.rstrip('/')}/datasets/{quote(dataset_id, safe='')}{tail}"


def fetch_status(base_url: str, dataset_id: str, timeout_s: float) -> IngestStatus | None:
    """The dataset's progress from the ingest API; None (logged) when it cannot be had."""
    request = urllib.request.Request(
        _dataset_url(base_url, dataset_id), headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            body = json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError) as err:
        logger.warning("ingest API gave no progress for %s: %s", dataset_id, err)
        return None
    counts = body.get("counts") if isinstance(body, dict) else None
    if not isinstance(counts, dict):
        return None
    values = {state: int(counts.get(state, 0) or 0) for state in _STATES}
    failures = tuple(
        Failure(image_id=str(f.get("image_id", "")), reason=str(f.get("reason", "")))
        for f in body.get("failures") or []
        if isinstance(f, dict)
    )
    progress = Progress(**values, state=str(body.get("state", "")), origin="ingest API")
    return IngestStatus(progress, failures)


def request_retry(base_url: str, dataset_id: str, token: str, timeout_s: float) -> RetryOutcome:
    """``POST /datasets/{id}/retry`` on the ingest API with the bearer token."""
    request = urllib.request.Request(
        _dataset_url(base_url, dataset_id, "/retry"),
        method="POST",
        data=b"",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            body = response.read().decode("utf-8", "replace")
            return RetryOutcome(True, _describe(body) or "retry requested")
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")
        logger.warning("ingest API refused retry of %s: %s %s", dataset_id, err.code, detail)
        return RetryOutcome(
            False, f"ingest API answered {err.code}: {_describe(detail) or err.reason}"
        )
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        logger.warning("ingest API unreachable for retry of %s: %s", dataset_id, err)
        return RetryOutcome(False, f"ingest API unreachable: {err}")


def _post_json(url: str, body: dict[str, object], token: str, timeout_s: float) -> RetryOutcome:
    """POST ``body`` as JSON with the bearer token; the outcome in words for the reviewer."""
    request = urllib.request.Request(
        url,
        method="POST",
        data=json.dumps(body).encode("utf-8"),
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return RetryOutcome(True, _describe(response.read().decode("utf-8", "replace")))
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")
        logger.warning("ingest API refused %s: %s %s", url, err.code, detail)
        return RetryOutcome(
            False, f"ingest API answered {err.code}: {_describe(detail) or err.reason}"
        )
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        logger.warning("ingest API unreachable for %s: %s", url, err)
        return RetryOutcome(False, f"ingest API unreachable: {err}")


def request_reanalyse(
    base_url: str, dataset_id: str, models: dict[str, str], token: str, timeout_s: float
) -> RetryOutcome:
    """``POST /datasets/{id}/reanalyse`` with ``{"models": {name: version}}``.

    The ingest API analyses the images again as a new dataset and keeps the old results.
    """
    url = _dataset_url(base_url, dataset_id, "/reanalyse")
    return _post_json(url, {"models": models}, token, timeout_s)


def fetch_model_versions(base_url: str, token: str, timeout_s: float) -> dict[str, list[str]]:
    """Model name → versions the ingest API's registry lists (``{}`` when it cannot say)."""
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/models",
        headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            body = json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError) as err:
        logger.info("ingest API listed no models: %s", err)
        return {}
    found: dict[str, list[str]] = {}
    for model in body if isinstance(body, list) else []:
        if isinstance(model, dict) and isinstance(model.get("name"), str):
            versions = [
                v.get("version") for v in model.get("versions") or [] if isinstance(v, dict)
            ]
            found[model["name"]] = [str(v) for v in versions if v]
    return found


def _describe(body: str) -> str:
    """A short human message from a JSON answer (``detail``, ``message`` or a count)."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body[:200]
    if isinstance(data, dict):
        for key in ("detail", "message"):
            if isinstance(data.get(key), str):
                return data[key]
        if "retried" in data:
            return f"{data['retried']} image(s) queued again"
        if "reanalysis_of" in data:
            return (
                f"re-analysis {data.get('id')}: {data.get('enqueued', 0)} image(s) queued with "
                + ", ".join(f"{k} {v}" for k, v in (data.get("models") or {}).items())
            )
    return ""
