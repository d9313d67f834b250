"""A reviewer's verdict on one image, stored next to its result as ``verdict.json``.

The file holds the current verdict and every earlier one (``history``, oldest first), so a
change of mind never loses who said what. It lives at ``<image prefix>/verdict.json`` in the
same store as the result and therefore survives restarts of the QC service.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from overnight.errors import ObjectNotFoundError
from overnight.storage.base import ObjectStore
from overnight.storage.keys import join_key

logger = logging.getLogger(__name__)

VERDICT_NAME = "verdict.json"
#: Longest comment kept (characters); longer ones are refused, not cut.
MAX_COMMENT_CHARS = 2000
#: Longest reviewer name kept (characters).
MAX_WHO_CHARS = 100


class Verdict(StrEnum):
    """What a reviewer decided about an image."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FLAGGED = "flagged"


class VerdictRecord(BaseModel):
    """One decision: the verdict, why (``comment``), who gave it and when (UTC)."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    comment: str = Field("", max_length=MAX_COMMENT_CHARS)
    who: str = Field(..., min_length=1, max_length=MAX_WHO_CHARS)
    when: datetime


class VerdictFile(BaseModel):
    """``verdict.json``: the current decision plus all earlier ones (oldest first)."""

    model_config = ConfigDict(frozen=True)

    image_id: str
    verdict: Verdict
    comment: str
    who: str
    when: datetime
    history: tuple[VerdictRecord, ...] = ()

    @property
    def current(self) -> VerdictRecord:
        """The current decision as a record."""
        return VerdictRecord(
            verdict=self.verdict, comment=self.comment, who=self.who, when=self.when
        )


def verdict_key(image_prefix: str) -> str:
    """The key of an image's ``verdict.json`` (``image_prefix`` like ``results/ds1/img1``)."""
    return join_key(image_prefix, VERDICT_NAME)


def parse_verdict(body: bytes, key: str) -> VerdictFile | None:
    """Parse ``verdict.json`` bytes; None (and a warning) when they are not a valid file."""
    try:
        return VerdictFile.model_validate_json(body)
    except ValidationError as err:
        logger.warning("ignoring unreadable %s: %s", key, err.errors()[0]["msg"])
        return None


def read_verdict(store: ObjectStore, image_prefix: str) -> VerdictFile | None:
    """The image's verdict file, or None when nobody has reviewed it (or it is unreadable)."""
    key = verdict_key(image_prefix)
    try:
        body = store.read_bytes(key)
    except ObjectNotFoundError:
        return None
    return parse_verdict(body, key)


def record_verdict(
    store: ObjectStore,
    image_prefix: str,
    image_id: str,
    decision: VerdictRecord,
) -> VerdictFile:
    """Make ``decision`` the image's current verdict, keeping the earlier ones in ``history``.

    The whole file is replaced atomically (the store's ``write_bytes``), so readers see the
    old file or the new one. Two reviewers saving the same image at the same instant may lose
    one of the two history entries, never the file.
    """
    previous = read_verdict(store, image_prefix)
    history = () if previous is None else (*previous.history, previous.current)
    updated = VerdictFile(
        image_id=image_id,
        verdict=decision.verdict,
        comment=decision.comment,
        who=decision.who,
        when=decision.when,
        history=history,
    )
    body = json.dumps(updated.model_dump(mode="json"), indent=2).encode("utf-8")
    store.write_bytes(verdict_key(image_prefix), body, content_type="application/json")
    logger.info(
        "verdict %s by %s", decision.verdict.value, decision.who, extra={"image_id": image_id}
    )
    return updated


def now_utc() -> datetime:
    """The current time in UTC, to the second (what a verdict records)."""
    return datetime.now(UTC).replace(microsecond=0)
