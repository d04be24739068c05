"""Scripted demonstrations recorded in process, without the graph: the operator drives the
simulator step by step, so no command is late and none is lost (through the graph at full
speed 14-29 % of demonstrations fail on timing alone; in process the operator succeeds in
about 100 %: `benchmarks/sim.py`).

Each episode is what a recorded bag gives `aloe train` (joints, executed commands, images
at the cameras' rate, outcome, instruction), plus the simulator's object state at every
step for the privileged diagnostic (`ModelConfig.privileged_state_dim`). Episodes are saved
one file each, so a run cut off goes on where it stopped and a folder is reused.

    from aloe.data.demonstrations import record
    paths = record("insertion", seeds=range(100), folder=Path("runs/demos/insertion"))
    episodes = load(paths, image_size=(96, 128))
"""
import os
from pathlib import Path

import numpy as np

from aloe.learning.data import Episode, stages_reached

RENDER_SIZE = (240, 320)  # the sim node's camera size
CAMERA_EVERY = 10  # control steps between image sets: the sim node's 5 Hz cameras


def command_lag(joints: np.ndarray, actions: np.ndarray, longest: int = 6) -> int:
    """The shift (steps) at which the arm joints best follow the commands: 2 in process (a
    command is sent after one step and executed in the next); more when commands come late."""
    errors = [np.abs(joints[k:, :6] - actions[: len(actions) - k, :6]).mean() for k in range(longest)]
    return int(np.argmin(errors))


def action_mismatch(bag_joints, bag_actions, joints, actions, same_pose=0.01, differ=0.05):
    """(share of matched steps whose actions differ, matched steps): each in-process step is
    matched to the bag step nearest in all joints, if within `same_pose` on every joint (the
    grippers too: while one closes the arms stand still, and their pose alone matched the
    wrong step)."""
    differs = []
    for pose, action in zip(joints, actions):
        distance = np.abs(bag_joints - pose).max(axis=1)
        nearest = int(np.argmin(distance))
        if distance[nearest] < same_pose:
            differs.append(np.abs(bag_actions[nearest] - action).max() > differ)
    return (float(np.mean(differs)) if differs else None), len(differs)


class EpisodeRecording:
    """One episode's steps as they are saved: the joints measured and the object state before
    each step, the command executed in it, the task's stages done after it, and the cameras'
    images at the steps they shot. `demonstrate` fills one with the scripted operator driving,
    an evaluation's rollout with a policy (`aloe.experiment.evaluation.evaluate(record_to=...)`)."""

    def __init__(self):
        self.joints, self.actions, self.states, self.images, self.image_steps, self.done = [], [], [], [], [], []

    def before_step(self, robot, images=None) -> None:
        """`images`: the cameras' frames (cameras, h, w, 3) when they shot at this step."""
        self.joints.append(robot.joint_positions())
        self.states.append(robot.object_state())
        if images is not None:
            self.images.append(images)
            self.image_steps.append(len(self.actions))

    def after_step(self, robot, stages_done) -> None:
        """`stages_done`: one bool per task stage, in its order."""
        self.actions.append(robot.last_command.copy())
        self.done.append(list(stages_done))

    def arrays(self, outcome: str, instruction: str, task: str, seed: int, variant: str, operator: bool, render_size) -> dict:
        """What a recording file holds: joints, actions, state (T, .), images (N, 3, h, w, 3),
        image_steps, operator (T,) whether the operator drove each step, outcome,
        instruction, stage_progress (T,), task, seed, variant."""
        steps = len(self.actions)
        return {
            # The commands exactly as executed (float64): replayed from the same scene they give
            # the same episode, where float32's rounding grows into another one at the first contact.
            "joints": np.asarray(self.joints, dtype=np.float32), "actions": np.asarray(self.actions, dtype=np.float64),
            "state": np.asarray(self.states, dtype=np.float32),
            "images": np.asarray(self.images, dtype=np.uint8) if self.images else np.zeros((0, 3, *render_size, 3), np.uint8),
            "image_steps": np.asarray(self.image_steps, dtype=np.int64), "operator": np.full(steps, operator),
            "outcome": outcome, "instruction": instruction, "task": task, "seed": seed, "variant": variant,
            "stage_progress": stages_reached(self.done) / len(self.done[0]),
        }


