"""The ALOHA reference benchmark's ground: our script makes a demonstration that succeeds
through gym-aloha's own task code, and it becomes a valid learning episode."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from aloe.data.aloha import INSTRUCTIONS, load_demonstrations
from aloe.learning.data import DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference_python():
    """gym-aloha in its own environment (installed on first use, about a minute)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "reference_env.sh")], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    return ROOT / ".venv-reference" / "bin" / "python"


def test_a_scripted_transfer_succeeds_through_gym_aloha_and_becomes_an_episode(reference_python, tmp_path):
    run = subprocess.run([str(reference_python), str(ROOT / "benchmarks" / "aloha_demos.py"), "--task", "transfer_cube",
                          "--episodes", "1", "--first-seed", "1", "--image-size", "48", "64", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "MUJOCO_GL": "egl"})
    assert run.returncode == 0, run.stderr[-3000:]
    seed = json.loads(run.stdout.splitlines()[0])
    # the end-effector episode hands the cube over (reward 4), and so does its joint replay
    assert (seed["script_reward"], seed["replay_reward"], seed["kept"]) == (4, 4, True), seed

    (episode,) = load_demonstrations(tmp_path, image_size=(24, 32))
    assert len(episode) == 400 and episode.joints.shape == episode.actions.shape == (400, 14)
    assert episode.outcome == "success" and episode.operator.all() and episode.instruction == INSTRUCTIONS["transfer_cube"]
    assert list(episode.image_steps) == list(range(0, 400, 10)) and episode.images.shape == (40, 3, 24, 32, 3)
    # the joints follow the commands: the replay executed them
    assert np.abs(episode.joints[1:, :6] - episode.actions[:-1, :6]).mean() < 0.05
    # three cameras, three different views
    assert np.abs(episode.images[20, 0].astype(int) - episode.images[20, 1].astype(int)).mean() > 10
    with pytest.raises(DataError, match="no ALOHA demonstrations"):
        load_demonstrations(tmp_path / "empty", image_size=(24, 32))
