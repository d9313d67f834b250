"""The one payload every queue job carries: which image of which dataset, read from where.

Serialised as JSON (RQ's ``JSONSerializer``, never pickle) and versioned: a worker refuses a
payload whose ``version`` it does not know rather than guess.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from overnight.errors import ConfigError
from overnight.results.layout import dataset_prefix
from overnight.storage import validate_id, validate_key

PAYLOAD_VERSION = 1


class ImageJob(BaseModel):
    """One image to analyse.

    ``image_key`` is relative to ``source_url`` (a NAS folder or ``s3://bucket/prefix``);
    ``source_url=None`` means the service's own store (uploaded images).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    dataset_id: str
    image_id: str
    image_key: str
    source_url: str | None = None
    pipeline: str = Field(min_length=1)
    models: dict[str, str] = Field(
        default_factory=dict,
        description="model name → registry version the dataset is analysed with "
        "(overnight.jobs.retrain_models); empty: the pipeline's own models",
    )

    @field_validator("dataset_id", "image_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        return validate_id(value)

    @field_validator("image_key")
    @classmethod
    def _safe_key(cls, value: str) -> str:
        return validate_key(value)

    @property
    def result_prefix(self) -> str:
        """Where the result is published: ``results/<dataset_id>/<image_id>``."""
        return f"{dataset_prefix(self.dataset_id)}/{self.image_id}"

    @property
    def handoff_key(self) -> str:
        """Where the segmentation stage leaves its output for the counting stage."""
        return f"work/{self.dataset_id}/{self.image_id}/segmentation.npz"

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict passed as the RQ job's one argument.

        ``models`` is left out when empty, so workers that predate it still read the payload.
        """
        return self.model_dump(mode="json", exclude={"models"} if not self.models else None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageJob:
        """Parse a job argument; :class:`ConfigError` for an unknown version or a bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(
                f"job payload not understood (version {data.get('version')!r}): {err}"
            ) from err
