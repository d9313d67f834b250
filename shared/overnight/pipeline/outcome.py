"""What became of one image, and the one sorting of errors every runner uses.

:func:`sort_error` decides what an exception raised while analysing an image means: a bad
image (never retried), a transient failure (worth retrying: the queue retries it, the
embedded run reports it), another deliberate error, or a bug. Runners differ only in what
they do about the kind (retry, exit status), never in the reason they record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from overnight.errors import InvalidImageError, OvernightError, TransientError

Status = Literal["done", "skipped", "failed"]

#: Errors worth retrying: storage hiccups, dropped connections, timeouts. The queue adds
#: Redis's own (see :data:`overnight.jobs.tasks.TRANSIENT_ERRORS`).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (TransientError, ConnectionError, TimeoutError)


class FailureKind(StrEnum):
    """Why an image failed."""

    BAD_IMAGE = "bad_image"
    TRANSIENT = "transient"
    ERROR = "error"
    BUG = "bug"


@dataclass(frozen=True)
class SortedError:
    """An exception sorted: its kind and the reason recorded for the image."""

    kind: FailureKind
    reason: str

    def log(self, logger: logging.Logger, err: BaseException, extra: dict[str, Any]) -> None:
        """Log the failure at the level its kind deserves (a bug with its traceback)."""
        if self.kind is FailureKind.BAD_IMAGE:
            logger.warning("bad image: %s", self.reason, extra=extra)
        elif self.kind is FailureKind.BUG:
            logger.error("unexpected error: %s", self.reason, exc_info=err, extra=extra)
        else:
            logger.error("image failed: %s", self.reason, extra=extra)


def sort_error(
    err: BaseException, transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS
) -> SortedError:
    """Sort ``err`` (see the module doc); the reason quotes the error.

    >>> sort_error(InvalidImageError("a.tif", "not a TIFF")).reason
    'not a TIFF'
    >>> sort_error(KeyError("x")).reason
    "internal error: KeyError: 'x'"
    """
    if isinstance(err, InvalidImageError):
        return SortedError(FailureKind.BAD_IMAGE, err.problem)
    if isinstance(err, transient):
        reason = str(err) if isinstance(err, OvernightError) else _internal(err)
        return SortedError(FailureKind.TRANSIENT, reason)
    if isinstance(err, OvernightError):
        return SortedError(FailureKind.ERROR, str(err))
    return SortedError(FailureKind.BUG, _internal(err))


def _internal(err: BaseException) -> str:
    return f"internal error: {type(err).__name__}: {err}"


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one image: status, the reason of a failure, counts and timings."""

    image_id: str
    source: str
    status: Status
    reason: str = ""
    n_cells: int = 0
    n_pnps: int = 0
    mean_pnp_per_cell: float = float("nan")
    seconds: float = 0.0
    bytes_read: int = 0
    step_timings_s: dict[str, float] = field(default_factory=dict)
