#!/usr/bin/env bash
# The distribution lane of `make test`: the core and parity tests on the oldest supported
# stack, Debian 12's packages python3-torch 1.13, python3-numpy 1.24 and python3-opencv
# 4.6 (what rosdep gives for package.xml's keys there), in a venv over the system Python
# (--system-site-packages). The ROS tests are not run here; the main lane runs them.
#
# Installs the packages with apt-get when they are missing and this runs as root. Where
# that is not possible it prints a SKIP line and exits 0, except under CI (CI set), where
# it fails: CI must run this lane.
#
# Usage: tools/test_distro.sh [pytest arguments]   (DISTRO_VENV=path overrides build/venv-distro)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DISTRO_VENV:-$repo/build/venv-distro}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
system_python=/usr/bin/python3
packages=(python3-torch python3-numpy python3-opencv python3-yaml python3-venv python3-pytest
          python3-tqdm python3-matplotlib)

say() { printf '[distro] %s\n' "$*" >&2; }
skip() {
  if [ -n "${CI:-}" ]; then
    say "cannot run the distribution lane under CI: $*"
    exit 1
  fi
  printf 'SKIP: distribution lane (Debian python3-torch/numpy/opencv): %s\n' "$*"
  exit 0
}

command -v dpkg-query >/dev/null 2>&1 || skip "not a Debian-based system (no dpkg-query)"
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    skip "needs ${missing[*]}; install them as root (apt-get install --no-install-recommends ...)"
  fi
  say "installing ${missing[*]} with apt-get (about a minute and a half)"
  log="$repo/build/distro-apt.log"
  mkdir -p "$(dirname "$log")"
  if ! (export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends "${packages[@]}" \
          || { apt-get update && apt-get install -y --no-install-recommends "${packages[@]}"; }
       ) > "$log" 2>&1; then
    tail -n 20 "$log" >&2
    skip "apt-get could not install ${missing[*]} (log: $log)"
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv over the system Python"
  "$system_python" -m venv --system-site-packages "$venv"
fi
vpy="$venv/bin/python"
"$vpy" -c 'import torch, numpy, cv2, yaml, pytest' \
  || skip "the system Python cannot import torch, numpy, cv2, yaml and pytest"
versions="$("$vpy" -c 'import sys, torch, numpy, cv2; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}, opencv {cv2.__version__}")')"
say "$versions"

# Everything but the tests that need ROS, colcon, the generated messages or the main venv.
cd "$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
# ROS test files are named *_ros.py; the others listed import ROS packages, colcon or aiohttp.
exec "$vpy" -m pytest -p no:cacheprovider -m "not ros" --ignore-glob='test/*_ros.py' \
  --ignore=test/test_colcon_build.py --ignore=test/test_conversions.py --ignore=test/test_latency_bench.py \
  --ignore=test/test_package_manifest.py --ignore=test/test_setup_venv.py --ignore=test/test_console.py \
  "$@"
