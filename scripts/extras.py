"""Print requirements from pyproject.toml, one per line, for pip inside the Dockerfile.

``python extras.py`` prints the core dependencies; ``--only EXTRA`` prints one optional group
(``models``, ``gpu``) without them. Self-references such as ``overnight[models]`` are skipped:
the wheel of the repository is installed separately, without dependencies.
"""

from __future__ import annotations

import argparse
import tomllib


def main() -> None:
    """Print the chosen requirement lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="one optional-dependency group instead of the core")
    parser.add_argument("--pyproject", default="pyproject.toml")
    args = parser.parse_args()
    with open(args.pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    if args.only:
        groups = project.get("optional-dependencies", {})
        if args.only not in groups:
            raise SystemExit(f"no optional-dependency group {args.only!r}; have {sorted(groups)}")
        lines = groups[args.only]
    else:
        lines = project["dependencies"]
    print("\n".join(line for line in lines if not line.startswith(project["name"] + "[")))


if __name__ == "__main__":
    main()
