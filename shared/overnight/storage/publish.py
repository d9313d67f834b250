"""Atomic publication of one image's result: readers see all of it or none of it.

Layout of a published result (``prefix`` is e.g. ``results/ds1/img1``)::

    prefix/labels.tif, prefix/cells.csv, ...   the artefacts, as plain files
    prefix/manifest.json                        written last; what readers trust
    prefix/.commit.json                         the commit record (same bytes as manifest.json)
    prefix/.attempts/<attempt_id>/...           staged artefacts, only while an attempt is open

``manifest.json`` holds each artefact's key, size (bytes) and sha256, the caller's ``info``
(model and step versions, timings...), the publishing attempt's id and ``published_at``.

Protocol of :func:`publish_result`
----------------------------------
1. **Done already?** A ``manifest.json`` that verifies is returned as is (duplicate delivery,
   re-run): first result wins unless ``replace=True``. If only ``.commit.json`` is there, an
   attempt committed and has not finished (or died): finish it (step 4) and return that.
2. **Stage.** Write every artefact under ``.attempts/<attempt_id>/``.
3. **Commit.** ``create_exclusive(".commit.json", manifest)``: of any number of racing
   attempts, in threads, processes or machines, exactly one creates it. The commit names the
   winning attempt, so its staged bytes are the result from then on.
4. **Finish** (idempotent, anyone may do it): write each committed artefact to its plain key
   (the winner from memory; anyone else from the winner's staging), then ``manifest.json`` as a
   byte copy of the commit, then delete the winner's staging. A loser deletes its own staging
   and finishes the winner's result instead, so every racer returns the same manifest.

Every key is written atomically (a rename on disk, a single PUT in S3), and every writer of a
plain key writes the same committed bytes, so when ``manifest.json`` appears its files are
complete. Readers (:func:`read_manifest`) still check each artefact's size and sha256 and treat
a manifest that does not match as absent. After a crash: before the commit, nothing is visible
and a re-run publishes afresh (stale staging is swept after :data:`STALE_ATTEMPT_S`); after the
commit, the next publication of that prefix finishes the crashed attempt's result.

``replace=True`` (deliberate re-analysis) retires the old result first: ``manifest.json``, then
the commit, then runs the protocol. It must not race other publishers of the same prefix: if it
does, readers may find no valid manifest (never a mixed one) until the next publication.

Cost: each artefact is written twice (staged, then plain) and read back once by
:func:`read_manifest`; on S3 a publication of N files takes about 3N + 6 requests.

On a local folder the same protocol runs on :class:`~overnight.storage.local.LocalStore`, whose
``create_exclusive`` is a hard link (atomic on local disks and NFS).
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError

from overnight.errors import ObjectNotFoundError, StorageError
from overnight.storage.base import ObjectStore
from overnight.storage.keys import join_key, validate_key

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
COMMIT_NAME = ".commit.json"
ATTEMPTS_DIR = ".attempts"
#: Staging older than this (s) belongs to a crashed attempt and is deleted by later publications.
STALE_ATTEMPT_S = 3600.0
# A commit record written by the O_EXCL fallback can be read while still short; re-read it.
_COMMIT_READS = 5
_COMMIT_READ_PAUSE_S = 0.05


class ArtefactEntry(BaseModel):
    """One published file: its key (relative to the store root), size in bytes and sha256."""

    model_config = ConfigDict(frozen=True)

    key: str
    size: int
    sha256: str


class Manifest(BaseModel):
    """What one publication holds; ``artefacts`` maps names relative to ``prefix`` to entries."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    prefix: str
    attempt_id: str
    published_at: datetime
    artefacts: dict[str, ArtefactEntry]
    info: dict[str, Any] = {}


@dataclass(frozen=True)
class _Commit:
    manifest: Manifest
    body: bytes


def manifest_key(prefix: str) -> str:
    """Return the key of ``prefix``'s ``manifest.json``."""
    return join_key(prefix, MANIFEST_NAME)


def _staging_key(prefix: str, attempt_id: str, name: str) -> str:
    return join_key(prefix, ATTEMPTS_DIR, attempt_id, name)


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_names(artefacts: Mapping[str, bytes]) -> None:
    if not artefacts:
        raise ValueError("publish_result needs at least one artefact")
    for name in artefacts:
        validate_key(name)
        if name == MANIFEST_NAME or name.startswith("."):
            raise ValueError(
                f"artefact name {name!r} is reserved (manifest.json, or a leading '.')"
            )


def _build_manifest(
    prefix: str, attempt_id: str, artefacts: Mapping[str, bytes], info: Mapping[str, Any]
) -> _Commit:
    manifest = Manifest(
        prefix=prefix,
        attempt_id=attempt_id,
        published_at=datetime.now(UTC),
        artefacts={
            name: ArtefactEntry(key=join_key(prefix, name), size=len(data), sha256=_sha256(data))
            for name, data in sorted(artefacts.items())
        },
        info=dict(info),
    )
    try:
        body = manifest.model_dump_json(indent=2).encode("utf-8")
    except PydanticSerializationError as err:
        raise ValueError(f"manifest info for {prefix!r} is not JSON-serialisable: {err}") from err
    return _Commit(manifest, body)


