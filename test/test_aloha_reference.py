"""The ALOHA reference benchmark's ground: our script makes a demonstration that succeeds
through gym-aloha's own task code, it becomes a valid learning episode, and the evaluation's
rollout, stepping that task in the reference environment, executes chunks as they were planned."""
import importlib.util
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


def load_benchmark():
    spec = importlib.util.spec_from_file_location("aloha_reference", ROOT / "benchmarks" / "aloha_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scripted(reference_python, task: str, seed: int, out: Path) -> dict:
    """One seed of `aloha_demos.py` (48x64 cameras): its JSON line; a kept episode lands in `out`."""
    run = subprocess.run([str(reference_python), str(ROOT / "benchmarks" / "aloha_demos.py"), "--task", task,
                          "--episodes", "1", "--first-seed", str(seed), "--image-size", "48", "64", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "MUJOCO_GL": "egl"})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[0])


@pytest.fixture(scope="module")
def demonstration(reference_python, tmp_path_factory):
    """Seed 1's scripted transfer, replayed and kept, as its JSON line and folder."""
    out = tmp_path_factory.mktemp("aloha")
    return scripted(reference_python, "transfer_cube", 1, out), out


def test_a_scripted_transfer_succeeds_through_gym_aloha_and_becomes_an_episode(demonstration):
    seed, folder = demonstration
    # the end-effector episode hands the cube over (reward 4), and so does its joint replay
    assert (seed["script_reward"], seed["script_success"], seed["replay_reward"], seed["kept"]) == (4, True, 4, True), seed

    (episode,) = load_demonstrations(folder, image_size=(24, 32))
    assert len(episode) == 400 and episode.joints.shape == episode.actions.shape == (400, 14)
    assert episode.outcome == "success" and episode.operator.all() and episode.instruction == INSTRUCTIONS["transfer_cube"]
    assert list(episode.image_steps) == list(range(0, 400, 10)) and episode.images.shape == (40, 3, 24, 32, 3)
    # the joints follow the commands: the replay executed them
    assert np.abs(episode.joints[1:, :6] - episode.actions[:-1, :6]).mean() < 0.05
    # three cameras, three different views
    assert np.abs(episode.images[20, 0].astype(int) - episode.images[20, 1].astype(int)).mean() > 10
    with pytest.raises(DataError, match="no ALOHA demonstrations"):
        load_demonstrations(folder / "empty", image_size=(24, 32))


def test_a_scripted_insertion_puts_the_peg_in_the_socket_through_gym_aloha(reference_python, tmp_path):
    """Seed 0: the end-effector script reaches the pin (reward 4), and so does the replay of
    its joints in gym-aloha's joint-space insertion; the kept file is a valid episode."""
    seed = scripted(reference_python, "insertion", 0, tmp_path)
    assert (seed["script_reward"], seed["script_success"], seed["replay_reward"], seed["kept"]) == (4, True, 4, True), seed
    (episode,) = load_demonstrations(tmp_path, image_size=(24, 32))
    assert episode.task == "insertion" and episode.instruction == INSTRUCTIONS["insertion"] and len(episode) == 400
    # both grippers closed on their objects mid-episode (0: closed, 1: open) after opening to reach them
    assert episode.actions[100, [6, 13]].min() > 0.5 and episode.actions[300, [6, 13]].max() < 0.05


class DemonstrationChunks:
    """Stands in for the policy: each chunk it is asked for is the demonstration's next
    `horizon` commands from where the previous chunk started plus `replan_every`."""

    version = "demonstration"

    def __init__(self, actions, horizon, replan_every):
        self.actions, self.horizon, self.replan_every = actions, horizon, replan_every
        self.observations = []

    def act(self, joints, images, instruction, generator):
        start = len(self.observations) * self.replan_every
        self.observations.append((joints, images))
        chunk = self.actions[start:start + self.horizon]
        return np.concatenate([chunk, np.repeat(chunk[-1:], self.horizon - len(chunk), axis=0)])


def test_the_evaluation_rollout_hands_over_when_its_chunks_are_the_demonstration(demonstration):
    """gym-aloha's task, stepped by the server in the reference environment, replays the kept
    demonstration chunk by chunk: the same start, the chunks' commands in turn, the top reward.
    A rollout that kept executing its first chunk, or a server that put the cube elsewhere
    (another seed's start), reaches reward 0 (tried)."""
    _, folder = demonstration
    benchmark = load_benchmark()
    with np.load(next(folder.glob("*.npz"))) as data:
        actions, first_joints = data["actions"], data["qpos"][0]
    policy = DemonstrationChunks(actions, horizon=50, replan_every=25)
    env = benchmark.ReferenceEnv("transfer_cube", (48, 64))
    try:
        result = benchmark.rollout(policy, env, seed=1, instruction=INSTRUCTIONS["transfer_cube"], replan_every=25,
                                   temporal_ensembling=False)
    finally:
        env.close()
    assert result["success"] and result["max_reward"] == 4, result
    assert len(policy.observations) == 400 // 25  # a chunk every 25 steps, cameras rendered each time
    joints, images = policy.observations[0]
    assert np.allclose(joints, first_joints) and images.shape == (3, 48, 64, 3)
