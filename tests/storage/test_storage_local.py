"""What only the folder backend has to get right: symlinks, temp files, unwritable folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from overnight.errors import OutputNotWritableError, UnsafeKeyError
from overnight.storage import LocalStore, open_store
from overnight.storage.local import TEMP_PREFIX


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"secret")
    return folder


def test_a_symlink_pointing_outside_the_root_is_refused(tmp_path: Path, outside: Path) -> None:
    store = LocalStore(tmp_path / "root")
    store.write_bytes("ok.txt", b"ok")
    (store.root / "link").symlink_to(outside)
    (store.root / "file_link.txt").symlink_to(outside / "secret.txt")
    for key in ("link/secret.txt", "file_link.txt"):
        with pytest.raises(UnsafeKeyError, match="outside the store root"):
            store.read_bytes(key)
        with pytest.raises(UnsafeKeyError):
            store.local_path(key)
        with pytest.raises(UnsafeKeyError):
            store.write_bytes(key, b"overwrite")
    with pytest.raises(UnsafeKeyError):
        store.write_bytes("link/new.txt", b"planted")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert [i.key for i in store.list()] == ["ok.txt"]  # the outward file link is skipped


def test_a_symlink_inside_the_root_is_followed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    store.write_bytes("data/a.txt", b"a")
    (store.root / "alias").symlink_to(store.root / "data")
    assert store.read_bytes("alias/a.txt") == b"a"
    assert store.local_path("alias/a.txt") == (store.root / "data" / "a.txt").resolve()


def test_a_symlinked_root_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "nas"
    real.mkdir()
    (tmp_path / "mount").symlink_to(real)
    store = LocalStore(tmp_path / "mount")
    store.write_bytes("x/y.txt", b"y")
    assert (real / "x" / "y.txt").read_bytes() == b"y"
    assert [i.key for i in store.list()] == ["x/y.txt"]


def test_listing_skips_temp_files(local_store: LocalStore) -> None:
    local_store.write_bytes("img/a.tif", b"a")
    (local_store.root / "img" / f"{TEMP_PREFIX}abc-123").write_bytes(b"half")
    assert [i.key for i in local_store.list()] == ["img/a.tif"]


def test_writes_leave_no_temp_files(local_store: LocalStore) -> None:
    local_store.write_bytes("a/b.txt", b"1")
    local_store.write_bytes("a/b.txt", b"2")
    assert local_store.create_exclusive("a/lock", b"x")
    assert not local_store.create_exclusive("a/lock", b"y")
    assert sorted(os.listdir(local_store.root / "a")) == ["b.txt", "lock"]


def test_a_failed_stream_leaves_the_old_bytes(local_store: LocalStore) -> None:
    local_store.write_bytes("a.bin", b"old")

    class Broken:
        def read(self, size: int = -1) -> bytes:
            raise OSError("network share went away")

    with pytest.raises(OSError, match="went away"):
        local_store.write_stream("a.bin", Broken())  # type: ignore[arg-type]
    assert local_store.read_bytes("a.bin") == b"old"
    assert os.listdir(local_store.root) == ["a.bin"]


def test_delete_prunes_empty_folders_but_not_the_root(local_store: LocalStore) -> None:
    local_store.write_bytes("a/b/c/d.txt", b"d")
    local_store.write_bytes("a/keep.txt", b"k")
    local_store.delete("a/b/c/d.txt")
    assert sorted(os.listdir(local_store.root / "a")) == ["keep.txt"]
    local_store.delete("a/keep.txt")
    assert local_store.root.is_dir() and os.listdir(local_store.root) == []


def test_unwritable_output_folder_names_the_path(tmp_path: Path) -> None:
    # Tests run as root, which ignores permission bits: a regular file standing where the
    # output folder's parent should be makes the folder impossible to create for anyone.
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    store = open_store(str(blocker / "out"))
    assert isinstance(store, LocalStore)
    with pytest.raises(OutputNotWritableError, match=str(blocker)) as info:
        store.write_bytes("img1/cells.csv", b"x")
    assert "a file stands where a folder is needed" in str(info.value)
    with pytest.raises(OutputNotWritableError, match=str(blocker)):
        store.check_writable()
    with pytest.raises(OutputNotWritableError):
        store.create_exclusive("img1/.commit.json", b"x")
    assert blocker.read_text() == "not a folder"


def test_check_writable_creates_the_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "new" / "out")
    store.check_writable()
    assert store.root.is_dir() and os.listdir(store.root) == []
