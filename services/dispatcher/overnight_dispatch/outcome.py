"""What a Job's status says: still going, running a pod, or ended (Complete / Failed and why).

Pure functions over the Job as the API returns it (a dict). Only the terminal conditions
``Complete`` and ``Failed`` count as an end; ``SuccessCriteriaMet`` and ``FailureTarget``
(Kubernetes ≥ 1.31) come first, while pods may still be terminating.

>>> job_end({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
JobEnd(succeeded=True, reason='')
>>> failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
...           "message": "Job was active longer than specified deadline"}
>>> job_end({"status": {"conditions": [failed]}}).reason
'DeadlineExceeded: Job was active longer than specified deadline'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Failed-condition reason of a Job failed by its pod failure policy (exit code 3: a bad image).
POD_FAILURE_POLICY = "PodFailurePolicy"


@dataclass(frozen=True)
class JobEnd:
    """How a Job ended: ``succeeded``, else ``reason`` (condition reason and message)."""

    succeeded: bool
    reason: str = ""


def job_end(job: Mapping[str, Any]) -> JobEnd | None:
    """The end of ``job`` from its ``Complete`` / ``Failed`` condition, or None while it runs."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobEnd(succeeded=True)
        if condition.get("type") == "Failed":
            return JobEnd(succeeded=False, reason=_failure_reason(condition))
    return None


def _failure_reason(condition: Mapping[str, Any]) -> str:
    reason = condition.get("reason") or "Failed"
    message = condition.get("message") or ""
    text = f"{reason}: {message}" if message else reason
    if reason == POD_FAILURE_POLICY:
        return f"bad image (exit code 3): {text}"
    return text


def has_running_pod(job: Mapping[str, Any]) -> bool:
    """Whether a pod of ``job`` is active (scheduled and not yet ended)."""
    return int((job.get("status") or {}).get("active") or 0) > 0


def annotation(job: Mapping[str, Any], key: str) -> str | None:
    """One annotation of ``job``, or None."""
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(key)
    return None if value is None else str(value)


def resource_version(obj: Mapping[str, Any]) -> str | None:
    """``metadata.resourceVersion`` of an object or a list."""
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return None if value is None else str(value)
