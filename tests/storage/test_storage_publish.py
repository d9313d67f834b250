"""Atomic publication: a reader sees a whole result or none, whatever crashes or races."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from overnight.errors import StorageError, UnsafeKeyError
from overnight.storage import (
    LocalStore,
    Manifest,
    ObjectStore,
    S3Store,
    is_complete,
    publish_result,
    read_manifest,
)
from overnight.storage import publish as publish_module
from overnight.storage.publish import write_dataset_file

PREFIX = "results/ds1/img1"
INFO = {"model": "nuclei-unet", "versions": {"segment": "1.2.0"}, "timings_s": {"segment": 0.5}}


def artefacts_for(tag: str, size: int = 3000) -> dict[str, bytes]:
    """A result whose every file says which publisher made it (``tag``)."""
    return {
        "labels.tif": (tag.encode() * size)[:size],
        "cells.csv": f"cell_id,area_px,maker\n1,40,{tag}\n".encode(),
        "qc/overlay.png": f"png of {tag}".encode(),
    }


def plain_files(store: ObjectStore, prefix: str = PREFIX) -> dict[str, bytes]:
    """What a person browsing the folder sees (hidden entries left out)."""
    found = {}
    for info in store.list(prefix + "/"):
        name = info.key[len(prefix) + 1 :]
        if not name.startswith("."):
            found[name] = store.read_bytes(info.key)
    return found


def hidden_keys(store: ObjectStore, prefix: str = PREFIX) -> list[str]:
    """Names under ``prefix`` with a segment starting with ``.`` (commit record, staging)."""
    names = [info.key[len(prefix) + 1 :] for info in store.list(prefix + "/")]
    return [n for n in names if any(part.startswith(".") for part in n.split("/"))]


def assert_consistent(store: ObjectStore, manifest: Manifest) -> None:
    """The files under PREFIX are exactly the manifest's, byte for byte, and nothing is staged."""
    files = plain_files(store)
    assert set(files) == set(manifest.artefacts) | {"manifest.json"}
    for name, entry in manifest.artefacts.items():
        assert entry.key == f"{PREFIX}/{name}"
        assert entry.size == len(files[name])
        assert entry.sha256 == hashlib.sha256(files[name]).hexdigest()
    makers = {data.split(b",")[-1].strip() for name, data in files.items() if name == "cells.csv"}
    assert len(makers) == 1
    assert hidden_keys(store) == [".commit.json"]
    if isinstance(store, LocalStore):  # no empty staging folders left for people to wonder at
        assert not (store.root / PREFIX / ".attempts").exists()


class SimulatedCrash(Exception):
    """The publishing process died here."""


class CrashingStore:
    """A real store whose process dies at its n-th write: nothing runs after that, not even
    clean-up, like a worker killed by the OOM killer."""

    def __init__(self, store: ObjectStore, writes_before_crash: int) -> None:
        self._store = store
        self._writes_left = writes_before_crash
        self.dead = False
        self.url = store.url

    def _write(self, operation: Callable[..., Any], *args: Any) -> Any:
        if self.dead or self._writes_left == 0:
            self.dead = True
            raise SimulatedCrash
        self._writes_left -= 1
        return operation(*args)

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._write(self._store.write_bytes, key, data, content_type)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        return bool(self._write(self._store.create_exclusive, key, data))

    def delete(self, key: str) -> None:
        self._write(self._store.delete, key)

    def __getattr__(self, name: str) -> Any:
        if self.dead:
            raise SimulatedCrash
        return getattr(self._store, name)


# -- the contract -------------------------------------------------------------------------------


def test_publish_writes_plain_files_and_a_manifest_last(store: ObjectStore) -> None:
    artefacts = artefacts_for("A")
    manifest = publish_result(store, PREFIX, artefacts, INFO)
    assert manifest.schema_version == 1
    assert manifest.prefix == PREFIX
    assert manifest.info == INFO
    assert manifest.published_at.tzinfo is not None
    assert_consistent(store, manifest)
    assert plain_files(store)["labels.tif"] == artefacts["labels.tif"]
    assert read_manifest(store, PREFIX) == manifest
    assert is_complete(store, PREFIX)
    on_disk = json.loads(store.read_bytes(f"{PREFIX}/manifest.json"))
    assert (
        on_disk["artefacts"]["cells.csv"]["sha256"]
        == hashlib.sha256(artefacts["cells.csv"]).hexdigest()
    )
    assert store.read_bytes(f"{PREFIX}/.commit.json") == store.read_bytes(f"{PREFIX}/manifest.json")


def test_nothing_published_reads_as_absent(store: ObjectStore) -> None:
    assert read_manifest(store, PREFIX) is None
    assert not is_complete(store, PREFIX)


def test_republishing_is_idempotent_first_result_wins(store: ObjectStore) -> None:
    first = publish_result(store, PREFIX, artefacts_for("A"), INFO)
    files = plain_files(store)
    assert publish_result(store, PREFIX, artefacts_for("A"), INFO) == first
    assert publish_result(store, PREFIX, artefacts_for("B"), {"model": "other"}) == first
    assert plain_files(store) == files
    assert_consistent(store, first)


