#!/usr/bin/env bash
# Create or refresh the development venv (.venv) on a machine without ROS:
# Python packages from tools/requirements-venv.txt, and the messages in msg/
# built with CMake into the venv prefix. Idempotent: each step is skipped while
# its inputs are unchanged, so a second run takes about a second.
#
# Usage: tools/setup_venv.sh            (VENV=path overrides .venv)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
stamp_dir="$venv/.siamrpnpp_stamps"

say() { printf '[setup] %s\n' "$*" >&2; }

fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

if [ ! -x "$venv/bin/python" ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { say "Python >= 3.10 is required ($("$python" --version 2>&1) found)"; exit 1; }
  say "creating venv at $venv"
  "$python" -m venv "$venv"
fi
mkdir -p "$stamp_dir"
vpy="$venv/bin/python"

requirements="$repo/tools/requirements-venv.txt"
want="$(fingerprint "$requirements")"
if [ "$(cat "$stamp_dir/requirements" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages (first run takes a few minutes)"
  "$vpy" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp_dir/requirements"
fi

# Messages: rebuilt when msg/, CMakeLists.txt or package.xml change, or when the
# generated module is missing.
msg_inputs=("$repo"/msg/*.msg "$repo/CMakeLists.txt" "$repo/package.xml")
want="$(fingerprint "${msg_inputs[@]}")"
if [ "$(cat "$stamp_dir/messages" 2>/dev/null)" != "$want" ] \
   || ! (cd /tmp && "$vpy" -c 'import siamrpnpp_ros.msg' 2>/dev/null); then
  say "building messages into $venv"
  build="$repo/build/venv-msgs"
  rm -rf "$build"
  log="$build.log"
  mkdir -p "$(dirname "$build")"
  if ! (
    export AMENT_PREFIX_PATH="$venv" VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
    cmake -S "$repo" -B "$build" \
      -DCMAKE_INSTALL_PREFIX="$venv" \
      -DPython3_EXECUTABLE="$vpy" \
      -DSIAMRPNPP_INSTALL_PYTHON_SOURCES=OFF \
      -DBUILD_TESTING=OFF &&
    cmake --build "$build" -j"$(nproc)" &&
    cmake --install "$build"
  ) > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "message build failed; full log: $log"
    exit 1
  fi
  echo "$want" > "$stamp_dir/messages"
fi

# Development install: the venv imports siamrpnpp_ros from this checkout, whatever
# the working directory. It must come before site-packages, where the message
# build above put a siamrpnpp_ros folder holding only the generated `msg`; the
# package's __init__ then extends its path to that folder.
site_packages="$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
pth_line="import sys; sys.path.insert(0, '$repo') if '$repo' not in sys.path else None"
if [ "$(cat "$site_packages/siamrpnpp_ros_checkout.pth" 2>/dev/null)" != "$pth_line" ]; then
  echo "$pth_line" > "$site_packages/siamrpnpp_ros_checkout.pth"
fi
