"""Episode bags into learning episodes: step alignment, intervention flags, images, cache,
and bad bags named and skipped; which episodes a resumed recording already holds."""
import numpy as np
import pytest

from aloe.data.bag_dataset import load_bags, load_episode, read_episode, recorded_episodes
from aloe.data.recording import EpisodeBag, aloe_typestore
from aloe.graph.topics import CAMERAS
from aloe.learning.config import DataConfig
from aloe.learning.data import DataError, chunk_transitions

MS = 1_000_000
UNIT = 0.01  # joint positions per step in `write_bag`: an arm moving 0.5 rad/s


@pytest.fixture(scope="module")
def store():
    return aloe_typestore()


def header(store, ns):
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="")


def write_bag(store, path, steps=100, operator=range(40, 60), image_every=10, outcome="success", dof=2, stages=None,
              burst=range(0), stamped=True):
    """State k at 20k ms (positions (k + 0.5) UNIT); command k (positions k UNIT, the
    operator's inside `operator`) 5 ms later, none after the last state; a three-camera
    set on every `image_every`-th state; `stages`, {step: done flags}, published on
    task/stages stamped as that step's state. The states in `burst` are logged together
    after the last of them, as the recorder gets them when a lost sample held the rest
    back; without `stamped` the commands carry no stamps."""
    types = {"/r/joint_states": "sensor_msgs/msg/JointState", "/r/command": "aloe_msgs/msg/JointCommand",
             "/r/task/stages": "aloe_msgs/msg/TaskStages", **{f"/r/cameras/{c}/image_raw": "sensor_msgs/msg/Image" for c in CAMERAS}}
    bag = EpisodeBag(path, types, store)
    for step, done in (stages or {}).items():
        msg = store.types["aloe_msgs/msg/TaskStages"](header=header(store, 20 * step * MS), task="drawer",
                                                      names=["opened", "placed", "closed"][:len(done)], done=np.array(done, bool))
        bag.write("/r/task/stages", 20 * step * MS + 2 * MS, store.serialize_cdr(msg, "aloe_msgs/msg/TaskStages"))
    State, Command, Image = (store.types[t] for t in ("sensor_msgs/msg/JointState", "aloe_msgs/msg/JointCommand", "sensor_msgs/msg/Image"))
    for k in range(steps):
        now = 20 * k * MS
        state = State(header=header(store, now), name=["j"] * dof, position=np.full(dof, (k + 0.5) * UNIT), velocity=np.zeros(dof), effort=np.zeros(0))
        logged = 20 * burst[-1] * MS + 6 * MS + k if k in burst else now
        bag.write("/r/joint_states", logged, store.serialize_cdr(state, "sensor_msgs/msg/JointState"))
        if k % image_every == 0:
            for c, camera in enumerate(CAMERAS):
                pixels = np.full((8, 10, 3), (k + c) % 256, np.uint8)
                image = Image(header=header(store, now), height=8, width=10, encoding="rgb8", is_bigendian=0, step=30, data=pixels.ravel())
                bag.write(f"/r/cameras/{camera}/image_raw", now + MS, store.serialize_cdr(image, "sensor_msgs/msg/Image"))
        if k < steps - 1:
            command = Command(header=header(store, now if stamped else 0), positions=np.full(dof, k * UNIT), source=1 if k in operator else 0,
                              policy_version="v1", chunk_id=0, step=k)
            bag.write("/r/command", now + 5 * MS, store.serialize_cdr(command, "aloe_msgs/msg/JointCommand"))
    bag.close({"episode_id": path.name, "task": "insertion", "instruction": "pack it", "outcome": outcome})


def test_a_bag_becomes_the_episode_that_was_recorded(store, tmp_path):
    write_bag(store, tmp_path / "ep1")
    episode, cached = load_episode(tmp_path / "ep1", store, image_size=(8, 10))
    assert not cached and len(episode) == 100
    np.testing.assert_allclose(episode.joints[:, 0], (np.arange(100) + 0.5) * UNIT, rtol=1e-6)
    # The action from state t is command t; the last state holds the last command.
    np.testing.assert_allclose(episode.actions[:, 0], np.array([*range(99), 98]) * UNIT, rtol=1e-6)
    assert list(np.flatnonzero(episode.operator)) == list(range(40, 60))
    assert (episode.outcome, episode.task, episode.instruction, episode.episode_id) == ("success", "insertion", "pack it", "ep1")
    assert list(episode.image_steps) == list(range(0, 100, 10))
    assert episode.images.shape == (10, 3, 8, 10, 3) and episode.images[3, 1, 0, 0, 0] == 31  # step 30, second camera
    transitions = chunk_transitions([episode], horizon=10, config=DataConfig(stride=5))
    assert len(transitions) == 20  # a terminal episode: a chunk every 5 steps, to the end
    assert list(np.flatnonzero(transitions.intervention)) == list(range(7, 12))  # chunks touching steps 40-59


