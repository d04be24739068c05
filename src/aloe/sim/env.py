"""The simulated robot without ROS: reset to a task, step 50 Hz joint commands, observe.

    robot = SimRobot()
    robot.reset("insertion", seed=3, variant="train")
    report = robot.step(command)          # 14 joint targets, gripper normalised to [0, 1]
    images = robot.render()               # {"head", "left_wrist", "right_wrist"}: HxWx3 uint8
    robot.status()                        # stages, success, failure

Physics runs at 2 ms; one control step is 20 ms. Images are rendered only when asked,
because rendering costs far more than physics.
"""
import os
from dataclasses import dataclass
from typing import Optional

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the mujoco import

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from aloe.sim.scene import CAMERAS, DOF, HOME, LOWER, PHYSICS_DT, UPPER, RobotIndex, build_model  # noqa: E402
from aloe.sim.tasks import TASKS, VARIANTS, Scene  # noqa: E402

CONTROL_DT = 0.02


class SimError(ValueError):
    """Bad input to the simulator (unknown task or variant); the message lists the valid ones."""


@dataclass
class CommandReport:
    accepted: bool
    reason: str = ""  # why a command was rejected
    clipped: bool = False  # some target was outside the joint limits


@dataclass
class Status:
    task: str
    stages: list  # [(name, done)]
    success: bool
    failure: Optional[str]
    time: float


def validate_task(task: str, variant: str) -> None:
    if task not in TASKS:
        raise SimError(f"unknown task '{task}' (valid: {', '.join(TASKS)})")
    if variant not in VARIANTS:
        raise SimError(f"unknown variant '{variant}' (valid: {', '.join(VARIANTS)})")


class SimRobot:
    def __init__(self, image_size=(240, 320)):
        self.image_size = tuple(image_size)  # (height, width)
        self.model = self.data = self.index = self.scene = self.task = None
        self.renderer = None
        self.rejected_commands = 0
        self.clipped_commands = 0
        self.last_command = HOME.copy()
        self.disturbances = []

    # -- episode -------------------------------------------------------------------------
    def reset(self, task: str, seed: int, variant: str = "train", disturbances=()) -> Scene:
        validate_task(task, variant)
        self.task = TASKS[task]
        rng = np.random.default_rng(seed)
        self.scene = self.task.sample(rng, variant, seed)
        model = build_model(self.task.objects_xml(self.scene))
        if model is not self.model:
            self.close_renderer()
            self.model, self.index = model, RobotIndex(model)
        self.data = mujoco.MjData(self.model)
        self.index.set_joint_positions(self.data, HOME)
        self.task.place(self.model, self.data, self.scene)
        mujoco.mj_forward(self.model, self.data)
        self.last_command = HOME.copy()
        self.rejected_commands = self.clipped_commands = 0
        self.disturbances = [d.start(np.random.default_rng([seed, i])) for i, d in enumerate(disturbances)]
        # Let objects settle on the table before the first command.
        for _ in range(int(0.2 / PHYSICS_DT)):
            mujoco.mj_step(self.model, self.data)
        self.data.time = 0.0
        return self.scene

    @property
    def time(self) -> float:
        return float(self.data.time)

    # -- control -------------------------------------------------------------------------
    def step(self, command) -> CommandReport:
        """Execute one 20 ms control step; an invalid command is refused and the robot holds."""
        report = self.check(command)
        if report.accepted:
            target = np.clip(np.asarray(command, dtype=float), LOWER, UPPER)
            report.clipped = not np.array_equal(target, command)
            self.clipped_commands += report.clipped
            self.last_command = target
        else:
            self.rejected_commands += 1
        executed = self.last_command
        for disturbance in self.disturbances:
            executed = disturbance.apply(self, executed)
        self.index.command(self.data, executed)
        for _ in range(round(CONTROL_DT / PHYSICS_DT)):
            mujoco.mj_step(self.model, self.data)
        return report

    @staticmethod
    def check(command) -> CommandReport:
        array = np.asarray(command, dtype=float).ravel()
        if array.size != DOF:
            return CommandReport(False, f"expected {DOF} joint positions, got {array.size}")
        if not np.all(np.isfinite(array)):
            return CommandReport(False, "command contains NaN or inf")
        return CommandReport(True)

    # -- observation ---------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return self.index.joint_positions(self.data)

    def joint_velocities(self) -> np.ndarray:
        return self.index.joint_velocities(self.data)

    def object_state(self) -> np.ndarray:
        """Privileged simulator state, for diagnostics only (no real robot has it): each
        object's position and the first two columns of its rotation matrix, each container's
        x, y, cos and sin of yaw, then what the task adds (`Task.extra_state`). Its length is
        fixed per task."""
        parts = []
        for obj in self.scene.objects:
            body = self.data.body(obj.name)
            parts += [body.xpos, body.xmat.reshape(3, 3)[:, :2].ravel()]
        for name in sorted(self.scene.containers):
            x, y, yaw = self.scene.containers[name]
            parts.append([x, y, np.cos(yaw), np.sin(yaw)])
        parts.append(self.task.extra_state(self.data, self.scene))
        return np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in parts])

    def render(self) -> dict:
        if self.renderer is None:
            height, width = self.image_size
            self.renderer = mujoco.Renderer(self.model, height=height, width=width)
            # Software rendering here: shadows and reflections cost three quarters of the
            # render time (about 45 -> 11 ms per camera) and carry nothing the policy needs.
            self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        images = {}
        for name, camera in CAMERAS.items():
            self.renderer.update_scene(self.data, camera=camera)
            images[name] = self.renderer.render().copy()
        return images

    def status(self) -> Status:
        stages = self.task.stages(self.data, self.scene)
        failure = self.task.failure(self.data, self.scene)
        if failure is None and self.time >= self.task.episode_seconds and not all(stages):
            failure = f"time limit of {self.task.episode_seconds:g} s reached"
        return Status(self.task.name, list(zip(self.task.stage_names, stages)), all(stages), failure, self.time)

    def close_renderer(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None

    def close(self) -> None:
        self.close_renderer()
