from __future__ import annotations

import pytest

from overnight.errors import UnsafeKeyError
from overnight.storage import join_key, validate_id, validate_key
from overnight.storage.keys import validate_prefix

ATTACKS = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a/..",
    "a\\b",
    "..\\x",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "C:\\x",
    "C:/x",
    "c:x",
    ".",
    "./a",
    "",
    "a//b",
    "a/",
    "/",
    "%2e%2e/x",
    "a/%2E%2e/b",
    "a/.%2e",
    "%252e%252e/x",
    "a%2f..",
    "x" * 256,
    "a/" * 600 + "b",
]


@pytest.mark.parametrize("key", ATTACKS)
def test_unsafe_keys_are_refused_with_the_key_quoted(key: str) -> None:
    with pytest.raises(UnsafeKeyError) as info:
        validate_key(key)
    assert repr(key)[:40] in str(info.value) or repr(key)[1:40] in str(info.value)


@pytest.mark.parametrize("key", [None, 3, b"a"])
def test_non_strings_are_refused(key: object) -> None:
    with pytest.raises(UnsafeKeyError, match="must be a str"):
        validate_key(key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    ["a", "results/ds1/img1/cells.csv", ".attempts/x/labels.tif", "a..b", "...", "µm data/x y.tif"],
)
def test_safe_keys_come_back_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("prefix", ["", "results/", "results/ds1/im", "a"])
def test_listing_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "../", "a//", "a/../"])
def test_unsafe_listing_prefixes(prefix: str) -> None:
    with pytest.raises(UnsafeKeyError):
        validate_prefix(prefix)


@pytest.mark.parametrize("value", ["ds1", "img_001.tif", "A-b.c_d", "0", "x" * 200])
def test_valid_ids(value: str) -> None:
    assert validate_id(value) == value


@pytest.mark.parametrize(
    "value", ["", ".hidden", "..", "a/b", "a b", "a\\b", "é", "x" * 201, "a\x00", "a:b"]
)
def test_invalid_ids(value: str) -> None:
    with pytest.raises(UnsafeKeyError, match="invalid id"):
        validate_id(value)


def test_join_key_skips_empty_parts_and_validates() -> None:
    assert join_key("", "results", "ds1", "", "cells.csv") == "results/ds1/cells.csv"
    with pytest.raises(UnsafeKeyError):
        join_key("results", "/etc/passwd")
    with pytest.raises(UnsafeKeyError):
        join_key("results", "..", "x")
    with pytest.raises(UnsafeKeyError):
        join_key()
