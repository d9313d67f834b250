"""Settings of the ingest API and the watcher (``OVERNIGHT_*``; section ``ingest:`` of the file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from overnight.config import load_settings
from overnight.jobs.settings import JobSettings

#: Largest upload accepted by default (bytes): 4 GiB, a large confocal stack.
DEFAULT_UPLOAD_MAX_BYTES = 4 * 1024**3


class IngestSettings(JobSettings):
    """Settings of ``overnight ingest serve`` and ``overnight ingest watch``."""

    config_section: ClassVar[str | None] = "ingest"

    api_token_file: Path | None = Field(
        None, description="File holding the API token (a mounted secret); read at start-up."
    )
    protect_reads: bool = Field(False, description="Require the bearer token for GET requests too.")
    upload_max_bytes: int = Field(
        DEFAULT_UPLOAD_MAX_BYTES,
        gt=0,
        description="Largest image accepted by POST /datasets/{id}/images (bytes).",
    )
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    watch_sources: str = Field(
        "",
        description="Folders (file:///…) and prefixes (s3://…) the watcher scans, comma-separated.",
    )
    watch_pipeline: str | None = Field(
        None, description="Pipeline of watched datasets (default: pipeline)."
    )
    watch_interval_s: float = Field(
        30.0, ge=0, description="Seconds between scans; 0 scans only on the schedule."
    )
    watch_schedule: str | None = Field(
        None,
        description="Cron expression (5 fields, local time) for scans; '0 22 * * *' is nightly.",
    )
    watch_stable_s: float = Field(
        10.0,
        ge=0,
        description="A file must keep its size and mtime this long (s) before it is enqueued.",
    )
    watch_heartbeat_file: Path | None = Field(
        None,
        description="File the watcher touches every tick: liveness for a container healthcheck.",
    )

    def watched_sources(self) -> list[str]:
        """The watched source URLs."""
        return [s.strip() for s in self.watch_sources.split(",") if s.strip()]

    def watched_pipeline(self) -> str:
        """The pipeline of datasets the watcher registers."""
        return self.watch_pipeline or self.pipeline


@lru_cache(maxsize=1)
def get_settings() -> IngestSettings:
    """The service's settings, built once from the environment and the config file."""
    return load_settings(IngestSettings)
