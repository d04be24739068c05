#!/usr/bin/env bash
# A separate environment, .venv-lerobot, holding LeRobot's own dataset reader
# (lerobot-dataset, LeRobotDataset v3), so a test can check that `aloe export` writes
# datasets LeRobot reads. aloe's own .venv never needs it.
#
# Why separate, and why this torch: lerobot-dataset pins numpy < 2.3 (aloe runs 2.4) and
# imports torchvision, whose PyPI wheels are built against PyPI's CUDA torch: beside the CPU
# torch that aloe pins, `import torchvision` fails ("operator torchvision::nms does not
# exist"). So this environment takes the CUDA torch wheel (about 6 GB installed; it runs on
# the CPU) and torchcodec, LeRobot's default video decoder, which loads the system FFmpeg.
# Skipped when already installed; takes about 6 minutes otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-lerobot"
packages=(torch==2.14.1 torchvision==0.29.1 "torchcodec==0.14.*" lerobot-dataset==0.4.4)
say() { printf '[lerobot-reader] %s\n' "$*"; }

if [ -f "$venv/.aloe-reader" ] && [ "$(cat "$venv/.aloe-reader")" = "${packages[*]}" ]; then
  say "up to date: $venv"
  exit 0
fi

# torchcodec decodes with the system's FFmpeg libraries.
if ! ldconfig -p | grep -q 'libavcodec\.so'; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "[lerobot-reader] error: FFmpeg's libraries are missing: install them (Debian: sudo apt-get install ffmpeg) and run again" >&2
    exit 1
  fi
  say "installing FFmpeg's libraries (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg > /dev/null
fi

start=$SECONDS
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
say "installing ${packages[*]}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}" 2>&1 \
  | { grep -v -e "is ignored: it is neither a file nor a directory" -e "does not provide the extra" || true; }
"$venv/bin/python" -c "import torchcodec.decoders, ledataset.datasets.lerobot_dataset" 2>/dev/null \
  || { echo "[lerobot-reader] error: the reader does not import in $venv" >&2; exit 1; }
echo "${packages[*]}" > "$venv/.aloe-reader"
say "done in $((SECONDS - start)) s: $venv"
