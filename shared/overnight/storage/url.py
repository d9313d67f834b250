"""Storage URLs: ``file:///abs``, ``file://./rel``, a plain path, or ``s3://bucket/prefix``.

>>> parse_store_url("s3://lab/results/2026")
StoreLocation(scheme='s3', path=None, bucket='lab', prefix='results/2026')
>>> parse_store_url("file:///nas/lab").path
PosixPath('/nas/lab')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from overnight.errors import ConfigError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_FILE_HOSTS = ("", "localhost")


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives: a folder (``scheme="file"``) or a bucket and key prefix (``"s3"``)."""

    scheme: Literal["file", "s3"]
    path: Path | None = None
    bucket: str | None = None
    prefix: str = ""


def _file_location(url: str, rest: str) -> StoreLocation:
    if rest.startswith("./") or rest.startswith("../") or rest in (".", ".."):
        return StoreLocation("file", path=Path(unquote(rest)))
    host, slash, path = rest.partition("/")
    if host not in _FILE_HOSTS or not slash:
        raise ConfigError(
            f"storage URL {url!r}: use file:///absolute/path or file://./relative/path"
        )
    return StoreLocation("file", path=Path("/" + unquote(path)))


def _s3_location(url: str, rest: str) -> StoreLocation:
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(f"storage URL {url!r} names no bucket: use s3://bucket/prefix")
    return StoreLocation("s3", bucket=bucket, prefix=prefix.strip("/"))


def parse_store_url(url: str) -> StoreLocation:
    """Split a storage URL into a folder, or a bucket and prefix.

    Parameters
    ----------
    url : str
        ``file:///abs/path``, ``file://./rel/path``, ``/abs/path``, ``rel/path`` or
        ``s3://bucket[/prefix]``. ``file://`` paths are percent-decoded (``%20`` → space).

    Raises
    ------
    ConfigError
        For an empty URL, an unknown scheme, or an ``s3://`` URL without a bucket.
    """
    if not url:
        raise ConfigError("storage URL is empty: give a folder or s3://bucket/prefix")
    match = _SCHEME.match(url)
    if match is None:
        return StoreLocation("file", path=Path(url))
    scheme, rest = match.group(1).lower(), url[match.end() :]
    if scheme == "file":
        return _file_location(url, rest)
    if scheme == "s3":
        return _s3_location(url, rest)
    raise ConfigError(f"storage URL {url!r}: unknown scheme {scheme!r} (use file:// or s3://)")
