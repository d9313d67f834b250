"""Stores for the storage tests: a temporary folder, and a bucket on a real S3 server.

The S3 server is moto's standalone server on 127.0.0.1 (one per session), spoken to over real
HTTP by the real ``minio`` SDK; each test gets a fresh bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio
from minio.deleteobjects import DeleteObject

from overnight.storage import LocalStore, ObjectStore, S3Store

BACKENDS = ["local", "s3"]


def make_client(endpoint: str) -> Minio:
    return Minio(
        endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1"
    )


@pytest.fixture
def minio_client(s3_endpoint: str) -> Minio:
    return make_client(s3_endpoint)


@pytest.fixture
def bucket(minio_client: Minio) -> Iterator[str]:
    """A fresh, empty bucket, emptied and removed afterwards."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    minio_client.make_bucket(name)
    yield name
    objects = minio_client.list_objects(name, recursive=True)
    errors = minio_client.remove_objects(
        name, (DeleteObject(o.object_name) for o in objects if o.object_name)
    )
    assert list(errors) == []
    minio_client.remove_bucket(name)


@pytest.fixture
def s3_store(minio_client: Minio, bucket: str) -> S3Store:
    return S3Store(bucket, "root/prefix", minio_client)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """The same tests on a folder and on a bucket."""
    fixture = "local_store" if request.param == "local" else "s3_store"
    return request.getfixturevalue(fixture)
