"""Debian packages as a data cache: ``apt-get download`` + ``dpkg -x``, never a system install.

Real photos and object cut-outs for training and benchmarks come from Debian
packages (see ``training/sources.py`` for which). A package is downloaded into
``CACHE/debs`` and unpacked into ``CACHE/<package>_<version>/``, so nothing is
installed system-wide and several versions can sit side by side. The default
cache is ``$SIAMRPNPP_DATA_CACHE`` or ``~/.cache/siamrpnpp_ros/debian``.

``apt-get`` needs no root for ``download``; it does need up-to-date package lists
(``apt-get update``, as root). Without apt (another distribution, a container
without lists) :class:`DebianDataError` says so in one line.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .cache import data_cache, file_digest


class DebianDataError(RuntimeError):
    """A Debian data package that cannot be fetched (no apt, unknown package, download failed)."""


def default_cache() -> Path:
    """``$SIAMRPNPP_DATA_CACHE``, else ``~/.cache/siamrpnpp_ros/debian``."""
    return data_cache("debian")


@dataclass(frozen=True)
class UnpackedPackage:
    """A package unpacked into the cache: ``root`` holds its file tree (``root/usr/share/...``)."""

    name: str
    version: str
    root: Path

    def path(self, relative: str) -> Path:
        """A path inside the package, e.g. ``usr/share/tuxpaint/stamps``."""
        return self.root / relative


def _run(command: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise DebianDataError(
            f"{command[0]} not found: Debian data packages need apt-get and dpkg (Debian/Ubuntu)"
        ) from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise DebianDataError(f"{' '.join(command)} failed: {message[-1] if message else done.returncode}")
    return done.stdout


def candidate_version(package: str) -> str:
    """The version apt would download (``apt-cache policy``); DebianDataError if unknown."""
    for line in _run(["apt-cache", "policy", package]).splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate" and value.strip() not in ("", "(none)"):
            return value.strip()
    raise DebianDataError(f"apt knows no package {package!r}; run 'apt-get update' (as root) and check the name")


def _safe_version(version: str) -> str:
    return version.replace(":", "%3a")


def fetch_package(package: str, cache: Path | None = None) -> UnpackedPackage:
    """Download and unpack ``package`` into ``cache`` (a no-op when already there)."""
    cache = Path(cache) if cache is not None else default_cache()
    version = candidate_version(package)
    root = cache / f"{package}_{_safe_version(version)}"
    if (root / ".complete").is_file():
        return UnpackedPackage(package, version, root)
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    deb = debs / f"{package}_{_safe_version(version)}_all.deb"
    if not deb.is_file():
        found = sorted(debs.glob(f"{package}_{_safe_version(version)}_*.deb"))
        if not found:
            _run(["apt-get", "download", f"{package}={version}"], cwd=debs)
            found = sorted(debs.glob(f"{package}_{_safe_version(version)}_*.deb"))
        if not found:
            raise DebianDataError(f"apt-get download {package} left no .deb in {debs}")
        deb = found[0]
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _run(["dpkg", "-x", str(deb), str(partial)])
    (partial / ".complete").write_text(f"{package} {version}\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return UnpackedPackage(package, version, root)


def manifest_entries(package: UnpackedPackage, files: Iterable[Path]) -> dict[str, str]:
    """``{path relative to the package root: sha256}`` for ``files`` of ``package``."""
    return {str(Path(f).relative_to(package.root)): file_digest(Path(f)) for f in sorted(files)}
