"""The code stays as the style guide asks: ruff (with pydocstyle, numpy convention) and mypy."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else shutil.which(name) or name


def test_ruff_is_clean():
    result = subprocess.run(
        [tool("ruff"), "check", "shared", "services", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_library():
    result = subprocess.run(
        [tool("mypy"), "shared/overnight"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
