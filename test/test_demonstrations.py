"""In-process scripted demonstrations and the simulator's object state they carry."""
import numpy as np
import pytest

from aloe.data import demonstrations
from aloe.sim.env import SimRobot
from aloe.sim.tasks import TASKS


@pytest.mark.parametrize("task", list(TASKS))
def test_object_state_has_a_fixed_length_per_task_and_follows_the_objects(task):
    robot = SimRobot((48, 64))
    try:
        lengths = set()
        for seed in (1, 2):
            scene = robot.reset(task, seed)
            state = robot.object_state()
            lengths.add(len(state))
            first = scene.objects[0]
            np.testing.assert_allclose(state[:2], first.pose[:2], atol=2e-3)  # where the task placed it
            # Lift the first object by hand: its state moves with it.
            joint = robot.model.joint(f"{first.name}_joint")
            robot.data.qpos[joint.qposadr[0] + 2] += 0.1
            import mujoco

            mujoco.mj_forward(robot.model, robot.data)
            assert robot.object_state()[2] == pytest.approx(state[2] + 0.1, abs=1e-6)
        expected = 9 * len(scene.objects) + 4 * len(scene.containers) + len(robot.task.extra_state(robot.data, scene))
        assert lengths == {expected}
    finally:
        robot.close()


def test_a_demonstration_is_a_whole_episode_with_images_at_the_camera_rate_and_state_at_every_step():
    arrays = demonstrations.demonstrate("insertion", 3, render_size=(48, 64))
    steps = len(arrays["actions"])
    assert arrays["outcome"] == "success"
    assert arrays["joints"].shape == (steps, 14) and arrays["state"].shape == (steps, 13)
    np.testing.assert_array_equal(arrays["image_steps"], np.arange(0, steps, demonstrations.CAMERA_EVERY))
    assert arrays["images"].shape == (len(arrays["image_steps"]), 3, 48, 64, 3)
    # The phone ends in the box: the last state's phone position is at the box's centre.
    box_x, box_y = arrays["state"][-1][9:11]
    np.testing.assert_allclose(arrays["state"][-1][:2], [box_x, box_y], atol=0.01)
    # The step's action is the command executed from the step's joints: the arm follows it.
    assert np.abs(arrays["joints"][1:] - arrays["actions"][:-1]).mean() < np.abs(arrays["joints"][1:] - arrays["joints"][0]).mean()


def test_recorded_demonstrations_are_reused_and_load_as_training_episodes(tmp_path, monkeypatch):
    monkeypatch.setattr(demonstrations, "RENDER_SIZE", (48, 64))
    paths = demonstrations.record("insertion", [4, 5], tmp_path, workers=1)
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert demonstrations.record("insertion", [4, 5], tmp_path, workers=1) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps  # not recorded again

    plain = demonstrations.load(paths, image_size=(24, 32))
    assert [e.joints.shape[1] for e in plain] == [14, 14] and plain[0].images.shape[1:] == (3, 24, 32, 3)
    assert all(e.operator.all() and e.outcome == "success" and "phone" in e.instruction for e in plain)
    # insertion's two stages, grasped then inserted, reached in order by the successful end
    assert all(set(np.round(e.stage_progress, 6)) == {0.0, 0.5, 1.0} and np.all(np.diff(e.stage_progress) >= 0) for e in plain)
    privileged = demonstrations.load(paths, image_size=None, privileged=True)
    assert privileged[0].images is None and privileged[0].joints.shape[1] == 14 + 13
    np.testing.assert_array_equal(privileged[0].joints[:, :14], plain[0].joints)
