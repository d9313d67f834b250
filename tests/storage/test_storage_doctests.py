from __future__ import annotations

import doctest

import pytest

from overnight.storage import keys, url


@pytest.mark.parametrize("module", [keys, url])
def test_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
