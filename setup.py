"""pip installation of the ROS-free core (models, tracker, offline tools).

A ROS 2 workspace builds this package with colcon through CMakeLists.txt and
package.xml instead; this file is for `pip install .` without ROS.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "siamrpnpp_ros" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="siamrpnpp_ros",
    version=VERSION,
    description="SiamRPN++ visual tracking (pysot-compatible) with a ROS 2 node",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["siamrpnpp_ros", "siamrpnpp_ros.*"]),
    package_data={"siamrpnpp_ros": ["data/*", "tools/console/static/*"]},
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8,<5",
        "torch>=1.13",
        "PyYAML>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={
        "console_scripts": [
            "siamrpnpp-track=siamrpnpp_ros.track:main",
            "siamrpnpp-train=siamrpnpp_ros.train:main",
            "siamrpnpp-eval=siamrpnpp_ros.evaluate:main",
            "siamrpnpp-build-benchmark=siamrpnpp_ros.eval.builder:main",
            "siamrpnpp-ablation=siamrpnpp_ros.training.ablation:main",
            "siamrpnpp-bench=siamrpnpp_ros.bench:main",
            "siamrpnpp-export=siamrpnpp_ros.export.onnx:main",
            "siamrpnpp-tune=siamrpnpp_ros.eval.tune:main",
            "operator_console=siamrpnpp_ros.tools.console.main:main",
        ],
    },
)
