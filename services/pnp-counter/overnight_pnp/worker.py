"""Entry point of the pnp-counter worker (``overnight worker pnp``)."""

from __future__ import annotations

from overnight.jobs.settings import JobSettings
from overnight.jobs.worker import run_worker

#: Worker kind: the queue(s) this service drains.
KIND = "pnp"


def main(settings: JobSettings, *, burst: bool = False) -> int:
    """Run a pnp-counter worker until stopped (SIGTERM finishes the job in hand first)."""
    return run_worker(settings, KIND, burst=burst)
