"""Settings of the queue side: Redis, worker leases, retries, and where sources may live."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from overnight.config import CommonSettings
from overnight.imaging.limits import DEFAULT_MAX_WORKING_SET_GB, ReadLimits
from overnight.results.ome_zarr import OutputFormat

#: Seconds a job may run before RQ stops it (a 2 GiB stack takes a few minutes).
DEFAULT_JOB_TIMEOUT_S = 1800
#: A running job's lease (s): a killed worker's job is re-queued this long after its last beat.
DEFAULT_LEASE_S = 10


class JobSettings(CommonSettings):
    """Settings shared by the ingest API, the watcher and the workers."""

    config_section: ClassVar[str | None] = "worker"

    nas_root: str | None = Field(
        None,
        description="Folders that file:// sources may lie under (comma-separated absolute "
        "paths); file:// sources are refused when unset.",
    )
    pipeline: str = Field("cytometry", description="Pipeline for datasets that name none.")
    channels: dict[str, int] | None = Field(
        None, description='Channel roles, e.g. {"cell": 0, "pnp": 1}; overrides the pipeline file.'
    )
    job_timeout_s: int = Field(
        DEFAULT_JOB_TIMEOUT_S, gt=0, description="Longest run of one job (s)."
    )
    lease_s: int = Field(
        DEFAULT_LEASE_S,
        ge=2,
        description="Heartbeat lease of a running job (s); a killed worker's job is re-queued "
        "about this long after it died.",
    )
    retry_max: int = Field(3, ge=0, description="Retries of a job after a transient error.")
    retry_backoff_s: int = Field(
        5, ge=0, description="First retry delay (s); each further retry waits 4× longer."
    )
    max_working_set_gb: float = Field(
        DEFAULT_MAX_WORKING_SET_GB,
        gt=0,
        description="Most memory one image's analysis may need (GiB), estimated from its "
        "declared shape before reading; a larger field is analysed in blocks that fit (one "
        "whose smallest block does not fit fails at once with the reason). Keep it below the "
        "worker's memory limit.",
    )
    output_format: OutputFormat = Field(
        "tiff",
        description='Result files: "tiff" (labels.tif as OME-TIFF, tables, QC picture) or '
        '"ome-zarr" (also image.ome.zarr/: the input as a multiscale NGFF image with the cell '
        "labels as its labels group, for napari and other NGFF viewers).",
    )
    result_ttl_s: int = Field(
        7 * 24 * 3600,
        gt=0,
        description="How long finished jobs stay visible at GET /jobs/{id} (s).",
    )

    def nas_roots(self) -> tuple[Path, ...]:
        """The allowed roots of file:// sources, resolved (empty when none is configured)."""
        if not self.nas_root:
            return ()
        return tuple(Path(p.strip()).resolve() for p in self.nas_root.split(",") if p.strip())

    def read_limits(self) -> ReadLimits:
        """The image read limits these settings imply (the working-set budget)."""
        return ReadLimits.with_working_set_gb(self.max_working_set_gb)

    def step_overrides(self) -> dict[str, dict[str, Any]]:
        """Pipeline parameter overrides these settings imply (the channel roles)."""
        return {"select_channels": {"channels": self.channels}} if self.channels else {}

    def retry_intervals_s(self) -> list[int]:
        """Delay before each retry (s): backoff, 4×backoff, 16×backoff, ..."""
        return [self.retry_backoff_s * 4**i for i in range(self.retry_max)]