def test_replace_publishes_anew_and_drops_old_files(store: ObjectStore) -> None:
    first = publish_result(store, PREFIX, artefacts_for("A"), INFO)
    smaller = {"cells.csv": b"cell_id,area_px,maker\n1,41,B\n"}
    second = publish_result(store, PREFIX, smaller, {"model": "v2"}, replace=True)
    assert second.attempt_id != first.attempt_id
    assert read_manifest(store, PREFIX) == second
    assert_consistent(store, second)
    assert plain_files(store)["cells.csv"] == smaller["cells.csv"]


def test_publications_under_other_prefixes_are_independent(store: ObjectStore) -> None:
    a = publish_result(store, "results/ds1/img1", artefacts_for("A"), INFO)
    b = publish_result(store, "results/ds1/img10", artefacts_for("B"), INFO)
    assert read_manifest(store, "results/ds1/img1") == a
    assert read_manifest(store, "results/ds1/img10") == b


# -- readers trust only whole results -------------------------------------------------------------


@pytest.mark.parametrize("writes_before_crash", range(9))
def test_a_crash_anywhere_never_shows_half_a_result(
    store: ObjectStore, writes_before_crash: int
) -> None:
    """3 artefacts: writes 0-2 stage, 3 commits, 4-6 copy, 7 writes manifest.json, 8 deletes."""
    crashing = CrashingStore(store, writes_before_crash)
    with pytest.raises(SimulatedCrash):
        publish_result(crashing, PREFIX, artefacts_for("A"), INFO)  # type: ignore[arg-type]
    seen = read_manifest(store, PREFIX)
    if writes_before_crash <= 7:
        assert seen is None and not is_complete(store, PREFIX)
    else:  # manifest.json was written; only the staging clean-up was lost
        assert seen is not None
        assert plain_files(store)["cells.csv"].endswith(b",A\n")

    rerun = publish_result(store, PREFIX, artefacts_for("B"), INFO)
    committed = writes_before_crash >= 4  # the crashed attempt's commit stands: it is finished
    maker = b",A\n" if committed else b",B\n"
    assert plain_files(store)["cells.csv"].endswith(maker)
    assert read_manifest(store, PREFIX) == rerun
    assert_consistent_after_crash(
        store, rerun, staged_leftovers=not committed and writes_before_crash > 0
    )


def assert_consistent_after_crash(
    store: ObjectStore, manifest: Manifest, staged_leftovers: bool
) -> None:
    files = plain_files(store)
    assert set(files) == set(manifest.artefacts) | {"manifest.json"}
    for name, entry in manifest.artefacts.items():
        assert entry.sha256 == hashlib.sha256(files[name]).hexdigest()
    # A crash before the commit leaves the dead attempt's staging until it is stale.
    assert any(k.startswith(".attempts/") for k in hidden_keys(store)) == staged_leftovers


def test_stale_staging_of_crashed_attempts_is_swept(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SimulatedCrash):
        publish_result(CrashingStore(store, 2), PREFIX, artefacts_for("A"), INFO)  # type: ignore[arg-type]
    assert len(hidden_keys(store)) == 2
    monkeypatch.setattr(publish_module, "STALE_ATTEMPT_S", -1.0)
    publish_result(store, PREFIX, artefacts_for("B"), INFO)
    assert hidden_keys(store) == [".commit.json"]


