"""The node's OpenMP wait policy (tracker_node.quiet_openmp_waits), in fresh interpreters:
libgomp reads it when torch loads, so it must be set before that and never over a user's choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import os, sys; from siamrpnpp_ros.tracker_node import quiet_openmp_waits as q; "
    "print('torch' in sys.modules, q(), os.environ.get('OMP_WAIT_POLICY'))"
)


def probe(**environment: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    env.update(environment, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout.strip()


def test_passive_waits_unless_the_user_chose():
    assert probe() == "False True PASSIVE", "set before torch is imported"
    assert probe(OMP_WAIT_POLICY="ACTIVE") == "False False ACTIVE"
    assert probe(GOMP_SPINCOUNT="10000") == "False False None"


def test_too_late_once_torch_is_loaded():
    import torch  # noqa: F401

    from siamrpnpp_ros.tracker_node import quiet_openmp_waits

    saved = {name: os.environ.pop(name, None) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    try:
        assert quiet_openmp_waits() is False and "OMP_WAIT_POLICY" not in os.environ
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
