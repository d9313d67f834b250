"""Object storage behind one interface: folders (``file://``, plain paths) and S3/MinIO (``s3://``).

Pick a backend by URL with :func:`open_store`; publish one image's result atomically with
:func:`publish_result` and trust a result only through :func:`read_manifest`.
"""

from __future__ import annotations

from minio import Minio
from minio.helpers import check_bucket_name

from overnight.config import CommonSettings
from overnight.errors import ConfigError
from overnight.storage.base import ObjectInfo, ObjectStore
from overnight.storage.keys import join_key, validate_id, validate_key
from overnight.storage.local import LocalStore
from overnight.storage.publish import (
    Manifest,
    is_complete,
    publish_result,
    read_manifest,
    write_dataset_file,
)
from overnight.storage.s3 import S3Store
from overnight.storage.url import StoreLocation, parse_store_url

#: Endpoint used for ``s3://`` URLs when the settings name none.
AWS_S3_ENDPOINT = "s3.amazonaws.com"

__all__ = [
    "LocalStore",
    "Manifest",
    "ObjectInfo",
    "ObjectStore",
    "S3Store",
    "StoreLocation",
    "is_complete",
    "join_key",
    "open_store",
    "parse_store_url",
    "publish_result",
    "read_manifest",
    "s3_client",
    "validate_id",
    "validate_key",
    "write_dataset_file",
]


def s3_client(settings: CommonSettings | None = None) -> Minio:
    """Build a ``minio`` client from the ``s3_*`` settings (AWS, anonymous, when None).

    ``s3_endpoint`` is ``host[:port]``; an ``http://`` or ``https://`` in front of it overrides
    ``s3_secure``.
    """
    endpoint = settings.s3_endpoint if settings and settings.s3_endpoint else AWS_S3_ENDPOINT
    secure = settings.s3_secure if settings else True
    for scheme, is_secure in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            endpoint, secure = endpoint[len(scheme) :], is_secure
    endpoint = endpoint.rstrip("/")
    access_key = settings.s3_access_key if settings else None
    secret_key = settings.s3_secret_key if settings else None
    return Minio(
        endpoint,
        access_key=access_key.get_secret_value() if access_key else None,
        secret_key=secret_key.get_secret_value() if secret_key else None,
        secure=secure,
        region=settings.s3_region if settings else None,
    )


def open_store(url: str, settings: CommonSettings | None = None) -> ObjectStore:
    """Open the store a URL names.

    Parameters
    ----------
    url : str
        ``file:///abs/path``, ``file://./rel/path``, a plain path, or ``s3://bucket/prefix``.
    settings : CommonSettings, optional
        Endpoint, credentials and region for ``s3://`` URLs; None means AWS, anonymous.

    Returns
    -------
    ObjectStore
        A :class:`LocalStore` or an :class:`S3Store`. Nothing is created or contacted yet
        (see :meth:`LocalStore.check_writable`, :meth:`S3Store.ensure_bucket`).

    Raises
    ------
    ConfigError
        For a URL that names no folder or bucket, or an unknown scheme.
    """
    location = parse_store_url(url)
    if location.scheme == "s3":
        assert location.bucket is not None  # parse_store_url guarantees it
        try:
            check_bucket_name(location.bucket, strict=True)
        except ValueError as err:
            raise ConfigError(f"storage URL {url!r}: {err}") from err
        return S3Store(location.bucket, location.prefix, s3_client(settings))
    assert location.path is not None
    return LocalStore(location.path)
