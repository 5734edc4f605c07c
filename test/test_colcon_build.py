"""`colcon build` of the repository in a workspace gives an installable ROS 2 package.

Uses colcon and the ROS 2 wheels from PyPI (the same toolchain a ROS install
provides), so the CMakeLists.txt/package.xml that users build is exercised here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_PREFIX = Path(sys.prefix)


def repository_files() -> list[str]:
    """What a clone of this working tree holds: tracked files plus new ones git does not ignore."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in listing.split("\0") if name and (REPO_ROOT / name).is_file()]


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    if shutil.which("colcon", path=str(VENV_PREFIX / "bin")) is None:
        pytest.fail("colcon is not installed in this venv; run tools/setup_venv.sh")
    workspace = tmp_path_factory.mktemp("ws")
    source = workspace / "src" / "siamrpnpp_ros"
    source.mkdir(parents=True)
    for name in repository_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, source / name)
    env = dict(os.environ)
    env.update(
        AMENT_PREFIX_PATH=str(VENV_PREFIX),
        VIRTUAL_ENV=str(VENV_PREFIX),
        PATH=f"{VENV_PREFIX / 'bin'}{os.pathsep}{env['PATH']}",
    )
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [
            str(VENV_PREFIX / "bin" / "colcon"),
            "build",
            "--event-handlers",
            "console_cohesion+",
            "--cmake-args",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DBUILD_TESTING=OFF",
        ],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return workspace / "install" / "siamrpnpp_ros"


def test_share_directory_holds_launch_config_and_manifest(colcon_install: Path):
    share = colcon_install / "share" / "siamrpnpp_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "tracker.launch.py").is_file()
    assert sorted(p.name for p in (share / "config").glob("*.yaml")), "no config files installed"
    assert (colcon_install / "share" / "ament_index" / "resource_index" / "packages" / "siamrpnpp_ros").is_file()
    for msg in ("TrackedBox", "SelectTarget"):
        assert (share / "msg" / f"{msg}.msg").is_file()


def test_installed_python_package_holds_sources_and_messages(colcon_install: Path):
    site_packages = next(colcon_install.glob("lib/python3*/site-packages"))
    package = site_packages / "siamrpnpp_ros"
    assert (package / "__init__.py").read_text() == (REPO_ROOT / "siamrpnpp_ros" / "__init__.py").read_text(), (
        "the install must carry the package's own __init__.py, not rosidl's empty one"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site_packages)
    # The development venv puts this checkout first on sys.path; a user's install has no checkout.
    probe = (
        f"import sys; sys.path = [p for p in sys.path if p != {str(REPO_ROOT)!r}]; "
        "import siamrpnpp_ros, siamrpnpp_ros.msg as m; "
        "from siamrpnpp_ros.msg import TrackedBox, SelectTarget; "
        "assert TrackedBox.STATUS_LOST == 3; "
        "print(siamrpnpp_ros.__file__)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(site_packages)), result.stdout


def test_ros2_run_programs_and_the_console_page_are_installed(colcon_install: Path):
    """`ros2 run siamrpnpp_ros tracker_node` and `... operator_console` find their programs in
    lib/siamrpnpp_ros, and the console's page ships inside the installed Python package."""
    for program in ("tracker_node", "operator_console"):
        path = colcon_install / "lib" / "siamrpnpp_ros" / program
        assert path.is_file() and os.access(path, os.X_OK), f"{path} is not an installed program"
    site_packages = next(colcon_install.glob("lib/python3*/site-packages"))
    installed = site_packages / "siamrpnpp_ros" / "tools" / "console" / "static"
    shipped = REPO_ROOT / "siamrpnpp_ros" / "tools" / "console" / "static"
    assert sorted(p.name for p in installed.iterdir()) == sorted(p.name for p in shipped.iterdir())