def _parse_manifest(body: bytes, key: str) -> Manifest | None:
    try:
        manifest = Manifest.model_validate_json(body)
    except ValidationError as err:
        logger.warning("ignoring %s: not a valid manifest (%s)", key, err.errors()[0]["msg"])
        return None
    if manifest.schema_version != SCHEMA_VERSION:
        logger.warning(
            "ignoring %s: schema_version %d, this overnight reads %d",
            key,
            manifest.schema_version,
            SCHEMA_VERSION,
        )
        return None
    return manifest


def _artefact_problem(
    store: ObjectStore, prefix: str, manifest: Manifest, check_content: bool
) -> str | None:
    """Why the files under ``prefix`` do not match ``manifest``, or None if they do."""
    for name, entry in manifest.artefacts.items():
        key = join_key(prefix, name)
        try:
            if check_content:
                data = store.read_bytes(key)
                size, digest = len(data), _sha256(data)
            else:
                size, digest = store.stat(key).size, entry.sha256
        except ObjectNotFoundError:
            return f"artefact {key} is missing"
        if size != entry.size or digest != entry.sha256:
            return f"artefact {key} does not match its size/sha256"
    return None


def read_manifest(
    store: ObjectStore, prefix: str, *, check_content: bool = True
) -> Manifest | None:
    """Return the published manifest under ``prefix``, or None if there is no complete result.

    Parameters
    ----------
    store : ObjectStore
        Where the result lives.
    prefix : str
        The result's key prefix, e.g. ``results/ds1/img1``.
    check_content : bool
        Read every artefact and compare its sha256 (True), or only its size (False: one
        ``stat`` per artefact, for quick listings).

    Returns
    -------
    Manifest or None
        None when ``manifest.json`` is absent, unreadable, of another schema version, or when
        an artefact it lists is missing or differs; the last cases are logged as warnings.
    """
    key = manifest_key(prefix)
    try:
        body = store.read_bytes(key)
    except ObjectNotFoundError:
        return None
    manifest = _parse_manifest(body, key)
    if manifest is None:
        return None
    problem = _artefact_problem(store, prefix, manifest, check_content)
    if problem is not None:
        logger.warning("ignoring %s in %s: %s", key, store.url, problem)
        return None
    return manifest


def is_complete(store: ObjectStore, prefix: str, *, check_content: bool = True) -> bool:
    """Whether ``prefix`` holds a published result whose files match its manifest."""
    return read_manifest(store, prefix, check_content=check_content) is not None


def _read_commit(store: ObjectStore, prefix: str) -> _Commit | None:
    key = join_key(prefix, COMMIT_NAME)
    for attempt in range(_COMMIT_READS):
        try:
            body = store.read_bytes(key)
        except ObjectNotFoundError:
            return None
        try:
            return _Commit(Manifest.model_validate_json(body), body)
        except ValidationError:
            if attempt < _COMMIT_READS - 1:  # maybe still being written (O_EXCL fallback)
                time.sleep(_COMMIT_READ_PAUSE_S)
    raise StorageError(
        f"{store.url}: commit record {key} is not a valid manifest; "
        "publish again with replace=True to overwrite this result"
    )


def _read_staged(store: ObjectStore, prefix: str, manifest: Manifest, name: str) -> bytes:
    data = store.read_bytes(_staging_key(prefix, manifest.attempt_id, name))
    if _sha256(data) != manifest.artefacts[name].sha256:
        raise StorageError(
            f"{store.url}: staged {name} of attempt {manifest.attempt_id} under {prefix} does "
            "not match its commit; publish again with replace=True"
        )
    return data


def _delete_staging(store: ObjectStore, prefix: str, attempt_id: str, names: list[str]) -> None:
    for name in names:
        store.delete(_staging_key(prefix, attempt_id, name))


def _delete_staging_quietly(
    store: ObjectStore, prefix: str, attempt_id: str, names: list[str]
) -> None:
    """Best-effort clean-up after a failed staging; what is left is swept later."""
    try:
        _delete_staging(store, prefix, attempt_id, names)
    except Exception:  # the original error matters more; stale staging is swept later
        logger.debug("could not delete staging of attempt %s under %s", attempt_id, prefix)


def _tidy_staging(store: ObjectStore, prefix: str, published_attempt: str) -> None:
    """Delete the published attempt's staging, and staging older than :data:`STALE_ATTEMPT_S`.

    Other staging belongs to attempts that may still be running (they delete their own).
    """
    base = join_key(prefix, ATTEMPTS_DIR) + "/"
    now = time.time()
    for info in store.list(base):
        attempt_id = info.key[len(base) :].partition("/")[0]
        if attempt_id == published_attempt:
            store.delete(info.key)
        elif now - info.mtime > STALE_ATTEMPT_S:
            logger.info("deleting stale staged file %s", info.key)
            store.delete(info.key)


