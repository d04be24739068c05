"""Trainer: watches the bag folder; when `min_new_episodes` finished episodes have arrived
since the last round, trains a round (`aloe train --bags`, in a child process so this node
stays responsive and a crash in training cannot take it down), starting from the running
checkpoint, and hands the result to the policy's `load_checkpoint`.
"""
import subprocess
import sys
from pathlib import Path

from aloe_msgs.srv import LoadCheckpoint
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from aloe.learning.config import ALGORITHMS
from aloe.nodes.entry import NodeConfigError, declare_checked, run

PARAMETERS = {
    "bags_dir": "bags",
    "out_dir": "runs/trainer",
    "algo": "aloe",
    "config": "",  # TrainConfig YAML for `aloe train --config`; empty: its defaults
    "init_checkpoint": "",  # the checkpoint the robot runs now; empty: the first round starts with BC
    "min_new_episodes": 10,
    "check_every_s": 5.0,
}


def finished_bags(folder: Path) -> set:
    """Names of the episode bags whose recorder closed them."""
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.is_dir() and (p / "metadata.yaml").exists()}


class Trainer(Node):
    def __init__(self):
        super().__init__("trainer")
        self.training = None  # destroy_node needs it, also after a refused configuration
        declare_checked(self, PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.bags_dir, self.out_dir = Path(value("bags_dir")).expanduser(), Path(value("out_dir")).expanduser()
        self.algo, self.config = value("algo"), value("config")
        self.min_new = value("min_new_episodes")
        if self.algo not in ALGORITHMS:
            raise NodeConfigError(f"trainer: algo must be one of {', '.join(ALGORITHMS)}, got '{self.algo}'")
        if self.min_new < 1:
            raise NodeConfigError(f"trainer: min_new_episodes must be >= 1, got {self.min_new}")
        if self.config and not Path(self.config).is_file():
            raise NodeConfigError(f"trainer: config {self.config} does not exist")
        self.current = value("init_checkpoint") or None
        self.used = set()  # bags already trained on
        self.round, self.target = 0, None
        self.pending_bags = set()  # the bags the round in progress trains on
        self.load = self.create_client(LoadCheckpoint, "load_checkpoint")
        self.create_timer(value("check_every_s"), self.check, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def check(self) -> None:
        if self.training is not None:
            self.collect()
            return
        new = finished_bags(self.bags_dir) - self.used
        if len(new) < self.min_new:
            return
        self.round += 1
        self.target = self.out_dir / f"round-{self.round:03d}" / "model.safetensors"
        command = [sys.executable, "-m", "aloe.cli", "train", "--algo", self.algo, "--bags", str(self.bags_dir),
                   "--out", str(self.target), "--no-progress"]
        if self.config:
            command += ["--config", self.config]
        if self.current:
            command += ["--init", self.current]
        self.get_logger().info(f"round {self.round}: {len(new)} new episodes, training {self.algo} on {self.bags_dir}")
        self.pending_bags = new
        self.target.parent.mkdir(parents=True, exist_ok=True)
        with open(self.target.parent / "train.log", "w") as log:  # the child keeps its own handle
            self.training = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def collect(self) -> None:
        code = self.training.poll()
        if code is None:
            return
        self.training = None
        self.used |= self.pending_bags  # tried: a failing round is not retried on the same bags
        if code != 0:
            tail = (self.target.parent / "train.log").read_text().strip().splitlines()[-1:] or ["no output"]
            self.get_logger().error(f"round {self.round} failed (exit {code}): {tail[0]}; see {self.target.parent / 'train.log'}")
            return
        self.current = str(self.target)
        self.get_logger().info(f"round {self.round}: wrote {self.target}; asking the policy to load it")
        if not self.load.service_is_ready():
            self.get_logger().warning("no policy offers load_checkpoint; the checkpoint waits on disk")
            return
        self.load.call_async(LoadCheckpoint.Request(path=str(self.target))).add_done_callback(self.loaded)

    def loaded(self, future) -> None:
        response = future.result()
        if response.success:
            self.get_logger().info(f"the policy runs round {self.round} now (version {response.policy_version})")
        else:
            self.get_logger().error(f"the policy refused round {self.round}: {response.message}")

    def destroy_node(self):
        if self.training is not None:
            self.training.terminate()
        super().destroy_node()


def main():
    sys.exit(run(Trainer))


if __name__ == "__main__":
    main()
