"""The ros2_control adapter: commands become one-point JointTrajectory messages."""
import pytest
from aloe_msgs.msg import JointCommand
from trajectory_msgs.msg import JointTrajectory

from aloe.graph.topics import topic
from aloe.nodes.trajectory_adapter import trajectory_point
from ros_helpers import node, spin_until
from test_bringup import bringup  # noqa: F401  (fixture)


def test_slots_without_a_joint_name_are_left_out():
    names, positions, duration = trajectory_point([0.1, 0.2, 0.3], ["a", "", "c"], 0.04)
    assert (names, positions) == (["a", "c"], [0.1, 0.3])
    assert (duration.sec, duration.nanosec) == (0, 40_000_000)
    with pytest.raises(ValueError, match="3 positions, joint_names has 2"):
        trajectory_point([0.1, 0.2, 0.3], ["a", "b"], 0.04)


def test_adapter_forwards_the_command_stream_to_the_controller_topic(bringup, rclpy_context, tmp_path):  # noqa: F811
    params = tmp_path / "adapter.yaml"
    names = [f"j{i}" if i % 7 != 6 else "" for i in range(14)]  # grippers on their own controllers
    params.write_text(f"/**/trajectory_adapter:\n  ros__parameters:\n    trajectory_topic: /arm_ctrl/joint_trajectory\n"
                      f"    joint_names: {names}\n")
    graph = bringup("--namespace", "real", "--only", "trajectory_adapter", "--params", str(params))
    assert graph.wait_for(r"\[trajectory_adapter\].*ready"), graph.output()
    tester = node(rclpy_context, "tester", namespace="/real")
    received = []
    tester.create_subscription(JointTrajectory, "/arm_ctrl/joint_trajectory", received.append, topic("command").qos)
    command = tester.create_publisher(JointCommand, "command", topic("command").qos)
    tester.create_timer(0.02, lambda: command.publish(JointCommand(positions=[0.01 * i for i in range(14)], source=JointCommand.SOURCE_POLICY)))
    assert spin_until(rclpy_context, [tester], lambda: received, timeout_s=20), graph.output()
    trajectory = received[-1]
    assert trajectory.joint_names == [n for n in names if n] and len(trajectory.points) == 1
    assert list(trajectory.points[0].positions) == pytest.approx([0.01 * i for i in range(14) if i % 7 != 6])
    assert trajectory.points[0].time_from_start.nanosec == 40_000_000
