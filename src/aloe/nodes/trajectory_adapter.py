"""Real-robot adapter: the arbitrated `command` stream as `trajectory_msgs/JointTrajectory`
for a ros2_control joint trajectory controller.

Each 50 Hz command becomes a one-point trajectory reaching its positions `lookahead_s`
from now (a header stamp of zero: the controller starts it on receipt and replaces the
previous one). `joint_names` maps the command's 14 slots to the controller's joints, in
order; an empty name leaves that slot out (a gripper driven by its own controller).
"""
import sys

from aloe_msgs.msg import JointCommand
from builtin_interfaces.msg import Duration
from rclpy.node import Node
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from aloe.graph.topics import NEWEST_ONLY_QOS, STREAM_QOS, topic
from aloe.nodes.entry import NodeConfigError, declare_checked, run
from aloe.sim.scene import JOINT_NAMES

PARAMETERS = {
    "trajectory_topic": "/joint_trajectory_controller/joint_trajectory",
    "joint_names": list(JOINT_NAMES),  # one per command slot; "" skips the slot
    "lookahead_s": 0.04,  # two control ticks: the controller interpolates towards it
}


def trajectory_point(positions, joint_names, lookahead_s: float):
    """(names, positions, time_from_start) for the slots that have a joint name."""
    if len(positions) != len(joint_names):
        raise ValueError(f"command has {len(positions)} positions, joint_names has {len(joint_names)}")
    kept = [(name, float(p)) for name, p in zip(joint_names, positions) if name]
    seconds = int(lookahead_s)
    duration = Duration(sec=seconds, nanosec=int(round((lookahead_s - seconds) * 1e9)))
    return [n for n, _ in kept], [p for _, p in kept], duration


class TrajectoryAdapter(Node):
    def __init__(self):
        super().__init__("trajectory_adapter")
        declare_checked(self, PARAMETERS)
        self.joint_names = list(self.get_parameter("joint_names").value)
        self.lookahead_s = self.get_parameter("lookahead_s").value
        if not any(self.joint_names):
            raise NodeConfigError("trajectory_adapter: joint_names names no joint")
        if self.lookahead_s <= 0:
            raise NodeConfigError(f"trajectory_adapter: lookahead_s must be positive, got {self.lookahead_s}")
        self.output = self.create_publisher(JointTrajectory, self.get_parameter("trajectory_topic").value, STREAM_QOS)
        self.create_subscription(JointCommand, topic("command").name, self.on_command, NEWEST_ONLY_QOS)

    def on_command(self, msg: JointCommand) -> None:
        try:
            names, positions, duration = trajectory_point(msg.positions, self.joint_names, self.lookahead_s)
        except ValueError as error:
            self.get_logger().error(f"not forwarded: {error}", throttle_duration_sec=1.0)
            return
        trajectory = JointTrajectory(joint_names=names, points=[JointTrajectoryPoint(positions=positions, time_from_start=duration)])
        self.output.publish(trajectory)


def main():
    sys.exit(run(TrajectoryAdapter))


if __name__ == "__main__":
    main()
