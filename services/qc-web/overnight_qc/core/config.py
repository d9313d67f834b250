"""Settings of the QC web service (``OVERNIGHT_*`` variables, the ``qc:`` config section)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from overnight.config import CommonSettings, load_settings
from overnight.review.catalog import DEFAULT_TTL_S
from overnight.review.table import DEFAULT_PAGE_SIZE


class QcSettings(CommonSettings):
    """What the QC service reads, who may write, and how fresh its listings are."""

    config_section: ClassVar[str | None] = "qc"

    ingest_url: str | None = Field(
        None,
        description="Base URL of the ingest API (http://host:8000): live progress and the "
        "retry button. Unset: progress from storage, no retry.",
    )
    qc_reads_public: bool = Field(
        True, description="Pages readable without the token (writes always need it)."
    )
    qc_dataset_dir: Path | None = Field(
        None,
        description="Show this one output folder (an embedded run) instead of every "
        "dataset under results/ of the storage URL.",
    )
    qc_results_root: str = Field(
        "results", description="Key prefix holding one folder per dataset."
    )
    qc_listing_ttl_s: float = Field(
        DEFAULT_TTL_S,
        ge=0,
        description="Seconds a storage listing is trusted before it is refreshed in the "
        "background (0: list on every request).",
    )
    qc_page_size: int = Field(
        DEFAULT_PAGE_SIZE, ge=10, le=500, description="Images per table page."
    )
    qc_ingest_timeout_s: float = Field(3.0, gt=0, description="Timeout of calls to the ingest API.")


@lru_cache(maxsize=1)
def get_settings() -> QcSettings:
    """The service's settings, built once from the environment and the config file."""
    return load_settings(QcSettings)
