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
# Absolute, so that the checks below that run from another directory (cd /tmp) find it.
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
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

# >>> training/evaluation extras (siamrpnpp_ros/training, siamrpnpp_ros/eval) >>>
# Both steps are optional conveniences: the tests and tools work without them (the
# benchmark builder falls back to scikit-image photos or generated textures; the
# evaluator skips CSRT/KCF with a message). A failed attempt is remembered in a stamp
# so later runs stay fast; delete the stamp to retry.
# 1. Real photos for the benchmark builder: Debian's opencv-doc, only if missing and
#    only when running as root with apt-get available.
opencv_doc_data=/usr/share/doc/opencv-doc/examples/data
if [ ! -d "$opencv_doc_data" ] && [ ! -f "$stamp_dir/opencv-doc.failed" ] \
   && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing Debian's opencv-doc (sample photos for the benchmark builder)"
  if ! (export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends opencv-doc \
          || { apt-get update && apt-get install -y --no-install-recommends opencv-doc; }
       ) > "$stamp_dir/opencv-doc.log" 2>&1; then
    touch "$stamp_dir/opencv-doc.failed"
    say "could not install opencv-doc (log: $stamp_dir/opencv-doc.log); the builder will use other photos"
  fi
fi
# 2. OpenCV contrib (CSRT/KCF baselines) of the same version as the venv's cv2, in a
#    side folder so it never replaces the cv2 the tracker's crops are checked against.
contrib_dir="$venv/opencv-contrib"
cv_version="$("$vpy" -c 'from importlib.metadata import version; print(version("opencv-python-headless"))' 2>/dev/null || true)"
if [ -n "$cv_version" ] && [ "$(cat "$stamp_dir/opencv-contrib" 2>/dev/null)" != "$cv_version" ] \
   && [ "$(cat "$stamp_dir/opencv-contrib.failed" 2>/dev/null)" != "$cv_version" ]; then
  say "installing opencv-contrib-python-headless==$cv_version into $contrib_dir (CSRT/KCF baselines)"
  rm -rf "$contrib_dir"
  if "$vpy" -m pip install --quiet --disable-pip-version-check --no-deps --target "$contrib_dir" \
       "opencv-contrib-python-headless==$cv_version" > "$stamp_dir/opencv-contrib.log" 2>&1; then
    echo "$cv_version" > "$stamp_dir/opencv-contrib"
  else
    rm -rf "$contrib_dir"
    echo "$cv_version" > "$stamp_dir/opencv-contrib.failed"
    say "could not install opencv-contrib (log: $stamp_dir/opencv-contrib.log); CSRT/KCF will be skipped"
  fi
fi
# <<< training/evaluation extras <<<

# The operator console's browser tests (test/test_console_ros.py) drive Debian's chromium
# through Debian's chromium-driver: installed as root with apt, as opencv-doc above. CI runs
# as root, where the tests must run; elsewhere they skip with the command to run, said once here.
if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } \
   && [ ! -f "$stamp_dir/chromium.failed" ] && [ ! -f "$stamp_dir/chromium.skipped" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium and chromium-driver (browser tests of the operator console)"
    if ! (export DEBIAN_FRONTEND=noninteractive
          apt-get install -y --no-install-recommends chromium chromium-driver \
            || { apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; }
         ) > "$stamp_dir/chromium.log" 2>&1; then
      touch "$stamp_dir/chromium.failed"
      say "could not install chromium and chromium-driver (log: $stamp_dir/chromium.log); the browser tests will fail"
    fi
  else
    touch "$stamp_dir/chromium.skipped"
    say "the operator console's browser tests need Debian's chromium and chromium-driver, which only root can" \
        "install: sudo apt-get install chromium chromium-driver (until then they are skipped)"
  fi
fi
