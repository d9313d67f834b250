"""The segmentation worker: ``overnight worker segmentation``.

Takes jobs from the ``overnight-segmentation`` queue: reads the image, segments and classifies
the cells, leaves them in storage for the counting stage and enqueues the pnp-counter job.
All the work is in :mod:`overnight.jobs`; this package only names the worker kind.
"""

from __future__ import annotations

from overnight.jobs.settings import JobSettings
from overnight.jobs.worker import run_worker

#: Worker kind: the queue(s) this service drains.
KIND = "segmentation"


def main(settings: JobSettings, *, burst: bool = False) -> int:
    """Run a segmentation worker until stopped (SIGTERM finishes the job in hand first)."""
    return run_worker(settings, KIND, burst=burst)
