"""The declared ranges of h2rpc's runtime dependencies, and a check of what is installed.

``setup.cfg``'s ``install_requires`` gives each dependency as ``name>=floor[,<=ceiling]``. CI runs
the transport tests at both ends of each range (transport/ uses private names of h2, hpack and
hyperframe); this script prints the pins for one end and checks that a virtualenv has them.

Usage::

    python scripts/dependency_range.py --pins floor          # one "name==version" per line
    python scripts/dependency_range.py --check-installed ceiling

Only the standard library: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import configparser
import re
import sys
from importlib import metadata
from pathlib import Path

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
REQUIREMENT = re.compile(
    r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)\s*(?:,\s*<=\s*([0-9][0-9.]*))?$"
)


def declared_ranges() -> dict[str, tuple[str, str | None]]:
    """``{name: (floor, ceiling or None)}`` from install_requires."""
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    ranges: dict[str, tuple[str, str | None]] = {}
    for line in config["options"]["install_requires"].splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        match = REQUIREMENT.match(line)
        if match is None:
            raise SystemExit(f"setup.cfg: cannot read the range of {line!r} (name>=x[,<=y])")
        ranges[match.group(1).lower()] = (match.group(2), match.group(3))
    return ranges


def pins(end: str) -> list[str]:
    """``name==version`` for each dependency with a version at that end of its range."""
    result = []
    for name, (floor, ceiling) in declared_ranges().items():
        version = floor if end == "floor" else ceiling
        if version is not None:
            result.append(f"{name}=={version}")
    return result


def check_installed(end: str) -> int:
    wrong = []
    for pin in pins(end):
        name, version = pin.split("==")
        installed = metadata.version(name)
        print(f"{name}: installed {installed}, {end} {version}")
        if installed != version:
            wrong.append(f"{name} {installed} (expected {version})")
    if wrong:
        print(f"not at the {end} of setup.cfg's ranges: {', '.join(wrong)}", file=sys.stderr)
        if end == "ceiling":
            print(
                "A newer release within the range, or a ceiling that is not the newest release: "
                "test the new release, then move the upper bound.",
                file=sys.stderr,
            )
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--pins", choices=("floor", "ceiling"))
    group.add_argument("--check-installed", choices=("floor", "ceiling"))
    args = parser.parse_args()
    if args.pins:
        print("\n".join(pins(args.pins)))
        return 0
    return check_installed(args.check_installed)


if __name__ == "__main__":
    sys.exit(main())
