"""The ALOHA reference benchmark's scripted demonstrations (`benchmarks/aloha_demos.py`, one
.npz per episode from gym-aloha's own tasks) as the episodes `aloe train` learns from.

gym-aloha's joint vector is ours in shape: per arm six joint positions and the gripper
(normalised there, 0 closed to 1 open), 14 in all, and the action is the joint target. Its
top camera stands for aloe's head camera and its wrist cameras for ours. Every step is the
script's (the operator's), and a kept demonstration succeeded. No ROS, no MuJoCo.
"""
from pathlib import Path

import numpy as np

from aloe.learning.camera_view import resize_images
from aloe.learning.data import DataError, Episode

INSTRUCTIONS = {
    "transfer_cube": "pick up the red cube with the right arm and hand it over to the left arm",
    "insertion": "pick up the peg and the socket and insert the peg into the socket",
}


def load_demonstration(path: Path, image_size, head_crop=()) -> Episode:
    try:
        with np.load(path) as data:
            task = str(data["task"])
            joints, actions = data["qpos"], data["actions"]
            images, image_steps = data["images"], data["image_steps"]
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: not a demonstration file ({error})") from None
    if task not in INSTRUCTIONS:
        raise DataError(f"{path}: unknown ALOHA task '{task}'")
    return Episode(
        joints=joints, actions=actions, operator=np.ones(len(actions), bool), outcome="success",
        instruction=INSTRUCTIONS[task], images=np.stack([resize_images(cameras, image_size, head_crop) for cameras in images]),
        image_steps=image_steps, task=task, episode_id=Path(path).stem,
    )


def load_demonstrations(folder: Path, image_size, head_crop=(), limit=None) -> list:
    """The folder's demonstrations in name (seed) order, the first `limit` of them if given."""
    paths = sorted(Path(folder).glob("*.npz"))[:limit]
    if not paths:
        raise DataError(f"no ALOHA demonstrations (.npz) in {folder}")
    return [load_demonstration(path, image_size, head_crop) for path in paths]
