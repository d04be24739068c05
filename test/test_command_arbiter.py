"""The safety mux's logic: priority, staleness, rejection, limits, emergency stop."""
import numpy as np
import pytest

from aloe.control.command_arbiter import ANCHOR_WAIT_S, HOLD, OPERATOR, POLICY, Command, CommandArbiter, JointLimits

DT = 0.02


def make_arbiter(dof=3, timeout_s=0.2, max_velocity=100.0):
    # Plain lists, as ROS parameters arrive.
    limits = JointLimits(lower=[-1.0] * dof, upper=[1.0] * dof, max_velocity=[max_velocity] * dof)
    return CommandArbiter(limits, timeout_s)


def test_position_unknown_means_no_output():
    assert make_arbiter().decide(now=0.0, dt=DT) is None


def test_operator_has_priority_holds_when_silent_and_hands_back_to_the_policy():
    arbiter = make_arbiter()
    arbiter.offer(Command([0.1, 0.1, 0.1], POLICY, "v1", chunk_id=4, step=2), now=0.0)
    arbiter.offer(Command([0.2, 0.2, 0.2], OPERATOR), now=0.0)
    decision = arbiter.decide(now=0.01, dt=DT)
    assert decision.command.source == OPERATOR
    np.testing.assert_allclose(decision.command.positions, 0.2)
    arbiter.offer(Command([0.3, 0.3, 0.3], POLICY, "v1", chunk_id=5, step=0), now=0.15)
    decision = arbiter.decide(now=0.3, dt=DT)  # operator last spoke 0.3 s ago > timeout
    assert decision.command.source == HOLD and "operator silent" in decision.reason  # not back to the policy
    np.testing.assert_allclose(decision.command.positions, 0.2)
    arbiter.offer(Command([0.25, 0.25, 0.25], OPERATOR), now=0.35)  # the operator resumes
    assert arbiter.decide(now=0.36, dt=DT).command.source == OPERATOR
    arbiter.withdraw(OPERATOR)
    arbiter.offer(Command([0.3, 0.3, 0.3], POLICY, "v1", chunk_id=6, step=0), now=0.37)
    decision = arbiter.decide(now=0.38, dt=DT)
    assert decision.command.source == POLICY
    assert (decision.command.policy_version, decision.command.chunk_id) == ("v1", 6)


def test_silent_sources_turn_into_hold_at_the_last_output():
    arbiter = make_arbiter(timeout_s=0.1)
    arbiter.offer(Command([0.5, -0.5, 0.0], POLICY), now=0.0)
    assert arbiter.decide(now=0.05, dt=DT).command.source == POLICY
    decision = arbiter.decide(now=0.2, dt=DT)
    assert decision.command.source == HOLD
    assert decision.reason == "no live source"
    np.testing.assert_allclose(decision.command.positions, [0.5, -0.5, 0.0])


@pytest.mark.parametrize(
    "positions, reason",
    [([0.1, 0.2], "expected 3 joint positions, got 2"), ([0.1, float("nan"), 0.0], "NaN or inf"), ([0.1, float("inf"), 0.0], "NaN or inf")],
)
def test_invalid_commands_are_rejected_and_the_robot_holds(positions, reason):
    arbiter = make_arbiter()
    arbiter.observe([0.3, 0.3, 0.3])
    rejection = arbiter.offer(Command(positions, POLICY), now=0.0)
    assert reason in rejection.reason and not rejection.stale
    assert arbiter.rejected_count == 1
    decision = arbiter.decide(now=0.01, dt=DT)
    assert decision.command.source == HOLD
    np.testing.assert_allclose(decision.command.positions, 0.3)


def test_targets_outside_limits_are_clipped_and_counted():
    arbiter = make_arbiter()
    arbiter.offer(Command([5.0, -5.0, 0.5], OPERATOR), now=0.0)
    decision = arbiter.decide(now=0.0, dt=DT)
    np.testing.assert_allclose(decision.command.positions, [1.0, -1.0, 0.5])
    assert arbiter.clipped_count == 1


def test_velocity_limit_bounds_each_step():
    arbiter = make_arbiter(max_velocity=1.0)
    arbiter.observe([0.0, 0.0, 0.0])
    arbiter.offer(Command([1.0, -1.0, 0.01], POLICY), now=0.0)
    decision = arbiter.decide(now=0.0, dt=DT)
    np.testing.assert_allclose(decision.command.positions, [0.02, -0.02, 0.01])


