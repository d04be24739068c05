"""What the sim robot node does each 20 ms tick, without ROS: step, keep the clock,
decide when to render, run the scripted operator, and report an episode's end once.

The node turns a `Tick` into messages; this module is tested without a graph.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from aloe.sim.disturbances import parse_disturbances
from aloe.sim.env import CONTROL_DT, CommandReport, SimRobot
from aloe.sim.operator import make_operator
from aloe.sim.tasks import Scene


@dataclass
class Tick:
    time: float  # sim clock after the step (s); never goes back, across resets too
    positions: np.ndarray
    velocities: np.ndarray
    report: CommandReport
    images: Optional[dict]  # camera name -> HxWx3 uint8, on camera ticks only
    operator_command: Optional[np.ndarray]  # the scripted operator's next command, during episodes
    outcome: Optional[tuple]  # ("success" | "failure", reason), once per episode


class SimSession:
    def __init__(self, image_size=(240, 320), camera_rate_hz: float = 5.0, start_time: float = 0.0, scripted_operator: bool = True):
        if camera_rate_hz <= 0 or camera_rate_hz > 1 / CONTROL_DT:
            raise ValueError(f"camera_rate_hz must be in (0, {1 / CONTROL_DT:g}], got {camera_rate_hz:g}")
        self.robot = SimRobot(image_size)
        self.camera_every = max(1, round(1 / (CONTROL_DT * camera_rate_hz)))
        self.clock = start_time
        self.steps = 0
        self.scripted_operator = scripted_operator
        self.operator = None
        self.episode_active = False
        self.reported = False

    def reset(self, task: str, seed: int, variant: str = "train", disturbances: str = "") -> Scene:
        """Raises SimError / DisturbanceError (one-line messages) on bad input."""
        scene = self.robot.reset(task, seed, variant, parse_disturbances(disturbances))
        self.operator = make_operator(self.robot) if self.scripted_operator else None
        self.reported = False
        return scene

    def begin_episode(self) -> None:
        """An episode started: from now on the detector's verdict is reported (once)."""
        self.episode_active, self.reported = True, False

    def end_episode(self) -> None:
        self.episode_active = False

    def tick(self, command) -> Tick:
        """One control step with `command` (None: hold the last accepted one)."""
        report = self.robot.step(self.robot.last_command if command is None else command)
        self.steps += 1
        self.clock += CONTROL_DT
        images = self.robot.render() if self.steps % self.camera_every == 0 else None
        # The operator works episodes only; between them the mux's watchdog holds the robot.
        operator_command = self.operator.act() if self.operator is not None and self.episode_active else None
        outcome = None
        if self.episode_active and not self.reported:
            status = self.robot.status()
            if status.success:
                outcome = ("success", "task detector: " + ", ".join(name for name, _ in status.stages) + " done")
            elif status.failure:
                outcome = ("failure", f"task detector: {status.failure}")
            self.reported = outcome is not None
        return Tick(self.clock, self.robot.joint_positions(), self.robot.joint_velocities(), report, images, operator_command, outcome)

    def close(self) -> None:
        self.robot.close()
