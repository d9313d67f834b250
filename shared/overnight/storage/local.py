"""A folder (local disk or a mounted NAS share) as an :class:`~overnight.storage.base.ObjectStore`.

Keys map to files under ``root``. Every write goes to a temporary file in the destination
folder, is flushed to disk, then renamed over the destination (``os.replace``), so a reader
sees the old bytes or the new ones, never half a file. Temporary files start with
:data:`TEMP_PREFIX`; listings skip them. Every path is resolved (symlinks followed) and must
stay under the resolved root, so a symlink inside the root that points outside is refused.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from overnight.errors import (
    ObjectNotFoundError,
    OutputNotWritableError,
    StorageError,
    UnsafeKeyError,
)
from overnight.storage.base import ObjectInfo
from overnight.storage.keys import validate_key, validate_prefix

logger = logging.getLogger(__name__)

#: Name prefix of in-progress writes; never listed, safe to delete when no writer runs.
TEMP_PREFIX = ".overnight-tmp-"
#: Chunk size for streaming copies (bytes).
COPY_CHUNK_BYTES = 1024 * 1024
# A concurrent delete may prune the folder a write is about to use; retry that many times.
_WRITE_ATTEMPTS = 5

T = TypeVar("T")

#: Writes the content of a new file into the open (binary) temporary file.
Fill = Callable[[BinaryIO], object]

_WRITE_HINTS = {
    errno.EACCES: "check the folder's permissions for the user running overnight",
    errno.EPERM: "check the folder's permissions for the user running overnight",
    errno.EROFS: "the filesystem is mounted read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EEXIST: "a file stands where a folder is needed",
}


def _not_writable(path: Path, err: OSError) -> OutputNotWritableError:
    hint = _WRITE_HINTS.get(err.errno or 0, "check that the output folder exists and is writable")
    reason = err.strerror or str(err)
    return OutputNotWritableError(f"cannot write {path}: {reason} ({hint})")


class LocalStore:
    """Objects as files under ``root``; ``url`` is ``file:///abs/root``.

    Parameters
    ----------
    root : Path
        The folder that holds every key. Created on the first write if missing.
    fsync : bool
        Flush each file to disk before it replaces the old one (survives a power cut).
    """

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------

    def _real_root(self) -> Path:
        return self.root.resolve()

    def _path(self, key: str) -> Path:
        """The file for ``key``; :class:`UnsafeKeyError` if it resolves outside the root."""
        path = self.root / validate_key(key)
        real_root = self._real_root()
        if not path.resolve().is_relative_to(real_root):
            raise UnsafeKeyError(
                f"unsafe storage key {key!r}: {path} resolves to {path.resolve()}, "
                f"outside the store root {real_root} (a symlink points out of it)"
            )
        return path

    def local_path(self, key: str) -> Path | None:
        """The resolved path of ``key`` (checked to stay under the root), to read in place."""
        return self._path(key).resolve()

    # -- reading -----------------------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, in key order."""
        validate_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        real_root = self._real_root()
        found: list[ObjectInfo] = []
        pending = [start]
        while pending:  # os.scandir walk: only symlinks need resolving (fast on big folders)
            try:
                entries = list(os.scandir(pending.pop()))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                    continue
                if entry.name.startswith(TEMP_PREFIX) or entry.is_dir():  # dir: a symlink to one
                    continue
                path = Path(entry.path)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                if entry.is_symlink() and not path.resolve().is_relative_to(real_root):
                    logger.warning("skipping %s: a symlink out of the store root", path)
                    continue
                try:
                    found.append(_info(key, entry.stat()))
                except FileNotFoundError:  # deleted while listing
                    continue
        yield from sorted(found, key=lambda info: info.key)

    def stat(self, key: str) -> ObjectInfo:
        """Size, mtime and a weak ETag (mtime and size) of ``key``."""
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as err:
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from err
        if not path.is_file():
            raise ObjectNotFoundError(f"no object {key!r} in {self.url} ({path} is a folder)")
        return _info(key, st)

    def exists(self, key: str) -> bool:
        """Whether ``key`` is a file."""
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        """The whole file."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from err
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err.strerror or err}") from err

    def download(self, key: str, path: Path) -> None:
        """Copy ``key`` to ``path`` (atomically: a temporary file, then a rename)."""
        source = self._path(key)
        try:
            stream = source.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from err
        with stream:
            try:
                atomic_write(Path(path), lambda out: _copy(stream, out), fsync=False)
            except OSError as err:
                raise _not_writable(Path(path), err) from err

    # -- writing -----------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Create or replace ``key`` atomically (``content_type`` is ignored on disk)."""
        self._write(key, lambda out: out.write(data))

    def write_stream(self, key: str, stream: BinaryIO, content_type: str | None = None) -> int:
        """Stream ``stream`` to ``key`` atomically; returns the bytes written."""
        source = _SourceReader(stream)
        try:
            return self._write(key, lambda out: _copy(source, out))
        except _SourceReadError as err:  # the caller's stream failed, not the disk
            raise err.original from None

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` only if absent; True if this call created it.

        The bytes go to a temporary file first, which is then hard-linked to ``key``; the link
        fails if ``key`` exists, and readers never see a partly written file (this is the
        classic lock that also works on NFS). Filesystems without hard links (some SMB
        shares) fall back to ``O_CREAT | O_EXCL``, where a reader may briefly see a short file.
        """
        path = self._path(key)
        temp = self._retrying(
            path, lambda: _write_temp(path, lambda out: out.write(data), fsync=self.fsync)[0]
        )
        try:
            os.link(temp, path)
            return True
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise _not_writable(path, err) from err
            return _create_excl_fallback(path, data)
        finally:
            temp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        """Remove ``key`` and then any folders it leaves empty (up to the root)."""
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            return
        except OSError as err:
            raise _not_writable(path, err) from err
        self._prune(path.parent)

    def check_writable(self) -> None:
        """Create the root if needed and prove a file can be written there.

        Raises
        ------
        OutputNotWritableError
            Naming the root and what to do, if it cannot be written.
        """
        try:
            temp, _ = _write_temp(self.root / "probe", lambda out: out.write(b"ok"), fsync=False)
        except OSError as err:
            raise _not_writable(self.root, err) from err
        temp.unlink(missing_ok=True)

    # -- helpers -----------------------------------------------------------------------------

    def _write(self, key: str, fill: Fill) -> int:
        path = self._path(key)
        return self._retrying(path, lambda: atomic_write(path, fill, fsync=self.fsync))

    def _retrying(self, path: Path, write: Callable[[], T]) -> T:
        """Run ``write``; again if a concurrent delete pruned its folder; map OS errors."""
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return write()
            except FileNotFoundError as err:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise _not_writable(path, err) from err
            except OSError as err:
                raise _not_writable(path, err) from err
        raise AssertionError("unreachable")

    def _prune(self, folder: Path) -> None:
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone, or not ours to remove)
                return
            folder = folder.parent


class _SourceReadError(Exception):
    """Carries an error raised by the caller's stream past the write-error mapping."""

    def __init__(self, original: OSError) -> None:
        super().__init__(str(original))
        self.original = original


class _SourceReader:
    """A stream whose read errors are told apart from errors writing the destination."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except OSError as err:
            raise _SourceReadError(err) from err


def _temp_name(path: Path) -> Path:
    # Keep the name under 255 bytes: a hash of the final name, not the name itself.
    digest = hashlib.sha1(path.name.encode("utf-8")).hexdigest()[:12]
    return path.with_name(f"{TEMP_PREFIX}{digest}-{uuid.uuid4().hex}")


def _write_temp(path: Path, fill: Fill, *, fsync: bool) -> tuple[Path, int]:
    """Write through ``fill`` into a new temporary file beside ``path``; (its path, its size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_name(path)
    try:
        with temp.open("xb") as out:
            fill(out)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
            return temp, out.tell()
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, fill: Fill, *, fsync: bool) -> int:
    """Write through ``fill`` into a temporary file beside ``path``, then rename it over it.

    Creates missing parent folders; returns the bytes written. Errors are the ``OSError`` of
    the failing call (callers map them); the temporary file is removed on any failure.
    """
    temp, size = _write_temp(path, fill, fsync=fsync)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return size


def _copy(source: BinaryIO | _SourceReader, out: BinaryIO) -> int:
    shutil.copyfileobj(source, out, COPY_CHUNK_BYTES)
    return out.tell()


def _create_excl_fallback(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as err:
        raise _not_writable(path, err) from err
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return True


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key, size=st.st_size, mtime=st.st_mtime, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}"
    )
