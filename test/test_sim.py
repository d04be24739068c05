"""The simulated ALOHA robot without ROS: determinism, safe handling of bad commands,
task detectors and the scripted operator."""
import numpy as np
import pytest

from aloe.graph.topics import CAMERAS
from aloe.sim import TASK_NAMES
from aloe.sim.disturbances import DisturbanceError, parse_disturbances
from aloe.sim.env import SimError, SimRobot
from aloe.sim.operator import make_operator
from aloe.sim.scene import CAMERAS as SIM_CAMERAS
from aloe.sim.scene import DOF, HOME, UPPER
from aloe.sim.tasks import TASKS


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
    # The command line and the episode runner offer the tasks by name without MuJoCo's import.
    assert tuple(TASKS) == TASK_NAMES


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


@pytest.mark.parametrize("task", ["insertion", "drawer", "sorting"])
def test_detector_fires_on_the_expert_and_not_on_a_do_nothing_policy(robot, task):
    for seed in (2, 3):
        robot.reset(task, seed)
        operator = make_operator(robot)
        first_done = {}
        while True:
            robot.step(operator.act())
            status = robot.status()
            for name, done in status.stages:
                if done:
                    first_done.setdefault(name, robot.time)
            if status.success or status.failure:
                break
        assert status.success, f"{task} seed {seed}: {status}"
        # Stages are reached in order: a policy can fail late, after earlier stages.
        times = [first_done[name] for name in robot.task.stage_names]
        assert times == sorted(times)
    robot.reset(task, 2)
    idle = run_episode(robot, lambda: HOME)
    assert not idle.success and "time limit" in idle.failure
    assert not any(done for _, done in idle.stages)


def scene(task, seed, variant):
    return TASKS[task].sample(np.random.default_rng(seed), variant, seed)


def test_unseen_variants_use_held_out_objects():
    for task in ("insertion", "drawer", "sorting"):
        seen = {(o.shape, o.colour, o.size) for seed in range(20) for o in scene(task, seed, "train").objects}
        unseen = {(o.shape, o.colour, o.size) for seed in range(20) for o in scene(task, seed, "unseen").objects}
        assert not {colour for _, colour, _ in seen} & {colour for _, colour, _ in unseen}, task
        assert not seen & unseen, task


def test_sorting_instruction_names_each_objects_bin(robot):
    scene = robot.reset("sorting", 5)
    for obj, target in zip(scene.objects, scene.extra["targets"]):
        assert f"the {obj.colour} {obj.name.split('_')[1]} in the {target} bin" in scene.instruction
    assert set(scene.extra["targets"]) == {"left", "right"}


def test_disturbances_are_seeded_and_change_the_episode(robot):
    def final_state(spec, steps=150):
        robot.reset("sorting", 1, disturbances=parse_disturbances(spec))
        operator = make_operator(robot)
        for _ in range(steps):
            robot.step(operator.act())
        return robot.data.qpos.copy(), dict(robot.scene.containers)

    clean, _ = final_state("")
    pushed, _ = final_state("push:1,noise:1,drop:0.3")
    assert not np.allclose(clean, pushed)
    assert np.array_equal(pushed, final_state("push:1,noise:1,drop:0.3")[0])
    _, containers = final_state("displace:1", steps=320)  # it strikes between 2 s and 6 s
    assert containers != scene("sorting", 1, "train").containers


def test_bad_disturbance_specs_say_what_is_valid():
    with pytest.raises(DisturbanceError, match="unknown disturbance 'wind' \\(valid: noise, drop, push, displace"):
        parse_disturbances("wind:0.5")
    with pytest.raises(DisturbanceError, match="strength in \\[0, 1\\], got 2"):
        parse_disturbances("push:2")


def test_a_waiting_operator_repeats_its_command_and_then_goes_on_from_there():
    """While the sim node waits for the command stream after a reset, the scripted operator
    must not plan on: its targets would run away from an arm that is not following."""
    from aloe.sim.session import SimSession

    session = SimSession(image_size=(48, 64), camera_rate_hz=0)
    try:
        session.reset("insertion", 2)
        session.begin_episode()
        waiting = [session.tick(None, operator_waits=True).operator_command for _ in range(50)]
        assert all(np.array_equal(command, waiting[0]) for command in waiting)
        assert np.max(np.abs(waiting[0] - session.robot.joint_positions())) < 0.05
        acting = [session.tick(None).operator_command for _ in range(50)]
        assert np.max(np.abs(acting[-1] - waiting[0])) > 0.05  # it plans again once released
    finally:
        session.close()


def test_in_process_images_stack_the_cameras_in_the_topic_contracts_order():
    # Demonstrations and evaluations in process stack the simulator's renders in
    # aloe.sim.scene.CAMERAS order; bags from the graph in the topic contract's. A policy trained on
    # one and run on the other sees its cameras swapped if the two orders ever part.
    robot = SimRobot()
    try:
        robot.reset("insertion", 0)
        assert tuple(robot.render()) == tuple(SIM_CAMERAS) == CAMERAS
    finally:
        robot.close()