def test_emergency_stop_latches_hold_until_release_and_needs_fresh_commands():
    arbiter = make_arbiter()
    arbiter.offer(Command([0.4, 0.4, 0.4], OPERATOR), now=0.0)
    arbiter.decide(now=0.0, dt=DT)
    arbiter.emergency_stop()
    arbiter.offer(Command([0.9, 0.9, 0.9], OPERATOR), now=0.01)
    decision = arbiter.decide(now=0.02, dt=DT)
    assert decision.command.source == HOLD and decision.reason == "emergency stop"
    np.testing.assert_allclose(decision.command.positions, 0.4)
    arbiter.release()
    assert arbiter.decide(now=0.03, dt=DT).command.source == HOLD  # the pre-release command is gone
    arbiter.offer(Command([0.5, 0.5, 0.5], OPERATOR), now=0.04)
    assert arbiter.decide(now=0.05, dt=DT).command.source == OPERATOR


def test_inconsistent_limits_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        JointLimits(lower=[0.0, 0.0], upper=[1.0], max_velocity=[1.0, 1.0])
    with pytest.raises(ValueError, match="above its upper"):
        JointLimits(lower=[1.0], upper=[0.0], max_velocity=[1.0])


def test_a_pose_jump_no_arm_can_make_drops_stale_commands_and_holds_the_new_pose():
    arbiter = make_arbiter(max_velocity=3.0)
    arbiter.observe([0.0, 0.0, 0.0])
    arbiter.offer(Command([0.5, 0.5, 0.5], OPERATOR), now=0.0)
    for k in range(10):
        arbiter.decide(now=0.01 * k, dt=DT)
    # A normal sample (the arm moved a little) changes nothing.
    assert arbiter.observe([0.05, 0.05, 0.05]) is None
    assert arbiter.decide(now=0.1, dt=DT).command.source == OPERATOR
    # The simulator reset the robot elsewhere: the operator's command was for the old pose.
    note = arbiter.observe([-0.9, 0.05, 0.05])
    assert note and "joint 0 by -0.95" in note
    decision = arbiter.decide(now=0.11, dt=DT)
    assert decision.command.source == HOLD
    np.testing.assert_allclose(decision.command.positions, [-0.9, 0.05, 0.05])


def test_in_control_names_the_source_decide_will_execute_without_changing_state():
    arbiter = make_arbiter(timeout_s=0.1)
    arbiter.observe([0.0, 0.0, 0.0])
    assert arbiter.in_control(now=0.0) == HOLD
    arbiter.offer(Command([0.1, 0.1, 0.1], POLICY), now=0.0)
    assert arbiter.in_control(now=0.05) == POLICY
    arbiter.offer(Command([0.2, 0.2, 0.2], OPERATOR), now=0.05)
    assert arbiter.in_control(now=0.1) == OPERATOR
    arbiter.offer(Command([0.1, 0.1, 0.1], POLICY), now=0.15)
    assert arbiter.in_control(now=0.2) == HOLD  # the operator went silent: hold, the policy waits
    np.testing.assert_allclose(arbiter.decide(now=0.2, dt=DT).command.positions, 0.0)  # nothing executed yet
    arbiter.emergency_stop()
    arbiter.offer(Command([0.3, 0.3, 0.3], OPERATOR), now=0.2)
    assert arbiter.in_control(now=0.2) == HOLD


def test_a_large_change_after_missed_samples_is_motion_not_a_reset():
    arbiter = make_arbiter(max_velocity=3.0)
    arbiter.observe([0.0, 0.0, 0.0], stamp=1.00)
    arbiter.offer(Command([0.5, 0.5, 0.5], OPERATOR), now=1.0)
    # 0.7 rad in one 20 ms sample is a reset; the same change over 0.1 s (four samples
    # this subscriber missed) is an arm moving at 7 rad/s, fast but possible.
    assert arbiter.observe([0.7, 0.0, 0.0], stamp=1.10) is None
    assert arbiter.decide(now=1.1, dt=DT).command.source == OPERATOR
    assert arbiter.observe([0.0, 0.0, 0.0], stamp=1.12) is not None


def test_a_source_that_withdraws_hands_back_at_once():
    arbiter = make_arbiter(timeout_s=1.0)
    arbiter.observe([0.0, 0.0, 0.0])
    arbiter.offer(Command([0.1, 0.1, 0.1], POLICY), now=0.0)
    arbiter.offer(Command([0.2, 0.2, 0.2], OPERATOR), now=0.0)
    assert arbiter.decide(now=0.01, dt=DT).command.source == OPERATOR
    arbiter.withdraw(OPERATOR)
    assert arbiter.decide(now=0.02, dt=DT).command.source == POLICY  # not after the 1 s timeout


