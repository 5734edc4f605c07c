"""The programs refuse a torch or NumPy older than the supported minimum with one line, exit code 2.

The end-to-end checks run the real entry points in a child process whose torch (or NumPy)
reports an old version: if a program stopped calling the check, or the check stopped
refusing, the program would print its --help and exit 0 instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siamrpnpp_ros.requirements_check import MINIMUM_VERSIONS, major_minor, unsupported_message

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY_MODULES = (
    "siamrpnpp_ros.track",
    "siamrpnpp_ros.train",
    "siamrpnpp_ros.evaluate",
    "siamrpnpp_ros.bench",
    "siamrpnpp_ros.export",
    "siamrpnpp_ros.tracker_node",
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.mark.parametrize(
    "version, expected",
    [
        ("2.13.0+cpu", (2, 13)),
        ("1.13.0a0", (1, 13)),
        ("1.13.0a0+gitunknown", (1, 13)),
        ("1.24.2", (1, 24)),
        ("nonsense", None),
    ],
)
def test_major_minor(version, expected):
    assert major_minor(version) == expected


@pytest.mark.parametrize(
    "versions",
    [
        {"torch": "1.13.0a0", "numpy": "1.24.2"},  # Debian 12's python3-torch and python3-numpy
        {"torch": "2.13.0+cpu", "numpy": "2.4.6"},
        {"torch": "2.5.0a0+872d972e41.nv24.08", "numpy": "1.26.4"},  # a JetPack wheel
    ],
)
def test_supported_versions_pass(versions):
    assert unsupported_message(versions) is None


def test_old_torch_is_refused_with_the_fix():
    message = unsupported_message({"torch": "1.12.1", "numpy": "1.24.2"})
    assert message is not None and "\n" not in message
    assert "torch 1.12.1 is installed, 1.13 or newer is needed" in message
    assert "pip install 'torch>=1.13'" in message
    assert '--skip-keys "python3-torch"' in message
    assert "numpy" not in message


def test_old_numpy_and_missing_torch_are_named_together():
    message = unsupported_message({"torch": None, "numpy": "1.21.5"})
    assert message is not None and "\n" not in message
    assert "torch is not installed" in message and "numpy 1.21.5 is installed, 1.24 or newer is needed" in message
    assert "pip install 'torch>=1.13' 'numpy>=1.24'" in message
    assert '--skip-keys "python3-torch python3-numpy"' in message


def test_minimums_are_the_oldest_tested_distribution_packages():
    assert MINIMUM_VERSIONS["torch"][0] == (1, 13) and MINIMUM_VERSIONS["numpy"][0] == (1, 24)


def test_track_cli_refuses_an_old_torch_in_a_real_process():
    code = (
        "import torch, runpy, sys; torch.__version__ = '1.12.1'; sys.argv = ['siamrpnpp-track', '--help']; "
        "runpy.run_module('siamrpnpp_ros.track', run_name='__main__', alter_sys=True)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "torch 1.12.1 is installed, 1.13 or newer is needed" in lines[0]
    assert "pip install 'torch>=1.13'" in lines[0] and "--skip-keys" in lines[0]


@pytest.mark.parametrize("package, old", [("torch", "1.12.1"), ("numpy", "1.21.5")])
def test_every_entry_point_refuses_before_doing_anything(package, old):
    """Each program's ``python -m`` path, run with --help: exit 2 and the one line, no help, no traceback."""
    code = f"""
import contextlib, io, json, runpy, sys
import {package}
{package}.__version__ = {old!r}
results = {{}}
for module in {ENTRY_MODULES!r}:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [module, "--help"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        status = "returned"
    except SystemExit as stop:
        status = stop.code
    except BaseException as error:
        status = "raised " + type(error).__name__
    results[module] = [status, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for module, (status, out, err) in results.items():
        assert status == 2, (module, status, out, err)
        assert out == "", (module, out)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"{package} {old} is installed" in lines[0], (module, err)
