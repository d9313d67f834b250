"""Kubernetes dispatch: the per-image Job manifest and the settings it is built from.

Plain dicts only; the API calls live in the dispatcher service (``overnight_dispatch``).
"""

from overnight.dispatch.jobspec import (
    BAD_IMAGE_EXIT_CODE,
    JobTemplate,
    Resources,
    SecretEnv,
    Toleration,
    build_drain_job,
    build_job,
    job_name,
    label_value,
)
from overnight.dispatch.settings import DispatchSettings

__all__ = [
    "BAD_IMAGE_EXIT_CODE",
    "DispatchSettings",
    "JobTemplate",
    "Resources",
    "SecretEnv",
    "Toleration",
    "build_drain_job",
    "build_job",
    "job_name",
    "label_value",
]
