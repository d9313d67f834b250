"""Entry point of the segmentation worker (``overnight worker segmentation``)."""

from __future__ import annotations

from overnight.jobs.settings import JobSettings
from overnight.jobs.worker import run_worker

#: Worker kind: the queue(s) this service drains.
KIND = "segmentation"


def main(settings: JobSettings, *, burst: bool = False) -> int:
    """Run a segmentation worker until stopped (SIGTERM finishes the job in hand first)."""
    return run_worker(settings, KIND, burst=burst)
