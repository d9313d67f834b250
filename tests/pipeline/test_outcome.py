"""One sorting of errors for every runner."""

import pytest

from overnight.errors import InvalidImageError, StorageError, TransientError
from overnight.pipeline.outcome import FailureKind, sort_error


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (InvalidImageError("a.tif", "not a TIFF"), FailureKind.BAD_IMAGE, "not a TIFF"),
        (TransientError("S3 timed out"), FailureKind.TRANSIENT, "S3 timed out"),
        (ConnectionError("reset"), FailureKind.TRANSIENT, "internal error: ConnectionError: reset"),
        (StorageError("disk full"), FailureKind.ERROR, "disk full"),
        (KeyError("x"), FailureKind.BUG, "internal error: KeyError: 'x'"),
    ],
)
def test_errors_are_sorted_with_their_reason(error, kind, reason) -> None:
    failure = sort_error(error)
    assert (failure.kind, failure.reason) == (kind, reason)


def test_a_runner_may_name_more_transient_errors() -> None:
    class RedisDown(Exception):
        pass

    assert sort_error(RedisDown()).kind is FailureKind.BUG
    assert sort_error(RedisDown(), (RedisDown,)).kind is FailureKind.TRANSIENT
