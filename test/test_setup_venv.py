"""tools/setup_venv.sh is idempotent: once the venv is set up, a run does no work.

`make setup` passes a relative ``VENV=.venv``; the script once checked the generated
messages with that relative path from another directory, failed, and rebuilt them on
every run. The test runs the script twice the way the Makefile does, against the venv
running this test, and requires the second run to print nothing and to be quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO_ROOT / "tools" / "setup_venv.sh"


def _run_setup(venv: Path) -> tuple[subprocess.CompletedProcess, float]:
    # Relative VENV from the venv's parent folder, as `make setup` runs it from the checkout.
    env = dict(os.environ, VENV=venv.name)
    start = time.monotonic()
    result = subprocess.run(
        ["bash", str(SETUP_SCRIPT)], check=False, cwd=venv.parent, env=env, capture_output=True, text=True, timeout=900
    )
    return result, time.monotonic() - start


def test_second_setup_run_does_no_work():
    venv = Path(sys.prefix)
    if sys.prefix == sys.base_prefix or not (venv / ".siamrpnpp_stamps").is_dir():
        # Never point the script at an interpreter it did not set up (it would pip-install into it).
        pytest.skip(f"{venv} is not a venv made by tools/setup_venv.sh")
    first, _ = _run_setup(venv)
    assert first.returncode == 0, first.stderr
    second, seconds = _run_setup(venv)
    assert second.returncode == 0, second.stderr
    work = [line for line in second.stderr.splitlines() if line.startswith("[setup]")]
    assert not work, f"the second run still did work: {work}"
    assert seconds < 15, f"the second run took {seconds:.1f} s"
