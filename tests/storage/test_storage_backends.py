"""Behaviour every ObjectStore shares, run on a folder and on a bucket."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from overnight.errors import ObjectNotFoundError, OutputNotWritableError, UnsafeKeyError
from overnight.storage import LocalStore, ObjectStore

MiB = 1024 * 1024


def test_implements_the_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    assert store.url.startswith(("file:///", "s3://"))


def test_write_read_stat_exists_delete(store: ObjectStore) -> None:
    before = time.time()
    store.write_bytes("results/ds1/img1/cells.csv", b"a,b\n1,2\n", content_type="text/csv")
    assert store.read_bytes("results/ds1/img1/cells.csv") == b"a,b\n1,2\n"
    assert store.exists("results/ds1/img1/cells.csv")
    info = store.stat("results/ds1/img1/cells.csv")
    assert info.key == "results/ds1/img1/cells.csv"
    assert info.size == 8
    assert info.mtime >= before - 2  # S3 mtimes have 1 s resolution
    assert info.etag

    store.write_bytes("results/ds1/img1/cells.csv", b"replaced")
    assert store.read_bytes("results/ds1/img1/cells.csv") == b"replaced"

    store.delete("results/ds1/img1/cells.csv")
    assert not store.exists("results/ds1/img1/cells.csv")
    store.delete("results/ds1/img1/cells.csv")  # absent: no error


def test_missing_keys_raise_object_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes("nope/x.tif")
    with pytest.raises(ObjectNotFoundError):
        store.stat("nope/x.tif")
    with pytest.raises(ObjectNotFoundError):
        store.download("nope/x.tif", tmp_path / "x.tif")
    assert not store.exists("nope/x.tif")


def test_a_folder_is_not_an_object(store: ObjectStore) -> None:
    store.write_bytes("dir/file.txt", b"x")
    assert not store.exists("dir")
    with pytest.raises(ObjectNotFoundError):
        store.stat("dir")
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes("dir")


def test_list_is_recursive_sorted_and_filtered_by_prefix(store: ObjectStore) -> None:
    keys = ["b/2.txt", "a/x/y/deep.txt", "a/1.txt", "ab.txt", "a/0.txt", "b/10.txt"]
    for i, key in enumerate(keys):
        store.write_bytes(key, b"x" * i)
    assert [i.key for i in store.list()] == sorted(keys)
    assert [i.key for i in store.list("a/")] == ["a/0.txt", "a/1.txt", "a/x/y/deep.txt"]
    assert [i.key for i in store.list("a")] == ["a/0.txt", "a/1.txt", "a/x/y/deep.txt", "ab.txt"]
    assert [i.key for i in store.list("a/x/y/d")] == ["a/x/y/deep.txt"]
    assert [i.size for i in store.list("b/")] == [5, 0]
    assert list(store.list("missing/")) == []


def test_list_of_an_empty_store(store: ObjectStore) -> None:
    assert list(store.list()) == []


def test_create_exclusive_creates_once(store: ObjectStore) -> None:
    assert store.create_exclusive("locks/commit", b"first") is True
    assert store.create_exclusive("locks/commit", b"second") is False
    assert store.read_bytes("locks/commit") == b"first"
    store.delete("locks/commit")
    assert store.create_exclusive("locks/commit", b"third") is True


def test_create_exclusive_has_one_winner_among_racing_threads(store: ObjectStore) -> None:
    n = 8
    barrier = threading.Barrier(n)
    results: dict[int, bool] = {}

    def race(i: int) -> None:
        barrier.wait()
        results[i] = store.create_exclusive("race/commit", f"writer {i}".encode())

    threads = [threading.Thread(target=race, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, won in results.items() if won]
    assert len(results) == n and len(winners) == 1
    assert store.read_bytes("race/commit") == f"writer {winners[0]}".encode()


def test_write_stream_20_mb_multipart_and_download(store: ObjectStore, tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, 20 * MiB, dtype=np.uint8).tobytes()
    written = store.write_stream("big/stack.tif", io.BytesIO(data), content_type="image/tiff")
    assert written == len(data)
    info = store.stat("big/stack.tif")
    assert info.size == len(data)
    if not isinstance(store, LocalStore):  # a multipart ETag ends with the part count
        assert info.etag is not None and info.etag.endswith("-2")
    target = tmp_path / "downloads" / "stack.tif"
    target.parent.mkdir()
    store.download("big/stack.tif", target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert sorted(p.name for p in target.parent.iterdir()) == ["stack.tif"]  # no temp left


def test_write_stream_of_an_empty_stream(store: ObjectStore) -> None:
    assert store.write_stream("empty.bin", io.BytesIO(b"")) == 0
    assert store.read_bytes("empty.bin") == b""


def test_download_to_an_unwritable_place_names_it(store: ObjectStore, tmp_path: Path) -> None:
    store.write_bytes("a.tif", b"a")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputNotWritableError, match=str(blocker)):
        store.download("a.tif", blocker / "a.tif")


def test_local_path_only_for_folders(store: ObjectStore) -> None:
    store.write_bytes("img/a.tif", b"pixels")
    path = store.local_path("img/a.tif")
    if isinstance(store, LocalStore):
        assert path is not None and path.read_bytes() == b"pixels"
        assert path == (store.root / "img" / "a.tif").resolve()
    else:
        assert path is None


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a\\b", "a\x00b", ""])
def test_every_method_refuses_unsafe_keys(store: ObjectStore, key: str, tmp_path: Path) -> None:
    calls = [
        lambda: store.read_bytes(key),
        lambda: store.write_bytes(key, b"x"),
        lambda: store.write_stream(key, io.BytesIO(b"x")),
        lambda: store.create_exclusive(key, b"x"),
        lambda: store.stat(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.local_path(key),
        lambda: store.download(key, tmp_path / "x"),
    ]
    for call in calls:
        with pytest.raises(UnsafeKeyError):
            call()
    with pytest.raises(UnsafeKeyError):
        list(store.list("../"))
