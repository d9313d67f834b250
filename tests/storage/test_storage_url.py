from __future__ import annotations

from pathlib import Path

import pytest

from overnight.config import CommonSettings
from overnight.errors import ConfigError, UnsafeKeyError
from overnight.storage import LocalStore, S3Store, open_store, parse_store_url


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://bucket/a/b", "bucket", "a/b"),
        ("s3://bucket/a/b/", "bucket", "a/b"),
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
    ],
)
def test_s3_urls(url: str, bucket: str, prefix: str) -> None:
    location = parse_store_url(url)
    assert (location.scheme, location.bucket, location.prefix) == ("s3", bucket, prefix)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:///nas/lab", Path("/nas/lab")),
        ("file://localhost/nas/lab", Path("/nas/lab")),
        ("file:///nas/my%20lab", Path("/nas/my lab")),
        ("file://./rel/out", Path("rel/out")),
        ("/abs/out", Path("/abs/out")),
        ("rel/out", Path("rel/out")),
        ("overnight-results", Path("overnight-results")),
    ],
)
def test_folder_urls(url: str, path: Path) -> None:
    location = parse_store_url(url)
    assert (location.scheme, location.path) == ("file", path)


@pytest.mark.parametrize(
    "url", ["", "s3://", "s3:///prefix", "http://x/y", "file://host/x", "file://x"]
)
def test_bad_urls_raise_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_store_url(url)


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = open_store(f"file://{tmp_path}/out")
    assert isinstance(local, LocalStore) and local.root == tmp_path / "out"
    assert local.url == (tmp_path / "out").as_uri()
    monkeypatch.chdir(tmp_path)
    relative = open_store("file://./rel")
    assert isinstance(relative, LocalStore) and relative.root == tmp_path / "rel"

    settings = CommonSettings(
        s3_endpoint="http://127.0.0.1:9000", s3_access_key="k", s3_secret_key="s", s3_secure=True
    )
    s3 = open_store("s3://lab/a/b", settings)
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.url) == ("lab", "a/b", "s3://lab/a/b")
    assert s3.client._base_url.host == "127.0.0.1:9000"
    assert not s3.client._base_url.is_https  # the http:// in the endpoint wins over s3_secure


def test_open_store_refuses_bad_buckets_and_prefixes() -> None:
    with pytest.raises(ConfigError):
        open_store("s3://A_b/x")
    with pytest.raises(UnsafeKeyError):
        open_store("s3://lab/a/../b")


def test_s3_urls_without_settings_mean_aws() -> None:
    store = open_store("s3://lab-bucket/raw")
    assert isinstance(store, S3Store)
    assert store.client._base_url.host == "s3.amazonaws.com"
    assert store.client._base_url.is_https
