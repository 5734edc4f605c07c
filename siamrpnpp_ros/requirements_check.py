"""Start-up refusal of a torch or NumPy older than the oldest versions this package is tested on.

The command-line programs and the node call :func:`require_supported_versions` first thing.
An old distribution package (Ubuntu 22.04's python3-numpy 1.21, a python3-torch older than
1.13) would otherwise fail somewhere deep inside with a confusing traceback; instead the
program prints one line naming the installed version, the minimum and the fix, and exits
with code 2.

The minimums are the versions of Debian 12's packages (python3-torch 1.13.1, python3-numpy
1.24.2), which ``make test`` runs the core and parity tests against (``make test-distro``).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Mapping

# module -> (oldest supported major.minor, rosdep key in package.xml)
MINIMUM_VERSIONS: Mapping[str, tuple[tuple[int, int], str]] = {
    "torch": ((1, 13), "python3-torch"),
    "numpy": ((1, 24), "python3-numpy"),
}
EXIT_UNSUPPORTED = 2


def major_minor(version: str) -> tuple[int, int] | None:
    """(major, minor) of a version string such as '2.13.0+cpu' or Debian's '1.13.0a0'."""
    match = re.match(r"\s*(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def installed_versions() -> dict[str, str | None]:
    """``{module: __version__ or None when it cannot be imported}``, by importing each module."""
    versions: dict[str, str | None] = {}
    for name in MINIMUM_VERSIONS:
        try:
            versions[name] = str(importlib.import_module(name).__version__)
        except Exception:  # noqa: BLE001 - any failure to import means: not usable
            versions[name] = None
    return versions


def unsupported_message(versions: Mapping[str, str | None]) -> str | None:
    """The one-line refusal for these installed versions, or None when all are supported."""
    problems, requirements, keys = [], [], []
    for name, (minimum, rosdep_key) in MINIMUM_VERSIONS.items():
        version = versions.get(name)
        wanted = f"{minimum[0]}.{minimum[1]}"
        if version is None:
            problems.append(f"{name} is not installed (needs {wanted} or newer)")
        else:
            parsed = major_minor(version)
            if parsed is None or parsed >= minimum:  # an unreadable version is given the benefit of the doubt
                continue
            problems.append(f"{name} {version} is installed, {wanted} or newer is needed")
        requirements.append(f"'{name}>={wanted}'")
        keys.append(rosdep_key)
    if not problems:
        return None
    return (
        f"siamrpnpp_ros: {'; '.join(problems)}. Fix: pip install {' '.join(requirements)} "
        f'(with rosdep: rosdep install --from-paths src --ignore-src -y --skip-keys "{" ".join(keys)}", '
        "then the pip command)"
    )


def require_supported_versions() -> None:
    """Exit with code 2 and one line on stderr when torch or NumPy is missing or too old."""
    message = unsupported_message(installed_versions())
    if message is not None:
        print(message, file=sys.stderr)
        raise SystemExit(EXIT_UNSUPPORTED)
