"""Print requirements from pyproject.toml, one per line, for pip inside the Dockerfile.

``python extras.py`` prints the core dependencies; ``--only EXTRA`` prints one optional group
(``qc``, ``analysis``, ``models``, ``gpu``, ``dispatch``) without them. A self-reference such as
``overnight[analysis]`` inside a group is expanded to that group's lines (so ``--only models``
lists TensorFlow and the analysis libraries); the wheel of the repository itself is installed
separately, without dependencies.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from typing import Any


def group_lines(
    project: dict[str, Any], extra: str, seen: frozenset[str] = frozenset()
) -> list[str]:
    """The requirement lines of one optional group, self-references expanded (each once)."""
    groups = project.get("optional-dependencies", {})
    if extra not in groups:
        raise SystemExit(
            f"no optional-dependency group {extra!r} in pyproject.toml; have {sorted(groups)}"
        )
    lines: list[str] = []
    for line in groups[extra]:
        match = re.fullmatch(rf"{re.escape(project['name'])}\[([^\]]+)\]", line.strip())
        if match is None:
            lines.append(line)
            continue
        for name in (n.strip() for n in match.group(1).split(",")):
            if name not in seen | {extra}:
                lines += group_lines(project, name, seen | {extra})
    return list(dict.fromkeys(lines))


def main() -> None:
    """Print the chosen requirement lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="one optional-dependency group instead of the core")
    parser.add_argument("--pyproject", default="pyproject.toml")
    args = parser.parse_args()
    with open(args.pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    lines = group_lines(project, args.only) if args.only else project["dependencies"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
