#!/usr/bin/env bash
# Rungs of the base-policy ladder (benchmarks/base_policy.py) on a GPU machine that reaches
# no network and has Python 3.12 with torch, numpy, opencv, pyyaml, safetensors, tokenizers,
# tqdm and tensorboard, but not our simulator's packages:
#
#   bash benchmarks/offline_ladder.sh prepare     # here, with network: fills .offline/ (~60 MB)
#   bash benchmarks/offline_ladder.sh run "drawer 1 sweep-drawer-seed1" \
#        "drawer 1 sweep-drawer-seed1-unsteered --set model.language_state_query=false"
#
# `run` (there, with .offline/ and the repository) records the demonstrations of each task
# named once, then starts every rung at once: "TASK SEED NAME [base_policy.py options...]",
# with --demos $DEMOS (300), --steps $STEPS (24000), --episodes $EPISODES (50). Rows land in
# runs/ladder/<task>.jsonl and $OUT/rows.jsonl; progress every 45 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OFFLINE=$PWD/.offline

prepare() {
  rm -rf "$OFFLINE" && mkdir -p "$OFFLINE/wheels" "$OFFLINE/gl" "$OFFLINE/site"
  local platforms=() n
  for n in 28 27 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
  # mujoco-studio (the viewer, 13 MB) is left out: `import mujoco` does not load it.
  for wheel in mujoco==4.0.0 mujoco-core==4.0.0 glfw==2.11.0 pyopengl==3.1.10; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${platforms[@]}" --platform manylinux2014_x86_64 --platform any -d "$OFFLINE/wheels" "$wheel"
  done
  # EGL through the NVIDIA driver needs the GL vendor-neutral loaders.
  local apt_options=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/offline-apt-lists)
  mkdir -p /tmp/offline-apt-lists/partial
  apt-get "${apt_options[@]}" update -qq
  (cd "$OFFLINE/gl" && apt-get "${apt_options[@]}" download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 2>/dev/null)
  # The simulator reads gym-aloha's assets without importing it: the package's files suffice.
  local aloha
  aloha=$(.venv/bin/python -c "from aloe.sim.scene import assets_dir; print(assets_dir().parent)")
  cp -r "$aloha" "$OFFLINE/site/" && find "$OFFLINE/site" -name __pycache__ -prune -exec rm -rf {} +
  .venv/bin/python benchmarks/offline_minilm.py reduce "$OFFLINE/site"
  du -sh "$OFFLINE"
}

run() {
  local start=$SECONDS
  log() { echo "[$((SECONDS - start)) s] $*"; }
  local out=${OUT:-runs/offline-ladder}
  mkdir -p "$out" /tmp/offline-logs
  export PYTHONPATH=$OFFLINE/site:$PWD/src MUJOCO_GL=egl PYTHONUNBUFFERED=1
  if ! python3 -c "import mujoco" 2>/dev/null; then  # the bare machine: install what `prepare` brought
    for deb in "$OFFLINE"/gl/*.deb; do dpkg -x "$deb" /; done
    ldconfig
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/offline-site "$OFFLINE"/wheels/*.whl
    export PYTHONPATH=/tmp/offline-site:$PYTHONPATH
  fi
  python3 benchmarks/offline_minilm.py rebuild "$OFFLINE/site"
  python3 -c "import torch; from aloe.sim.env import SimRobot; r = SimRobot(); r.reset('drawer', 0); r.render(); print('rendering; cuda', torch.cuda.is_available())"
  local demos=${DEMOS:-300} steps=${STEPS:-24000} episodes=${EPISODES:-50} cores spec tasks=() task
  cores=$(nproc)
  for spec in "$@"; do read -r task _ <<<"$spec"; [[ " ${tasks[*]} " == *" $task "* ]] || tasks+=("$task"); done
  log "demonstrations: ${tasks[*]}"
  for task in "${tasks[@]}"; do
    python3 -c "from pathlib import Path; from aloe.data import demonstrations as d; \
print('$task', len(d.record('$task', range($demos), Path('runs/demos/$task'), workers=max(1, $cores // ${#tasks[@]}))), 'demonstrations')" &
  done
  wait
  log "BC and evaluation: $# rungs"
  local pids=() workers=$((cores / $# > 1 ? cores / $# : 1))
  for spec in "$@"; do
    read -r task seed name options <<<"$spec"
    # shellcheck disable=SC2086  # options are words for base_policy.py
    python3 benchmarks/base_policy.py --task "$task" --seed "$seed" --name "$name" --demos "$demos" --steps "$steps" \
      --episodes "$episodes" --threads 2 --workers "$workers" $options > "/tmp/offline-logs/$name.log" 2>&1 &
    pids+=($!)
  done
  (while sleep 45; do
     for f in /tmp/offline-logs/*.log; do echo "$(basename "$f" .log): $(tail -c 300 "$f" | tr '\r' '\n' | grep -av '^$' | tail -1 | cut -c1-120)"; done
     log tick
   done) &
  local monitor=$! failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  kill "$monitor"
  log "done"
  for f in /tmp/offline-logs/*.log; do grep -ah '^{' "$f" || { echo "$f failed:"; tail -c 1500 "$f"; }; done | tee "$out/rows.jsonl"
  return $failed
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare | run \"TASK SEED NAME [options]\" ..." >&2; exit 2 ;;
esac
