"""gym-aloha's joint-space tasks, stepped for a policy in another process.

Runs in the reference environment (gym-aloha's dm-control needs a MuJoCo older than aloe's),
started by `benchmarks/aloha_reference.py`, which runs aloe's policy in aloe's environment and
talks to this one over stdin/stdout, one JSON line each way per request:

    {"op": "reset", "seed": S, "render": true}   the state `AlohaTransferCube-v0.reset(seed=S)` gives
    {"op": "step", "action": [14 floats], "render": false}
    {"op": "close"}

Each answer carries the joint positions ("qpos", 14), the task's reward ("reward", 0..4 for
transfer cube and insertion) and, when asked, the top and both wrist cameras
("images": base64 of a (3, H, W, 3) uint8 array, "shape"). Only what the policy looks at is
rendered, when it looks: rendering every step would cost most of the time.
The task code, assets, physics step and reward are gym-aloha's own, unchanged; what
differs from `gym.make(...)` is only that the observation renders on request.
"""
import argparse
import base64
import json
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; before dm_control loads MuJoCo

import numpy as np
from dm_control import mujoco
from dm_control.rl import control
from gym_aloha.constants import ASSETS_DIR, DT
from gym_aloha.tasks import sim as joint_tasks
from gym_aloha.utils import sample_box_pose, sample_insertion_pose

CAMERAS = ("top", "left_wrist", "right_wrist")  # aloe's head, left wrist and right wrist
TASKS = {
    "transfer_cube": (joint_tasks.TransferCubeTask, "bimanual_viperx_transfer_cube.xml"),
    "insertion": (joint_tasks.InsertionTask, "bimanual_viperx_insertion.xml"),
}


def unrendered(task_class):
    class Unrendered(task_class):
        def get_observation(self, physics):
            return {"qpos": self.get_qpos(physics)}

    return Unrendered


class Server:
    def __init__(self, task: str, image_size):
        task_class, xml = TASKS[task]
        self.task, self.image_size = task, image_size
        self.physics = mujoco.Physics.from_xml_path(str(ASSETS_DIR / xml))
        self.env = control.Environment(self.physics, unrendered(task_class)(), float("inf"), control_timestep=DT,
                                       n_sub_steps=None, flat_observation=False)

    def reset(self, seed: int) -> dict:
        # what gym-aloha's AlohaEnv.reset(seed) sets before it resets the dm-control env
        self.env.task.random.seed(seed)
        self.env.task._random = np.random.RandomState(seed)
        joint_tasks.BOX_POSE[0] = sample_box_pose(seed) if self.task == "transfer_cube" else np.concatenate(sample_insertion_pose(seed))
        timestep = self.env.reset()
        return {"qpos": timestep.observation["qpos"].tolist(), "reward": 0}

    def step(self, action) -> dict:
        timestep = self.env.step(np.asarray(action, dtype=np.float64))
        return {"qpos": timestep.observation["qpos"].tolist(), "reward": int(timestep.reward)}

    def render(self) -> np.ndarray:
        """The cameras now, (3, H, W, 3) uint8."""
        height, width = self.image_size
        return np.stack([self.physics.render(height=height, width=width, camera_id=camera) for camera in CAMERAS]).astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--image-size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    args = parser.parse_args()
    server = Server(args.task, args.image_size)
    print(json.dumps({"ready": args.task}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "close":
            break
        if request["op"] == "reset":
            answer = server.reset(int(request["seed"]))
        elif request["op"] == "step":
            answer = server.step(request["action"])
        else:
            answer = {"error": f"unknown op {request['op']!r}"}
        if request.get("render"):
            images = server.render()
            answer.update(images=base64.b64encode(images.tobytes()).decode("ascii"), shape=list(images.shape))
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