def test_stale_commands_are_dropped_and_change_nothing():
    arbiter = make_arbiter()
    arbiter.offer(Command([0.1, 0.1, 0.1], POLICY, "v1", chunk_id=3, stamp=9.98), now=10.0)
    # The previous episode's operator, delivered a second late: not executed, not engaged.
    rejection = arbiter.offer(Command([0.9, 0.9, 0.9], OPERATOR, stamp=9.0), now=10.01)
    assert rejection.stale and "stamped 1.01 s ago" in rejection.reason and arbiter.stale_count == 1
    decision = arbiter.decide(now=10.02, dt=DT)
    assert decision.command.source == POLICY and not arbiter.operator_engaged
    np.testing.assert_allclose(decision.command.positions, 0.1)
    # Within max_age_s, or unstamped, or with the check off: taken.
    assert arbiter.offer(Command([0.2, 0.2, 0.2], OPERATOR, stamp=9.6), now=10.05) is None
    assert arbiter.offer(Command([0.3, 0.3, 0.3], OPERATOR), now=10.06) is None
    unchecked = CommandArbiter(arbiter.limits, 0.2, max_age_s=0.0)
    assert unchecked.offer(Command([0.3, 0.3, 0.3], OPERATOR, stamp=0.5), now=10.0) is None


def test_a_source_taking_control_after_a_reset_starts_from_the_pose_measured_at_its_stamp():
    # Round 0's trace: the operator hands back at the end of an episode, the simulator resets
    # the arm from 0.76 to -0.96, and the new episode's first command (stamped 0.602) reaches
    # the mux before the joint states of the reset do.
    arbiter = make_arbiter(max_velocity=3.0)
    for stamp in (0.482, 0.502):
        arbiter.observe([0.76] * 3, stamp=stamp)
    arbiter.offer(Command([0.76] * 3, OPERATOR, stamp=0.482), now=0.49)
    arbiter.decide(now=0.49, dt=DT)
    arbiter.withdraw(OPERATOR)
    assert arbiter.decide(now=0.50, dt=DT).command.source == HOLD
    arbiter.offer(Command([-0.96] * 3, OPERATOR, stamp=0.602), now=0.602)
    decision = arbiter.decide(now=0.602, dt=DT)
    assert decision.command.source == HOLD and arbiter.awaiting_pose and "waits for the pose" in decision.reason
    np.testing.assert_allclose(decision.command.positions, 0.76)  # no step towards the command from the old pose
    assert arbiter.observe([0.76] * 3, stamp=0.542) is None
    assert arbiter.observe([-0.96] * 3, stamp=0.562) is not None  # the reset: the command stamped after it stays
    assert arbiter.decide(now=0.602, dt=DT).command.source == HOLD
    arbiter.observe([-0.96] * 3, stamp=0.582)
    arbiter.observe([-0.96] * 3, stamp=0.602)
    decision = arbiter.decide(now=0.603, dt=DT)
    assert decision.command.source == OPERATOR and not arbiter.awaiting_pose
    np.testing.assert_allclose(decision.command.positions, -0.96)  # not a ramp from 0.76 (0.06 a step)


def test_a_reset_too_small_to_read_as_a_jump_still_re_anchors_the_ramp():
    arbiter = make_arbiter(max_velocity=3.0)
    arbiter.observe([0.0] * 3, stamp=1.0)
    arbiter.offer(Command([0.0] * 3, POLICY, stamp=1.0), now=1.0)
    arbiter.decide(now=1.0, dt=DT)
    assert arbiter.decide(now=1.5, dt=DT).command.source == HOLD  # the policy fell silent
    # 0.5 rad over the 0.5 s the mux missed: motion, not a reset, to the jump test.
    assert arbiter.observe([0.5] * 3, stamp=1.5) is None
    arbiter.offer(Command([0.52] * 3, POLICY, stamp=1.5), now=1.5)
    np.testing.assert_allclose(arbiter.decide(now=1.5, dt=DT).command.positions, 0.52)


def test_a_source_whose_pose_never_arrives_drives_after_the_anchor_wait():
    arbiter = make_arbiter()
    arbiter.observe([0.0] * 3, stamp=1.0)
    arbiter.offer(Command([0.3] * 3, OPERATOR, stamp=2.0), now=2.0)
    assert arbiter.decide(now=2.05, dt=DT).command.source == HOLD
    decision = arbiter.decide(now=2.0 + ANCHOR_WAIT_S + 0.01, dt=DT)
    assert decision.command.source == OPERATOR
    np.testing.assert_allclose(decision.command.positions, 0.3)


def test_resending_the_command_does_not_extend_the_anchor_wait():
    # A simulator in lockstep resends its command every 20 ms while it waits for the mux; a
    # wait restarted by each resend held until the simulator gave up (1 s).
    arbiter = make_arbiter()
    arbiter.observe([0.0] * 3, stamp=1.0)
    now = 2.0
    while now < 2.0 + ANCHOR_WAIT_S:
        arbiter.offer(Command([0.3] * 3, OPERATOR, stamp=2.0), now=now)
        assert arbiter.decide(now=now, dt=DT).command.source == HOLD
        now += 0.02
    arbiter.offer(Command([0.3] * 3, OPERATOR, stamp=2.0), now=now)
    assert arbiter.decide(now=now, dt=DT).command.source == OPERATOR and not arbiter.awaiting_pose
