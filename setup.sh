#!/usr/bin/env bash
# Sets up aloe in a project-local virtual environment (.venv) on a machine without ROS 2:
#   1. creates .venv and installs requirements.txt (torch 2.13.0 CPU, ROS 2 Kilted wheels, ...);
#   2. points the wheels' CMake configs at this machine's Python and numpy headers;
#   3. builds msgs/ (aloe_msgs) with colcon straight into .venv;
#   4. installs the aloe Python package (editable) with its `aloe` command.
# Every step is skipped when its inputs have not changed, so a re-run takes seconds.
# Afterwards .venv/bin/aloe works without sourcing anything.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$root/.venv"
py="$venv/bin/python"
stamps="$venv/.aloe-setup"
start=$SECONDS

step() { printf '[setup] %s\n' "$*"; }
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }
# This machine kind's pip.conf names local package folders that may not exist; pip warns
# about each for every package. Drop that noise, keep everything else and pip's status.
pip_install() {
  "$py" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
up_to_date() { [ -f "$stamps/$1" ] && [ "$(cat "$stamps/$1")" = "$2" ]; }

if [ ! -x "$py" ]; then
  step "creating virtual environment in .venv"
  python3 -m venv "$venv"
fi
mkdir -p "$stamps"

# 1. Python packages.
reqs=$(fingerprint "$root/requirements.txt" "$root/requirements-assets.txt")
if up_to_date requirements "$reqs"; then
  step "python packages: up to date"
else
  step "installing python packages (torch, ROS 2 Kilted wheels, colcon, ...)"
  pip_install -r "$root/requirements.txt"
  pip_install --no-deps -r "$root/requirements-assets.txt"
  echo "$reqs" > "$stamps/requirements"
fi

# 2. The wheels' CMake configs name include directories of the machine they were built on.
"$py" "$root/scripts/fix_wheel_cmake_paths.py" "$venv"

# 3. Interfaces: colcon builds aloe_msgs into the venv prefix, whose lib/ the ROS wheels
#    already put on the library path of every Python process they start.
msgs=$(cd "$root" && fingerprint colcon.meta msgs/package.xml msgs/CMakeLists.txt msgs/msg/* msgs/srv/*)
if up_to_date msgs "$msgs" && "$py" -c "import aloe_msgs.msg" 2>/dev/null; then
  step "aloe_msgs: up to date"
else
  step "building msgs/ (aloe_msgs) with colcon"
  build="$root/build/colcon"
  mkdir -p "$build"
  if ! (cd "$build" && PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" \
        "$venv/bin/colcon" --log-base "$build/log" build \
          --base-paths "$root/msgs" --metas "$root/colcon.meta" \
          --build-base "$build" --install-base "$venv" --merge-install \
          --cmake-args "-DPython3_EXECUTABLE=$py" > "$build/build.log" 2>&1); then
    tail -n 30 "$build/build.log" >&2
    echo "[setup] error: building msgs/ failed; full log in build/colcon/build.log" >&2
    exit 1
  fi
  echo "$msgs" > "$stamps/msgs"
fi

# 4. The aloe package itself (editable: the checkout is what runs).
pkg=$(cd "$root" && fingerprint setup.py setup.cfg package.xml)
if up_to_date package "$pkg" && [ -x "$venv/bin/aloe" ]; then
  step "aloe package: up to date"
else
  step "installing the aloe package (editable)"
  pip_install --no-deps --no-build-isolation -e "$root"
  echo "$pkg" > "$stamps/package"
fi

step "done in $((SECONDS - start)) s: run .venv/bin/aloe --help"
