"""The pnp-counter worker: ``overnight worker pnp``.

Takes jobs from the ``overnight-pnp`` queue: re-reads the image, takes the segmentation left by
the segmentation worker, detects and counts PNPs per cell, and publishes the tables, the QC
image and the manifest. All the work is in :mod:`overnight.jobs`; this package only names the
worker kind.
"""

from __future__ import annotations

from overnight.jobs.settings import JobSettings
from overnight.jobs.worker import run_worker

#: Worker kind: the queue(s) this service drains.
KIND = "pnp"


def main(settings: JobSettings, *, burst: bool = False) -> int:
    """Run a pnp-counter worker until stopped (SIGTERM finishes the job in hand first)."""
    return run_worker(settings, KIND, burst=burst)
