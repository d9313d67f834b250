"""Storage keys and ids that can never escape a store's root.

A key is a ``/``-separated relative name such as ``results/ds1/img1/cells.csv``. It is checked
once, here, before any backend turns it into a path or an object name. There is exactly one
spelling of a valid key (no ``.``/``..``, no empty segments, no backslashes), so checking it is
enough: nothing needs to be collapsed or rewritten.

Examples
--------
>>> join_key("results", "ds1", "img1", "cells.csv")
'results/ds1/img1/cells.csv'
>>> validate_key("../etc/passwd")
Traceback (most recent call last):
...
overnight.errors.UnsafeKeyError: unsafe storage key '../etc/passwd': segment '..' leaves its folder
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from overnight.errors import UnsafeKeyError

#: Longest key S3 accepts (bytes of UTF-8).
MAX_KEY_BYTES = 1024
#: Longest file name most filesystems accept (bytes of UTF-8); applies to each segment.
MAX_SEGMENT_BYTES = 255
#: Longest dataset or image id.
MAX_ID_CHARS = 200

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
# ``~`` is the escape of encoded image ids (overnight.imaging.files.image_id_for).
_ID = re.compile(rf"^[A-Za-z0-9_~-][A-Za-z0-9._~-]{{0,{MAX_ID_CHARS - 1}}}$")
# Percent-decoding more than this many times is not a real name, it is an attack.
_MAX_UNQUOTE_ROUNDS = 4


def _reject(key: object, problem: str) -> UnsafeKeyError:
    return UnsafeKeyError(f"unsafe storage key {key!r}: {problem}")


def _decoded(segment: str) -> str:
    """``segment`` percent-decoded until stable (``%252e`` → ``%2e`` → ``.``)."""
    for _ in range(_MAX_UNQUOTE_ROUNDS):
        decoded = unquote(segment)
        if decoded == segment:
            break
        segment = decoded
    return segment


def _check_segment(key: str, segment: str) -> None:
    if segment == "":
        raise _reject(key, "empty segment (leading, trailing or doubled '/')")
    if segment in (".", ".."):
        raise _reject(key, f"segment {segment!r} leaves its folder")
    decoded = _decoded(segment)
    if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
        raise _reject(key, f"segment {segment!r} decodes to {decoded!r}")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise _reject(key, f"segment longer than {MAX_SEGMENT_BYTES} bytes")


def validate_key(key: str) -> str:
    """Check that ``key`` names an object strictly inside a store's root; return it.

    Parameters
    ----------
    key : str
        A relative ``/``-separated key, e.g. ``results/ds1/img1/cells.csv``.

    Returns
    -------
    str
        ``key`` itself: a valid key has a single spelling, so nothing is rewritten.

    Raises
    ------
    UnsafeKeyError
        If ``key`` is empty, absolute, has a drive letter, a backslash, NUL or another control
        character, an empty, ``.`` or ``..`` segment (also percent-encoded, ``%2e%2e``), or is
        longer than S3 allows. The message quotes the key.
    """
    if not isinstance(key, str):
        raise _reject(key, f"must be a str, not {type(key).__name__}")
    if key == "":
        raise _reject(key, "empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise _reject(key, "contains NUL or a control character")
    if "\\" in key:
        raise _reject(key, "contains a backslash; use '/' between segments")
    if key.startswith("/"):
        raise _reject(key, "absolute; keys are relative to the store's root")
    if _DRIVE_LETTER.match(key):
        raise _reject(key, "starts with a drive letter")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise _reject(key, f"longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        _check_segment(key, segment)
    return key


def validate_prefix(prefix: str) -> str:
    """Check a listing prefix: ``""``, a key, or a key followed by ``/``; return it.

    The last segment may be partial (``results/ds1/im`` lists ``img1/…`` and ``img2/…``).
    """
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def validate_id(value: str) -> str:
    """Check a dataset or image id: letters, digits and ``._~-``, 1–200 chars, no leading ``.``.

    Raises
    ------
    UnsafeKeyError
        Quoting the id, when it breaks one of those rules (an id becomes a key segment).
    """
    if not isinstance(value, str) or not _ID.match(value):
        raise UnsafeKeyError(
            f"invalid id {value!r}: use 1-{MAX_ID_CHARS} letters, digits, '.', '_', '~' or '-', "
            "not starting with '.'"
        )
    return value


def join_key(*parts: str) -> str:
    """Join key parts with ``/``, skipping empty parts, and validate the result.

    Parts are not stripped: ``join_key("a", "/etc")`` is rejected rather than repaired.
    """
    return validate_key("/".join(part for part in parts if part != ""))