def save_recording(arrays: dict, path: Path) -> Path:
    """Write one episode's arrays; a file that exists is a whole episode (a crash leaves a
    .partial file behind, never a cut one under the final name)."""
    partial = Path(path).with_suffix(".partial.npz")
    np.savez_compressed(partial, **arrays)  # flat-shaded renders: ~25x smaller
    os.replace(partial, path)
    return Path(path)


def demonstrate(task: str, seed: int, variant: str = "train", render_size=RENDER_SIZE, camera_every: int = CAMERA_EVERY) -> dict:
    """One scripted episode as `EpisodeRecording.arrays`, the operator driving every step."""
    from aloe.sim.env import SimRobot
    from aloe.sim.operator import make_operator
    from aloe.sim.scene import CAMERAS

    robot = SimRobot(render_size)
    try:
        scene = robot.reset(task, seed, variant)
        operator = make_operator(robot)
        recording = EpisodeRecording()
        outcome = None
        while outcome is None:
            images = None
            if camera_every and len(recording.actions) % camera_every == 0:
                rendered = robot.render()
                images = np.stack([rendered[camera] for camera in CAMERAS])
            recording.before_step(robot, images)
            robot.step(operator.act())
            status = robot.status()
            recording.after_step(robot, [stage_done for _, stage_done in status.stages])
            outcome = "success" if status.success else "failure" if status.failure else None
    finally:
        robot.close()
    return recording.arrays(outcome, scene.instruction, task, seed, variant, operator=True, render_size=render_size)


def episode_path(folder: Path, task: str, seed: int, variant: str) -> Path:
    return Path(folder) / f"{task}-{variant}-{seed:06d}.npz"


def _record_one(job) -> Path:
    task, seed, variant, folder = job
    path = episode_path(folder, task, seed, variant)
    if not path.exists():
        save_recording(demonstrate(task, seed, variant, RENDER_SIZE), path)
    return path


def record(task: str, seeds, folder: Path, variant: str = "train", workers: int = 2, progress=None) -> list:
    """Record (or reuse) one demonstration per seed in `folder`; the episode files, in seed order."""
    import contextlib
    import multiprocessing

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(task, int(seed), variant, folder) for seed in seeds]
    paths = []
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else contextlib.nullcontext()
    with pool:
        for path in (pool.imap if workers > 1 else map)(_record_one, jobs):
            paths.append(path)
            if progress:
                progress(len(paths), len(jobs))
    return paths


def load(paths, image_size=None, privileged: bool = False, successes_only: bool = False, head_crop=()) -> list:
    """Episodes for `aloe.learning.train`: images as the encoder sees them (`image_size`,
    `head_crop`; None: no images); with `privileged`, the object state appended to each
    step's joints."""
    from aloe.learning.camera_view import resize_images

    episodes = []
    for path in paths:
        with np.load(path, allow_pickle=False) as arrays:
            outcome = str(arrays["outcome"])
            if successes_only and outcome != "success":
                continue
            joints = arrays["joints"]
            if privileged:
                joints = np.concatenate([joints, arrays["state"]], axis=1)
            images = image_steps = None
            if image_size is not None:
                images = np.stack([resize_images(frame, image_size, head_crop) for frame in arrays["images"]])
                image_steps = arrays["image_steps"]
            progress = arrays["stage_progress"] if "stage_progress" in arrays else None  # recorded since the stages reward
            # A policy's deployments say who drove; demonstrations before that field were all the operator's.
            operator = arrays["operator"] if "operator" in arrays else np.ones(len(arrays["actions"]), bool)
            episodes.append(Episode(joints, arrays["actions"], operator, outcome,
                                    str(arrays["instruction"]), images, image_steps, str(arrays["task"]), Path(path).stem,
                                    progress))
    return episodes
