#!/usr/bin/env bash
# The ALOHA reference benchmark's environment, .venv-reference: gym-aloha with the MuJoCo and
# dm-control it runs on (requirements-reference.txt), apart from aloe's .venv, whose MuJoCo 4
# dm-control does not accept. Skipped when up to date; about a minute otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-reference"
wanted="$(sha256sum "$root/requirements-reference.txt" | cut -d' ' -f1)"
say() { printf '[reference-env] %s\n' "$*"; }

if [ -f "$venv/.aloe-reference" ] && [ "$(cat "$venv/.aloe-reference")" = "$wanted" ]; then
  say "up to date: $venv"
  exit 0
fi
start=$SECONDS
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
say "installing requirements-reference.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements-reference.txt" 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
MUJOCO_GL=egl "$venv/bin/python" -c "import dm_control.mujoco, gym_aloha" \
  || { echo "[reference-env] error: gym-aloha does not import in $venv" >&2; exit 1; }
echo "$wanted" > "$venv/.aloe-reference"
say "done in $((SECONDS - start)) s: $venv"
