"""Stores for the storage tests: a temporary folder, and a bucket on a real S3 server.

The S3 server is moto's standalone server on 127.0.0.1 (one per session), spoken to over real
HTTP by the real ``minio`` SDK; each test gets a fresh bucket.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio
from minio.deleteobjects import DeleteObject

from overnight.storage import LocalStore, ObjectStore, S3Store

BACKENDS = ["local", "s3"]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``host:port`` of a moto S3 server running for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"{host}:{port}"
        finally:
            server.stop()


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
