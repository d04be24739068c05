"""Disturbances injected into a simulated episode, each at a strength in [0, 1].

    robot.reset("sorting", seed=4, disturbances=parse_disturbances("push:0.5,drop:0.2"))

Each kind is a small dataclass: `start(rng)` makes a fresh instance for one episode
(seeded, so an episode with disturbances is still reproducible) and `apply(robot, command)`
runs every control step, returning the command actually executed.

- noise:    Gaussian noise on every executed joint target (std up to 0.02 rad)
- drop:     each command is lost with this probability; the previous one runs again
- push:     shoves a random task object sideways, about one every 2 s (up to 0.5 m/s)
- displace: once, between 2 s and 6 s, a container jumps up to 5 cm sideways
"""
from dataclasses import dataclass, field, replace

import numpy as np

from aloe.sim.env import CONTROL_DT
from aloe.sim.scene import DOF


class DisturbanceError(ValueError):
    """A disturbance specification that cannot be parsed; the message says what is valid."""


@dataclass
class ActionNoise:
    strength: float
    rng: np.random.Generator = field(default=None, repr=False)

    def start(self, rng):
        return replace(self, rng=rng)

    def apply(self, robot, command):
        noise = self.rng.normal(0.0, 0.02 * self.strength, DOF)
        noise[[6, 13]] = 0.0  # the grippers are open/closed commands, not angles
        return command + noise


@dataclass
class DroppedActions:
    strength: float  # probability that a command is lost
    rng: np.random.Generator = field(default=None, repr=False)
    previous: np.ndarray = field(default=None, repr=False)

    def start(self, rng):
        return replace(self, rng=rng, previous=None)

    def apply(self, robot, command):
        if self.previous is not None and self.rng.random() < self.strength:
            return self.previous
        self.previous = np.array(command)
        return command


@dataclass
class Push:
    strength: float
    rate_hz: float = 0.5
    duration_s: float = 0.06
    rng: np.random.Generator = field(default=None, repr=False)
    until: float = field(default=-1.0, repr=False)
    body: int = field(default=-1, repr=False)

    def start(self, rng):
        return replace(self, rng=rng, until=-1.0, body=-1)

    def apply(self, robot, command):
        data = robot.data
        if self.body >= 0 and robot.time >= self.until:
            data.xfrc_applied[self.body] = 0.0
            self.body = -1
        if self.body < 0 and self.rng.random() < self.rate_hz * CONTROL_DT:
            obj = robot.scene.objects[self.rng.integers(len(robot.scene.objects))]
            angle = self.rng.uniform(0, 2 * np.pi)
            self.body = robot.model.body(obj.name).id
            force = robot.model.body_mass[self.body] * 0.5 * self.strength / self.duration_s
            data.xfrc_applied[self.body, :3] = force * np.array([np.cos(angle), np.sin(angle), 0.0])
            self.until = robot.time + self.duration_s
        return command


@dataclass
class DisplaceTarget:
    strength: float
    rng: np.random.Generator = field(default=None, repr=False)
    when: float = field(default=0.0, repr=False)
    done: bool = field(default=False, repr=False)

    def start(self, rng):
        return replace(self, rng=rng, when=float(rng.uniform(2.0, 6.0)), done=False)

    def apply(self, robot, command):
        if not self.done and robot.time >= self.when:
            self.done = True
            containers = robot.scene.containers
            name = list(containers)[self.rng.integers(len(containers))]
            angle = self.rng.uniform(0, 2 * np.pi)
            x, y, yaw = containers[name]
            moved = (x + 0.05 * self.strength * np.cos(angle), y + 0.05 * self.strength * np.sin(angle), yaw)
            containers[name] = moved  # detectors and the scripted operator see the new pose
            robot.task.move_container(robot.model, robot.data, name, moved)
        return command


KINDS = {"noise": ActionNoise, "drop": DroppedActions, "push": Push, "displace": DisplaceTarget}


def parse_disturbances(spec: str) -> list:
    """'push:0.5,drop:0.2' -> disturbances; '' or 'none' -> none."""
    spec = spec.strip()
    if spec in ("", "none"):
        return []
    disturbances = []
    for part in spec.split(","):
        kind, _, value = part.strip().partition(":")
        if kind not in KINDS:
            raise DisturbanceError(f"unknown disturbance '{kind}' (valid: {', '.join(KINDS)}; e.g. 'push:0.5,drop:0.2')")
        try:
            strength = float(value) if value else 1.0
        except ValueError:
            raise DisturbanceError(f"disturbance '{kind}' needs a strength in [0, 1], got '{value}'") from None
        if not 0.0 <= strength <= 1.0:
            raise DisturbanceError(f"disturbance '{kind}' needs a strength in [0, 1], got {strength:g}")
        disturbances.append(KINDS[kind](strength))
    return disturbances
