"""Fixtures of the Docker e2e tests: the engine, the images, the compose stack.

They live in ``compose_stack.py`` beside this file (the test module imports its helpers from
there too); pytest puts neither folder on sys.path, so this file does.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compose_stack import docker, images, stack  # noqa: E402, F401
