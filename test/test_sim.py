"""The simulated ALOHA robot without ROS: determinism, safe handling of bad commands,
task detectors and the scripted operator."""
import numpy as np
import pytest

from aloe.sim.env import SimError, SimRobot
from aloe.sim.operator import make_operator
from aloe.sim.scene import DOF, HOME, UPPER


@pytest.fixture
def robot():
    robot = SimRobot(image_size=(48, 64))
    yield robot
    robot.close()


def rollout(robot, seed, steps=60):
    robot.reset("insertion", seed)
    rng = np.random.default_rng(seed)
    trajectory = []
    for _ in range(steps):
        robot.step(HOME + rng.normal(0, 0.05, DOF))
        trajectory.append(robot.data.qpos.copy())
    return np.array(trajectory)


def test_same_seed_and_commands_give_the_same_trajectory(robot):
    first, second = rollout(robot, 3), rollout(robot, 3)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, rollout(robot, 4))


def test_bad_commands_are_rejected_and_the_robot_holds(robot):
    robot.reset("insertion", 0)
    for _ in range(10):
        robot.step(HOME)
    held = robot.joint_positions()
    for bad in ([np.nan] * DOF, [np.inf] * DOF, np.zeros(DOF - 1)):
        report = robot.step(bad)
        assert not report.accepted and report.reason
    assert robot.rejected_commands == 3
    assert np.allclose(robot.joint_positions()[:6], held[:6], atol=0.01)


def test_targets_outside_the_limits_are_clipped_and_counted(robot):
    robot.reset("insertion", 0)
    report = robot.step(UPPER + 1.0)
    assert report.accepted and report.clipped and robot.clipped_commands == 1
    assert np.array_equal(robot.last_command, UPPER)


def test_unknown_task_or_variant_lists_the_valid_ones(robot):
    with pytest.raises(SimError, match=r"unknown task 'laundry' \(valid: insertion"):
        robot.reset("laundry", 0)
    with pytest.raises(SimError, match=r"unknown variant 'odd' \(valid: train, unseen\)"):
        robot.reset("insertion", 0, "odd")


def test_three_cameras_render(robot):
    robot.reset("insertion", 0)
    images = robot.render()
    assert set(images) == {"head", "left_wrist", "right_wrist"}
    assert all(image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.std() > 1 for image in images.values())


def run_episode(robot, act):
    while True:
        robot.step(act())
        status = robot.status()
        if status.success or status.failure:
            return status


def test_insertion_detector_fires_on_the_expert_and_not_on_a_do_nothing_policy(robot):
    expert = []
    for seed in (2, 3, 4):
        robot.reset("insertion", seed)
        operator = make_operator(robot)
        expert.append(run_episode(robot, operator.act))
    assert sum(status.success for status in expert) >= 2
    assert all(dict(status.stages)["grasped"] for status in expert if status.success)
    robot.reset("insertion", 2)
    idle = run_episode(robot, lambda: HOME)
    assert not idle.success and "time limit" in idle.failure
    assert not any(done for _, done in idle.stages)