def test_actions_follow_the_stamps_when_joint_states_arrive_in_a_burst(store, tmp_path):
    write_bag(store, tmp_path / "burst", burst=range(20, 30))
    episode = read_episode(tmp_path / "burst", store, image_size=(8, 10))
    np.testing.assert_allclose(episode.actions[:, 0], np.array([*range(99), 98]) * UNIT, rtol=1e-6)
    # Unstamped commands can only follow the log order: from the state before the burst,
    # each state gets the command logged before the next state was: the burst's last.
    write_bag(store, tmp_path / "unstamped", burst=range(20, 30), stamped=False)
    episode = read_episode(tmp_path / "unstamped", store, image_size=(8, 10))
    np.testing.assert_allclose(episode.actions[:30, 0], np.array([*range(19), *[29] * 11]) * UNIT, rtol=1e-6)


def test_a_reset_lead_in_is_left_out_from_the_jump_to_the_first_command_the_robot_followed(store, tmp_path):
    # As recorded in round 0: three states at the previous episode's pose, the reset's jump,
    # then commands the mux ramped from the old pose (0.06 per step), which the robot ignored
    # while it resynced, until one came within RESYNC_TOLERANCE of its pose.
    joints = np.r_[np.full(3, 1.0), np.arange(60) * UNIT]
    commands = np.r_[1.0 - 0.06 * np.arange(1, 12), joints[11:] + UNIT]
    State, Command = store.types["sensor_msgs/msg/JointState"], store.types["aloe_msgs/msg/JointCommand"]
    bag = EpisodeBag(tmp_path / "reset", {"/r/joint_states": "sensor_msgs/msg/JointState", "/r/command": "aloe_msgs/msg/JointCommand"}, store)
    for k, (joint, command) in enumerate(zip(joints, commands)):
        state = State(header=header(store, 20 * k * MS), name=["j"] * 2, position=np.full(2, joint), velocity=np.zeros(2), effort=np.zeros(0))
        bag.write("/r/joint_states", 20 * k * MS, store.serialize_cdr(state, "sensor_msgs/msg/JointState"))
        msg = Command(header=header(store, 20 * k * MS), positions=np.full(2, command), source=1, policy_version="", chunk_id=0, step=k)
        bag.write("/r/command", 20 * k * MS + 5 * MS, store.serialize_cdr(msg, "aloe_msgs/msg/JointCommand"))
    bag.close({"episode_id": "reset", "task": "insertion", "instruction": "pack it", "outcome": "success"})
    episode = read_episode(tmp_path / "reset", store)
    # The old pose's states were within reach of the first stale commands: the jump, not
    # the tolerance alone, tells them apart.
    # The first kept command is the ramp's 0.34, 0.27 from the pose 0.07.
    assert len(episode) == len(joints) - 10
    np.testing.assert_allclose(episode.joints[:, 0], joints[10:], rtol=1e-6)
    np.testing.assert_allclose(episode.actions[:, 0], [0.34, *(joints[11:] + UNIT)], rtol=1e-6)


def test_the_stages_topic_gives_each_step_its_share_of_the_stages_reached(store, tmp_path):
    write_bag(store, tmp_path / "staged", stages={0: [0, 0, 1], 30: [1, 0, 0], 55: [1, 1, 0], 80: [0, 1, 1]})
    episode, _ = load_episode(tmp_path / "staged", store, image_size=(8, 10), cache_dir=tmp_path / "cache")
    expected = np.repeat([0, 1 / 3, 2 / 3, 1], [30, 25, 25, 20])
    np.testing.assert_allclose(episode.stage_progress, expected)
    cached, from_cache = load_episode(tmp_path / "staged", store, image_size=(8, 10), cache_dir=tmp_path / "cache")
    assert from_cache
    np.testing.assert_allclose(cached.stage_progress, expected)
    write_bag(store, tmp_path / "unstaged")  # a bag without the topic: no stages, not zero stages
    assert load_episode(tmp_path / "unstaged", store, image_size=(8, 10))[0].stage_progress is None


def test_a_success_whose_last_stages_message_came_too_late_has_reached_every_stage_at_its_end(store, tmp_path):
    # The tick that finds success publishes the last stages and ends the episode at once;
    # the recorder may stop first. Success is every stage done, so the last step counts them.
    for outcome, last in (("success", 1.0), ("failure", 1 / 3)):
        write_bag(store, tmp_path / outcome, outcome=outcome, stages={0: [0, 0, 0], 30: [1, 0, 0]})
        progress = load_episode(tmp_path / outcome, store, image_size=(8, 10))[0].stage_progress
        assert progress[-1] == pytest.approx(last) and progress[-2] == pytest.approx(1 / 3)


