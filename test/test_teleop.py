"""Teleop: bumpless takeover, keys, gamepad, leader arm; and over DDS through the mux, the
switch to the operator and back within a tick."""
import time

import numpy as np
import pytest
from aloe_msgs.msg import JointCommand
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from aloe.control.teleop import Teleop
from aloe.graph.topics import topic
from ros_helpers import call_service, node, spin_until
from test_bringup import bringup  # noqa: F401  (fixture)

POSE = np.linspace(-0.5, 0.5, 14)


def test_taking_over_starts_from_the_measured_pose_and_keys_move_one_joint():
    teleop = Teleop(key_step=0.1)
    assert teleop.toggle().startswith("cannot") and teleop.command() is None
    teleop.observe(POSE)
    assert teleop.toggle() == "taking over"
    np.testing.assert_allclose(teleop.command(), POSE)  # no jump
    teleop.key("\t"), teleop.key("3"), teleop.key("+"), teleop.key("+")
    expected = POSE.copy()
    expected[7 + 2] += 0.2  # right arm, joint 3
    np.testing.assert_allclose(teleop.command(), expected)
    assert teleop.key("s") == "success" and teleop.key(" ") == "handing back" and teleop.command() is None


def test_gamepad_button_toggles_on_press_and_axes_move_the_current_arm():
    teleop = Teleop(joy_speed=1.0)
    teleop.observe(POSE)
    assert teleop.joy([0.0] * 7, [1, 0], dt=0.02) == "taking over"
    assert teleop.joy([0.0] * 7, [1, 0], dt=0.02) is None  # held, not pressed again
    teleop.joy([0.5, 0.05, 0, 0, 0, 0, -1.0], [0, 0], dt=0.1)
    change = teleop.command() - POSE
    assert change[0] == pytest.approx(0.05) and change[1] == 0.0 and change[6] == pytest.approx(-0.1)  # 0.05: deadzone
    assert not change[7:].any()


def test_a_leader_arm_drives_only_while_engaged():
    teleop = Teleop()
    teleop.observe(POSE)
    teleop.leader(POSE + 0.1)
    assert teleop.command() is None
    teleop.toggle()
    teleop.leader(POSE + 0.1)
    np.testing.assert_allclose(teleop.command(), POSE + 0.1)


def test_takeover_and_handback_switch_the_mux_within_a_tick(bringup, rclpy_context, tmp_path):  # noqa: F811
    params = tmp_path / "wall.yaml"
    params.write_text("/**/command_mux:\n  ros__parameters:\n    use_sim_time: false\n    source_timeout_s: 1.0\n"
                      "/**/teleop:\n  ros__parameters:\n    use_sim_time: false\n    input: leader\n")
    graph = bringup("--namespace", "tele", "--only", "command_mux", "--only", "teleop", "--params", str(params))
    assert graph.wait_for(r"\[teleop\].*ready") and graph.wait_for(r"\[command_mux\].*ready"), graph.output()
    tester = node(rclpy_context, "tester", namespace="/tele")
    out = []
    tester.create_subscription(JointCommand, "command", lambda m: out.append((time.monotonic(), m.source)), topic("command").qos)
    states = tester.create_publisher(JointState, "joint_states", topic("joint_states").qos)
    policy = tester.create_publisher(JointCommand, "policy/command", topic("policy/command").qos)
    leader = tester.create_publisher(JointState, "leader/joint_states", topic("joint_states").qos)

    def robot_and_policy():
        states.publish(JointState(position=POSE.tolist()))
        policy.publish(JointCommand(positions=POSE.tolist(), source=JointCommand.SOURCE_POLICY))
        leader.publish(JointState(position=(POSE + 0.05).tolist()))

    tester.create_timer(0.02, robot_and_policy)
    assert spin_until(rclpy_context, [tester], lambda: out and out[-1][1] == JointCommand.SOURCE_POLICY, timeout_s=20)
    toggle = tester.create_client(Trigger, "teleop/toggle")
    deadline = time.monotonic() + 10
    while True:  # until the teleop has heard the robot's joint state
        asked = time.monotonic()
        said = call_service(rclpy_context, tester, toggle, Trigger.Request()).message
        if said == "taking over" or time.monotonic() > deadline:
            break
        spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.2)
    assert said == "taking over"
    assert spin_until(rclpy_context, [tester], lambda: out[-1][1] == JointCommand.SOURCE_OPERATOR, timeout_s=5)
    taken = next(t for t, s in out if t > asked and s == JointCommand.SOURCE_OPERATOR) - asked
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.3)
    asked = time.monotonic()
    assert call_service(rclpy_context, tester, toggle, Trigger.Request()).message == "handing back"
    assert spin_until(rclpy_context, [tester], lambda: out[-1][1] == JointCommand.SOURCE_POLICY, timeout_s=5)
    back = next(t for t, s in out if t > asked and s == JointCommand.SOURCE_POLICY) - asked
    # At the service's answer, not after the 1 s source timeout. The bound leaves room for
    # the service round trip on a loaded machine (0.29 s seen in CI); the latency itself is
    # measured by benchmarks/control.py (p99 about 7 ms).
    assert taken < 0.6 and back < 0.6, (taken, back)
    assert graph.wait_for(r"OPERATOR handed back")