def test_a_manifest_with_a_missing_artefact_reads_as_absent(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    publish_result(store, PREFIX, artefacts_for("A"), INFO)
    store.delete(f"{PREFIX}/qc/overlay.png")
    with caplog.at_level(logging.WARNING, logger="overnight.storage.publish"):
        assert read_manifest(store, PREFIX) is None
    assert "qc/overlay.png is missing" in caplog.text


def test_a_manifest_whose_checksums_do_not_match_reads_as_absent(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    publish_result(store, PREFIX, artefacts_for("A"), INFO)
    store.write_bytes(f"{PREFIX}/cells.csv", b"cell_id,area_px,maker\n1,40,X\n")  # same size
    with caplog.at_level(logging.WARNING, logger="overnight.storage.publish"):
        assert read_manifest(store, PREFIX) is None
        assert not is_complete(store, PREFIX)
    assert "cells.csv does not match" in caplog.text
    # A size-only check is cheaper and misses a same-size change, as documented.
    assert read_manifest(store, PREFIX, check_content=False) is not None
    store.write_bytes(f"{PREFIX}/cells.csv", b"short")
    assert read_manifest(store, PREFIX, check_content=False) is None


def test_a_garbled_manifest_reads_as_absent(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    publish_result(store, PREFIX, artefacts_for("A"), INFO)
    store.write_bytes(f"{PREFIX}/manifest.json", b"{not json")
    with caplog.at_level(logging.WARNING, logger="overnight.storage.publish"):
        assert read_manifest(store, PREFIX) is None
    assert "not a valid manifest" in caplog.text


# -- racing publishers ----------------------------------------------------------------------------


def test_racing_threads_leave_exactly_one_consistent_result(store: ObjectStore) -> None:
    n = 8
    barrier = threading.Barrier(n + 1)
    returned: dict[int, Manifest] = {}
    seen_by_reader: set[str] = set()
    done = threading.Event()

    def publisher(i: int) -> None:
        barrier.wait()
        returned[i] = publish_result(store, PREFIX, artefacts_for(f"T{i}"), {"publisher": i})

    def reader() -> None:
        barrier.wait()
        while not done.is_set():
            manifest = read_manifest(store, PREFIX)
            if manifest is not None:
                seen_by_reader.add(manifest.attempt_id)

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(n)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join()
    done.set()
    threads[-1].join()

    assert len(returned) == n
    winners = {m.attempt_id for m in returned.values()}
    assert len(winners) == 1  # every racer returns the one published result
    final = read_manifest(store, PREFIX)
    assert final is not None and final == next(iter(returned.values()))
    assert seen_by_reader <= winners  # a reader never saw another result, even briefly
    assert_consistent(store, final)
    publisher_id = final.info["publisher"]
    assert plain_files(store)["cells.csv"].endswith(f",T{publisher_id}\n".encode())


def _publish_in_child(spec: tuple[str, ...], tag: str, barrier: Any, results: Any) -> None:
    kind, *where = spec
    if kind == "local":
        child_store: ObjectStore = LocalStore(Path(where[0]))
    else:  # a fresh client: a forked connection pool must not be shared with the parent
        endpoint, bucket, prefix = where
        client = Minio(
            endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1"
        )
        child_store = S3Store(bucket, prefix, client)
    barrier.wait()
    results.put(
        publish_result(child_store, PREFIX, artefacts_for(tag), {"publisher": tag}).attempt_id
    )


def test_racing_processes_leave_exactly_one_consistent_result(
    store: ObjectStore, s3_endpoint: str
) -> None:
    if isinstance(store, LocalStore):
        spec: tuple[str, ...] = ("local", str(store.root))
    else:
        assert isinstance(store, S3Store)
        spec = ("s3", s3_endpoint, store.bucket, store.prefix)
    context = multiprocessing.get_context("fork")  # inherits this test module; no re-import
    n = 4
    barrier = context.Barrier(n)
    results = context.Queue()
    children = [
        context.Process(target=_publish_in_child, args=(spec, f"P{i}", barrier, results))
        for i in range(n)
    ]
    for child in children:
        child.start()
    attempt_ids = {results.get(timeout=60) for _ in range(n)}
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert len(attempt_ids) == 1
    final = read_manifest(store, PREFIX)
    assert final is not None and final.attempt_id in attempt_ids
    assert_consistent(store, final)


# -- inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["manifest.json", ".commit.json", ".attempts/x", ".hidden"])
def test_reserved_artefact_names_are_refused(local_store: LocalStore, name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        publish_result(local_store, PREFIX, {name: b"x"}, INFO)


@pytest.mark.parametrize("name", ["../escape.csv", "/abs.csv", "a\\b.csv"])
def test_unsafe_artefact_names_are_refused(local_store: LocalStore, name: str) -> None:
    with pytest.raises(UnsafeKeyError):
        publish_result(local_store, PREFIX, {name: b"x"}, INFO)
    assert list(local_store.list()) == []


def test_bad_prefix_empty_result_and_unserialisable_info_are_refused(
    local_store: LocalStore,
) -> None:
    with pytest.raises(UnsafeKeyError):
        publish_result(local_store, "../results", artefacts_for("A"), INFO)
    with pytest.raises(ValueError, match="at least one artefact"):
        publish_result(local_store, PREFIX, {}, INFO)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        publish_result(local_store, PREFIX, artefacts_for("A"), {"x": object()})
    assert list(local_store.list()) == []


def test_a_garbled_commit_blocks_publication_until_replaced(local_store: LocalStore) -> None:
    publish_result(local_store, PREFIX, artefacts_for("A"), INFO)
    local_store.delete(f"{PREFIX}/manifest.json")
    local_store.write_bytes(f"{PREFIX}/.commit.json", b"garbage")
    with pytest.raises(StorageError, match="replace=True"):
        publish_result(local_store, PREFIX, artefacts_for("B"), INFO)
    manifest = publish_result(local_store, PREFIX, artefacts_for("B"), INFO, replace=True)
    assert_consistent(local_store, manifest)
    assert plain_files(local_store)["cells.csv"].endswith(b",B\n")


def test_write_dataset_file(store: ObjectStore) -> None:
    write_dataset_file(store, "results/ds1/summary.csv", b"image_id,n_cells\nimg1,3\n")
    write_dataset_file(store, "results/ds1/summary.csv", b"image_id,n_cells\nimg1,4\n")
    assert store.read_bytes("results/ds1/summary.csv") == b"image_id,n_cells\nimg1,4\n"
    with pytest.raises(UnsafeKeyError):
        write_dataset_file(store, "../summary.csv", b"x")