def _finish(
    store: ObjectStore, prefix: str, commit: _Commit, own: Mapping[str, bytes] | None
) -> Manifest:
    """Write the committed artefacts to their plain keys, then ``manifest.json``; idempotent.

    ``own`` holds the bytes when the caller is the committed attempt; otherwise they are read
    from its staging. Raises :class:`ObjectNotFoundError` if that staging is gone.
    """
    manifest = commit.manifest
    for name, entry in manifest.artefacts.items():
        data = own[name] if own is not None else _read_staged(store, prefix, manifest, name)
        store.write_bytes(entry.key, data, content_type=_content_type(name))
    store.write_bytes(manifest_key(prefix), commit.body, content_type="application/json")
    _tidy_staging(store, prefix, manifest.attempt_id)
    return manifest


def _finish_committed(store: ObjectStore, prefix: str, commit: _Commit) -> Manifest:
    """Finish another attempt's committed result, or return it if someone already has."""
    try:
        return _finish(store, prefix, commit, own=None)
    except ObjectNotFoundError:
        # Its staging is gone: the committed attempt (or another helper) finished meanwhile.
        published = read_manifest(store, prefix)
        if published is not None and published.attempt_id == commit.manifest.attempt_id:
            return published
        raise StorageError(
            f"{store.url}: result under {prefix!r} is damaged: commit names attempt "
            f"{commit.manifest.attempt_id}, whose staged files are gone and whose published files "
            "do not match; publish again with replace=True"
        ) from None


def _retire(store: ObjectStore, prefix: str) -> list[str]:
    """Withdraw the current result (manifest first, then commit); names of its artefacts."""
    try:
        commit = _read_commit(store, prefix)
    except StorageError:  # a garbled commit: replacing it is the way out
        commit = None
    store.delete(manifest_key(prefix))
    store.delete(join_key(prefix, COMMIT_NAME))
    return list(commit.manifest.artefacts) if commit is not None else []


def publish_result(
    store: ObjectStore,
    prefix: str,
    artefacts: Mapping[str, bytes],
    info: Mapping[str, Any],
    *,
    replace: bool = False,
) -> Manifest:
    """Publish one image's artefacts under ``prefix`` all at once; return the published manifest.

    Parameters
    ----------
    store : ObjectStore
        Where to publish.
    prefix : str
        The result's key prefix, e.g. ``results/ds1/img1``.
    artefacts : Mapping[str, bytes]
        File name (relative to ``prefix``, e.g. ``cells.csv``) to its bytes. Names may not be
        ``manifest.json`` or start with ``.``.
    info : Mapping[str, Any]
        JSON-serialisable facts stored in the manifest (versions, timings, source...).
    replace : bool
        Withdraw an existing result and publish this one. By default the first published
        result wins and is returned unchanged (re-runs and duplicate deliveries are no-ops).

    Returns
    -------
    Manifest
        The manifest now published: this call's, or the one that won a race or was already
        there (compare ``attempt_id``).

    Raises
    ------
    StorageError
        If writing fails (:class:`OutputNotWritableError` for an unwritable target) or an
        earlier result is damaged beyond repair (the message says to use ``replace=True``).
    TransientError
        For a storage hiccup worth retrying; retrying is safe at any point.
    """
    validate_key(prefix)
    _check_names(artefacts)
    old_names: list[str] = []
    if replace:
        old_names = _retire(store, prefix)
    else:
        published = read_manifest(store, prefix)
        if published is not None:
            logger.info("result %s already published by attempt %s", prefix, published.attempt_id)
            _tidy_staging(store, prefix, published.attempt_id)
            return published
        commit = _read_commit(store, prefix)
        if commit is not None:
            return _finish_committed(store, prefix, commit)

    attempt_id = uuid.uuid4().hex
    ours = _build_manifest(prefix, attempt_id, artefacts, info)
    try:
        for name, data in artefacts.items():
            store.write_bytes(_staging_key(prefix, attempt_id, name), data, _content_type(name))
    except BaseException:
        _delete_staging_quietly(store, prefix, attempt_id, list(artefacts))
        raise
    if store.create_exclusive(join_key(prefix, COMMIT_NAME), ours.body):
        manifest = _finish(store, prefix, ours, own=artefacts)
        for name in set(old_names) - set(artefacts):
            store.delete(join_key(prefix, name))
        logger.debug("published %s (attempt %s)", prefix, attempt_id)
        return manifest

    _delete_staging(store, prefix, attempt_id, list(artefacts))
    commit = _read_commit(store, prefix)
    if commit is None:  # withdrawn by a concurrent replace=True between our commit and read
        raise StorageError(
            f"{store.url}: result under {prefix!r} was withdrawn while publishing; publish again"
        )
    logger.info(
        "result %s: attempt %s won the race, finishing it", prefix, commit.manifest.attempt_id
    )
    return _finish_committed(store, prefix, commit)


def write_dataset_file(store: ObjectStore, key: str, data: bytes) -> None:
    """Write a dataset-level file (``results/<ds>/summary.csv``) atomically in one write."""
    store.write_bytes(validate_key(key), data, content_type=_content_type(key))