def test_images_are_resized_and_a_second_load_comes_from_the_cache(store, tmp_path):
    write_bag(store, tmp_path / "ep1")
    first, cached = load_episode(tmp_path / "ep1", store, image_size=(4, 5), cache_dir=tmp_path / "cache")
    assert not cached and first.images.shape[2:] == (4, 5, 3)
    second, cached = load_episode(tmp_path / "ep1", store, image_size=(4, 5), cache_dir=tmp_path / "cache")
    assert cached
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.actions, first.actions)
    assert (second.outcome, second.episode_id) == (first.outcome, first.episode_id)
    _, cached = load_episode(tmp_path / "ep1", store, image_size=(8, 10), cache_dir=tmp_path / "cache")
    assert not cached  # another image size is another cache entry


def test_bad_bags_are_named_and_skipped_and_the_rest_load(store, tmp_path):
    write_bag(store, tmp_path / "bags" / "good")
    write_bag(store, tmp_path / "bags" / "cut")
    mcap = tmp_path / "bags" / "cut" / "cut.mcap"
    mcap.write_bytes(mcap.read_bytes()[:2000])  # truncated after it was closed
    (tmp_path / "bags" / "crashed").mkdir()
    (tmp_path / "bags" / "crashed" / "crashed.mcap").write_bytes(b"\x89MCAP0\r\n")
    lines = []
    episodes, skipped = load_bags(tmp_path / "bags", store, image_size=(8, 10), say=lines.append)
    assert [e.episode_id for e in episodes] == ["good"]
    reasons = {s.bag.name: s.reason for s in skipped}
    assert set(reasons) == {"cut", "crashed"}
    assert "aloe bag recover" in reasons["crashed"] and "cannot read" in reasons["cut"]
    assert any(line.startswith("skipped cut") for line in lines)
    with pytest.raises(DataError, match="not a directory"):
        load_bags(tmp_path / "nowhere", store)


def test_a_resumed_recording_keeps_finished_episodes_and_redoes_cut_off_ones(store, tmp_path):
    def episode_bag(name, closed=True, **meta):
        bag = EpisodeBag(tmp_path / "bags" / name, {"/r/episode": "std_msgs/msg/String"}, store)
        bag.write("/r/episode", 0, store.serialize_cdr(store.types["std_msgs/msg/String"](data=name), "std_msgs/msg/String"))
        if closed:
            bag.close({"episode_id": name, "variant": "train", **meta})
        else:
            bag.flush()  # the recorder was killed: records on disk, no metadata.yaml

    episode_bag("a", task="sorting", seed=3, outcome="success")
    episode_bag("b", task="sorting", seed=4, outcome="failure")
    episode_bag("c", task="sorting", seed=5, outcome="truncated")  # stopped mid-episode
    episode_bag("d", closed=False)
    episode_bag("f", task="drawer", seed=3, outcome="success")  # not asked for this time: left alone
    episode_bag("g", task="sorting", seed=6, outcome="success", variant="unseen")
    (tmp_path / "bags" / "notes").mkdir()  # not a bag: never removed
    planned = {("sorting", seed) for seed in range(3, 8)}
    done, unfinished = recorded_episodes(tmp_path / "bags", planned, "train")
    assert done == {("sorting", 3), ("sorting", 4)}
    assert sorted(bag.name for bag in unfinished) == ["c", "d"]
    assert recorded_episodes(tmp_path / "nowhere", planned, "train") == (set(), [])


def test_a_head_crop_cuts_the_head_camera_only_and_is_cached_apart(store, tmp_path):
    write_bag(store, tmp_path / "ep1", steps=20)
    cache = tmp_path / "cache"
    whole, _ = load_episode(tmp_path / "ep1", store, image_size=(4, 5), cache_dir=cache)
    cropped, cached = load_episode(tmp_path / "ep1", store, image_size=(4, 5), cache_dir=cache, head_crop=(0.5, 0.5, 0.5, 0.5))
    assert not cached and len(list(cache.iterdir())) == 2  # another view, another cache entry
    again, cached = load_episode(tmp_path / "ep1", store, image_size=(4, 5), cache_dir=cache, head_crop=(0.5, 0.5, 0.5, 0.5))
    assert cached and np.array_equal(again.images, cropped.images)
    np.testing.assert_array_equal(cropped.images[:, 1:], whole.images[:, 1:])  # the wrist cameras keep their whole view


def test_camera_view_cuts_the_same_window_at_any_resolution():
    from aloe.learning.camera_view import camera_view

    ys, xs = np.mgrid[0:240, 0:320]
    small = np.stack([ys, xs, np.zeros_like(ys)], -1).astype(np.uint8)  # pixel i, j holds (i, j) mod 256
    view = camera_view(small, (96, 128), (0.3, 0.3, 0.4, 0.4))
    np.testing.assert_array_equal(view, small[72:168, 96:224])  # at 240 x 320 the window is taken pixel for pixel
    large = np.repeat(np.repeat(small, 2, 0), 2, 1)  # the same scene at 480 x 640
    np.testing.assert_array_equal(camera_view(large, (96, 128), (0.3, 0.3, 0.4, 0.4)), view)
