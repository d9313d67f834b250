"""What only the bucket backend has to get right: prefixes, buckets, error mapping."""

from __future__ import annotations

import io
import socket

import pytest
import urllib3
from minio import Minio
from minio.error import S3Error, ServerError

from overnight.errors import (
    ObjectNotFoundError,
    OutputNotWritableError,
    StorageError,
    TransientError,
)
from overnight.storage import S3Store
from overnight.storage.s3 import map_s3_error


def test_keys_live_under_the_store_prefix(minio_client: Minio, bucket: str) -> None:
    store = S3Store(bucket, "/lab/run1/", minio_client)
    assert store.url == f"s3://{bucket}/lab/run1"
    store.write_bytes("img1/cells.csv", b"x")
    names = [o.object_name for o in minio_client.list_objects(bucket, recursive=True)]
    assert names == ["lab/run1/img1/cells.csv"]


def test_stores_with_neighbouring_prefixes_do_not_see_each_other(
    minio_client: Minio, bucket: str
) -> None:
    a = S3Store(bucket, "a", minio_client)
    ab = S3Store(bucket, "ab", minio_client)
    whole = S3Store(bucket, "", minio_client)
    a.write_bytes("x.txt", b"a")
    ab.write_bytes("x.txt", b"ab")
    assert [i.key for i in a.list()] == ["x.txt"]
    assert a.read_bytes("x.txt") == b"a" and ab.read_bytes("x.txt") == b"ab"
    assert [i.key for i in whole.list()] == ["a/x.txt", "ab/x.txt"]


def test_listing_skips_folder_markers_and_unsafe_names(minio_client: Minio, bucket: str) -> None:
    for name in ("p/folder/", "p/a//b.txt", "p/ok.txt"):
        minio_client.put_object(bucket, name, io.BytesIO(b""), 0)
    assert [i.key for i in S3Store(bucket, "p", minio_client).list()] == ["ok.txt"]


def test_missing_bucket_says_so_and_ensure_bucket_creates_it(minio_client: Minio) -> None:
    store = S3Store("t-not-made-yet", "x", minio_client)
    with pytest.raises(StorageError, match="bucket 't-not-made-yet' does not exist"):
        store.write_bytes("a.txt", b"a")
    store.ensure_bucket()
    store.ensure_bucket()  # already there: no error
    try:
        store.write_bytes("a.txt", b"a")
        assert store.read_bytes("a.txt") == b"a"
    finally:
        store.delete("a.txt")
        minio_client.remove_bucket("t-not-made-yet")


def test_a_dead_endpoint_is_transient() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    no_retries = urllib3.PoolManager(retries=urllib3.Retry(total=0), timeout=2)
    client = Minio(
        f"127.0.0.1:{port}",
        access_key="testing",
        secret_key="testing",
        secure=False,
        region="us-east-1",
        http_client=no_retries,
    )
    store = S3Store("bucket", "", client)
    with pytest.raises(TransientError, match="connection to the S3 endpoint failed"):
        store.read_bytes("a.txt")
    with pytest.raises(TransientError):
        store.write_bytes("a.txt", b"a")


def _s3_error(code: str, status: int) -> S3Error:
    response = urllib3.HTTPResponse(body=b"", status=status)
    return S3Error(response, code, "server says no", "/b/k", "req", "host", "b", "k")


@pytest.mark.parametrize(
    ("error", "writing", "expected", "text"),
    [
        (_s3_error("NoSuchKey", 404), False, ObjectNotFoundError, "no such object"),
        (_s3_error("AccessDenied", 403), False, StorageError, "OVERNIGHT_S3_ACCESS_KEY"),
        (_s3_error("AccessDenied", 403), True, OutputNotWritableError, "bucket policy"),
        (_s3_error("InvalidAccessKeyId", 403), False, StorageError, "OVERNIGHT_S3_SECRET_KEY"),
        (_s3_error("SlowDown", 503), True, TransientError, "SlowDown"),
        (_s3_error("InternalError", 500), False, TransientError, "InternalError"),
        (_s3_error("SomethingNew", 502), False, TransientError, "SomethingNew"),
        (_s3_error("InvalidArgument", 400), False, StorageError, "InvalidArgument"),
        (ServerError("bad gateway", 502), False, TransientError, "502"),
        (urllib3.exceptions.ProtocolError("reset"), False, TransientError, "connection"),
    ],
)
def test_sdk_errors_map_to_overnight_errors(
    error: Exception, writing: bool, expected: type[Exception], text: str
) -> None:
    mapped = map_s3_error(error, "read s3://b/k", writing=writing)
    assert type(mapped) is expected
    assert "s3://b/k" in str(mapped) and text in str(mapped)


def test_unrelated_errors_are_not_mapped() -> None:
    err = ValueError("bug")
    assert map_s3_error(err, "read") is err
