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
    stages_done: tuple = ()  # names of the task's stages done now, while an episode is judged


OPERATOR_MODES = ("demonstrate", "takeover")


class SimSession:
    """`operator_mode`: "demonstrate" drives every episode from its start; "takeover" waits
    for `take_over()` (a critic's request, or `takeover_after_s` of episode time) and then
    drives from whatever state the policy left."""

    def __init__(self, image_size=(240, 320), camera_rate_hz: float = 5.0, start_time: float = 0.0, scripted_operator: bool = True,
                 operator_mode: str = "demonstrate", takeover_after_s: float = 0.0):
        if camera_rate_hz < 0 or camera_rate_hz > 1 / CONTROL_DT:
            raise ValueError(f"camera_rate_hz must be in [0, {1 / CONTROL_DT:g}] (0: no images), got {camera_rate_hz:g}")
        if operator_mode not in OPERATOR_MODES:
            raise ValueError(f"operator_mode must be one of {', '.join(OPERATOR_MODES)}, got '{operator_mode}'")
        self.operator_mode, self.takeover_after_s = operator_mode, takeover_after_s
        self.operator_driving = False
        self.episode_steps = 0
        self.robot = SimRobot(image_size)
        self.camera_every = max(1, round(1 / (CONTROL_DT * camera_rate_hz))) if camera_rate_hz > 0 else 0
        self.clock = start_time
        self.steps = 0
        self.scripted_operator = scripted_operator
        self.operator = None
        self.episode_active = False
        self.reported = False

    def reset(self, task: str, seed: int, variant: str = "train", disturbances: str = "") -> Scene:
        """Raises SimError / DisturbanceError (one-line messages) on bad input."""
        scene = self.robot.reset(task, seed, variant, parse_disturbances(disturbances))
        # In takeover mode the operator is made when it takes over, from the state it finds then.
        self.operator = make_operator(self.robot) if self.scripted_operator and self.operator_mode == "demonstrate" else None
        self.reported = False
        return scene

    def begin_episode(self) -> None:
        """An episode started: from now on the detector's verdict is reported (once)."""
        self.episode_active, self.reported = True, False
        self.episode_steps = 0
        self.operator_driving = self.scripted_operator and self.operator_mode == "demonstrate"

    def take_over(self) -> bool:
        """The scripted operator takes over from the state the robot is in; False if it
        already drives or there is none."""
        if not self.scripted_operator or self.operator_driving or not self.episode_active:
            return False
        self.operator = make_operator(self.robot)  # plans from here, not from the episode's start
        self.operator_driving = True
        return True

    def end_episode(self) -> None:
        self.episode_active = False

    def tick(self, command, operator_waits: bool = False) -> Tick:
        """One control step with `command` (None: hold the last accepted one). With
        `operator_waits` the scripted operator repeats its last command instead of acting."""
        report = self.robot.step(self.robot.last_command if command is None else command)
        self.steps += 1
        self.clock += CONTROL_DT
        images = self.robot.render() if self.camera_every and self.steps % self.camera_every == 0 else None
        if self.episode_active:
            self.episode_steps += 1
            if self.takeover_after_s > 0 and self.episode_steps * CONTROL_DT >= self.takeover_after_s:
                self.take_over()
        # The operator works episodes only; between them the mux's watchdog holds the robot.
        driving = self.operator is not None and self.episode_active and self.operator_driving
        operator_command = None
        if driving:
            operator_command = self.operator.hold() if operator_waits else self.operator.act()
        outcome, stages_done = None, ()
        if self.episode_active and not self.reported:
            status = self.robot.status()
            stages_done = tuple(name for name, done in status.stages if done)
            if status.success:
                outcome = ("success", "task detector: " + ", ".join(name for name, _ in status.stages) + " done")
            elif status.failure:
                outcome = ("failure", f"task detector: {status.failure}")
            self.reported = outcome is not None
        return Tick(self.clock, self.robot.joint_positions(), self.robot.joint_velocities(), report, images, operator_command, outcome,
                    stages_done)

    def close(self) -> None:
        self.robot.close()
