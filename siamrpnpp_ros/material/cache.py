"""The data cache that downloaded material goes to, and the file hashes its manifests record."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Environment variable naming the data cache folder (Debian packages, wheels).
CACHE_ENV = "SIAMRPNPP_DATA_CACHE"


def data_cache(subfolder: str = "") -> Path:
    """``$SIAMRPNPP_DATA_CACHE`` when set, else ``~/.cache/siamrpnpp_ros/<subfolder>``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    root = Path.home() / ".cache" / "siamrpnpp_ros"
    return root / subfolder if subfolder else root


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), for data manifests and download checks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
