"""Every exception overnight raises on purpose, in one place.

Catch these at the edges only (the CLI, the job wrapper, the FastAPI exception handler).
A message names the file or key and says what the user can do about it.
"""

from __future__ import annotations


class OvernightError(Exception):
    """Base class of all errors raised deliberately by overnight."""


class ConfigError(OvernightError):
    """A setting, config file or pipeline definition is invalid."""


class InvalidImageError(OvernightError):
    """An input image cannot be analysed (unreadable, wrong dtype, wrong shape, too large).

    Never retried: the same bytes fail the same way.
    """

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class NoImagesError(OvernightError):
    """An input folder or prefix holds no images."""


class StorageError(OvernightError):
    """Reading or writing object storage failed."""


class ObjectNotFoundError(StorageError):
    """A key does not exist in storage."""


class UnsafeKeyError(StorageError):
    """A key or path would escape the storage root (``..``, absolute, NUL, backslash)."""


class OutputNotWritableError(StorageError):
    """The output folder or bucket cannot be written."""


class TransientError(OvernightError):
    """A failure worth retrying (storage or Redis hiccup); retried with backoff."""


class ModelNotFoundError(OvernightError):
    """A model directory or URI holds no usable model."""


class StepError(OvernightError):
    """A pipeline step is unknown, misconfigured, or lacks an input it needs."""


class MetadataError(OvernightError):
    """A file name or sidecar cannot be turned into metadata."""


class AnnotationError(OvernightError):
    """A reviewer's correction is invalid (unknown cell id, malformed spots, bad polygon)."""


class AnnotationConflictError(AnnotationError):
    """An annotation was saved on top of a version that is no longer the latest.

    Another reviewer saved in between; the QC web answers 409 and asks to reload.
    """
