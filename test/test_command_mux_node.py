"""The command mux node over real DDS: holds the measured pose, follows the policy, rejects NaN and stale commands."""
import numpy as np
from aloe_msgs.msg import JointCommand
from rclpy.duration import Duration
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from aloe.graph.topics import topic
from test_bringup import bringup  # noqa: F401  (fixture)
from ros_helpers import node, spin_until

HOME = [0.05 * i for i in range(14)]  # inside every joint limit


def test_mux_holds_measured_pose_follows_policy_and_holds_on_bad_commands(bringup, rclpy_context, tmp_path):  # noqa: F811
    wall_clock = tmp_path / "wall_clock.yaml"  # no simulator here to publish /clock
    wall_clock.write_text("/**/command_mux:\n  ros__parameters:\n    use_sim_time: false\n")
    graph = bringup("--namespace", "mux", "--only", "command_mux", "--params", str(wall_clock))
    assert graph.wait_for(r"\[command_mux\].*ready"), graph.output()
    tester = node(rclpy_context, "tester", namespace="/mux")
    commands = []
    out = topic("command")
    tester.create_subscription(JointCommand, out.name, commands.append, out.qos)
    joint_states = tester.create_publisher(JointState, "joint_states", topic("joint_states").qos)
    policy = tester.create_publisher(JointCommand, "policy/command", topic("policy/command").qos)

    def latest(source):
        return lambda: commands and commands[-1].source == source

    tester.create_timer(0.02, lambda: joint_states.publish(JointState(position=HOME)))
    assert spin_until(rclpy_context, [tester], latest(JointCommand.SOURCE_HOLD), timeout_s=20), graph.output()
    np.testing.assert_allclose(commands[-1].positions, HOME)

    target = list(np.array(HOME) + 0.01)
    step = JointCommand(positions=target, source=JointCommand.SOURCE_POLICY, policy_version="v3", chunk_id=7, step=1)
    timer = tester.create_timer(0.02, lambda: policy.publish(step))
    assert spin_until(rclpy_context, [tester], latest(JointCommand.SOURCE_POLICY))
    assert (commands[-1].policy_version, commands[-1].chunk_id) == ("v3", 7)
    np.testing.assert_allclose(commands[-1].positions, target)

    # An operator command stamped two seconds ago (a late delivery) is dropped: the policy drives on.
    operator = tester.create_publisher(JointCommand, "operator/command", topic("operator/command").qos)
    late = JointCommand(positions=HOME, source=JointCommand.SOURCE_OPERATOR)
    late.header.stamp = (tester.get_clock().now() - Duration(seconds=2.0)).to_msg()
    assert spin_until(rclpy_context, [tester], lambda: operator.get_subscription_count() > 0)
    operator.publish(late)
    assert graph.wait_for(r"rejected OPERATOR command: stale, stamped 2\.\d\d s ago"), graph.output()
    # While the wait above read the graph's output, nothing spun the policy's timer: the mux
    # may have held meanwhile (seen under load). The policy drives again once it sends.
    assert spin_until(rclpy_context, [tester], latest(JointCommand.SOURCE_POLICY))
    assert all(c.source != JointCommand.SOURCE_OPERATOR for c in commands)

    tester.destroy_timer(timer)
    bad = JointCommand(positions=[float("nan")] * 14, source=JointCommand.SOURCE_POLICY)
    tester.create_timer(0.02, lambda: policy.publish(bad))
    assert spin_until(rclpy_context, [tester], latest(JointCommand.SOURCE_HOLD))
    np.testing.assert_allclose(commands[-1].positions, target)  # holds the last safe position
    assert graph.wait_for(r"rejected POLICY command: command contains NaN or inf; holding")


def test_mux_forwards_every_command_of_the_source_in_control_in_order(bringup, rclpy_context, tmp_path):  # noqa: F811
    wall_clock = tmp_path / "wall_clock.yaml"
    wall_clock.write_text("/**/command_mux:\n  ros__parameters:\n    use_sim_time: false\n")
    graph = bringup("--namespace", "fwd", "--only", "command_mux", "--params", str(wall_clock))
    assert graph.wait_for(r"\[command_mux\].*ready"), graph.output()
    tester = node(rclpy_context, "tester", namespace="/fwd")
    steps = []
    out = topic("command")
    # A deep reader queue: DDS fills it while this process is not spinning. With the
    # topic's depth of 10 a pause here drops the oldest samples, steps the mux did forward
    # (CI lost 6 so; a 0.4 s sleep in a timer here loses some at depth 10, none at 1000).
    deep = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    tester.create_subscription(JointCommand, out.name, lambda m: steps.append(m.step) if m.source == JointCommand.SOURCE_OPERATOR else None, deep)
    joint_states = tester.create_publisher(JointState, "joint_states", topic("joint_states").qos)
    operator = tester.create_publisher(JointCommand, "operator/command", topic("operator/command").qos)
    tester.create_timer(0.02, lambda: joint_states.publish(JointState(position=HOME)))
    matched = lambda: operator.get_subscription_count() > 0 and tester.count_publishers(out.name) > 0  # noqa: E731
    assert spin_until(rclpy_context, [tester], matched, timeout_s=20), graph.output()
    counter = iter(range(10**6))
    # 20 Hz. The mux reads its input at the contract's depth of 10: when its executor falls
    # more than 10 periods behind, DDS drops the oldest commands, by design (only the newest
    # matters to the robot). At 50 Hz, CI on a 2-core machine lost 6 in a row so (steps
    # 14-19 of the count); at 20 Hz a lag up to half a second loses none. (Stopping the
    # whole mux process for 0.4 s at 50 Hz loses none: the queue is the executor's.)
    tester.create_timer(0.05, lambda: operator.publish(JointCommand(positions=HOME, source=JointCommand.SOURCE_OPERATOR, step=next(counter))))
    assert spin_until(rclpy_context, [tester], lambda: steps, timeout_s=20), graph.output()
    # The count starts half a second after the first forwarded command: until discovery has
    # matched both ends of both links, Fast DDS may drop samples (CI once lost 6 right after
    # the first), which says nothing about the mux.
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.5)
    start = len(steps)
    assert spin_until(rclpy_context, [tester], lambda: len(steps) > start and steps[-1] >= steps[start] + 100, timeout_s=20)
    counted = steps[start:]
    # Every command got through, in order; the mux's own beat may repeat one, never skip one.
    assert sorted(set(counted)) == list(range(counted[0], counted[-1] + 1)), counted
    assert steps == sorted(steps)
