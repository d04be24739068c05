"""Episode bags: written with rosbags, opened by independent readers (mcap), complete after
a clean end, and recoverable (all but the last flush interval) after SIGKILL."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml
from aloe_msgs.msg import EpisodeEvent, JointCommand
from builtin_interfaces.msg import Time
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from aloe.cli import main
from aloe.data.bag_dataset import load_bags, read_episode
from aloe.data.lerobot import read_dataset
from aloe.data.recording import EpisodeBag, EpisodeLog, aloe_typestore, needs_recovery, recover
from aloe.graph.topics import topic
from ros_helpers import call_service, node, spin_until
from test_bringup import bringup  # noqa: F401  (fixture)


def read_with_mcap(bag):
    """Topic -> decoded messages, read by the mcap library (not rosbags)."""
    with open(bag / f"{bag.name}.mcap", "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        topics = {}
        for _, channel, _, decoded in reader.iter_decoded_messages():
            topics.setdefault(channel.topic, []).append(decoded)
    return topics


def custom_data(bag):
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]


def test_episode_log_counts_interventions_and_policy_versions():
    log = EpisodeLog({"episode_id": "e1", "task": "insertion"})
    # Policy, operator (with a one-tick HOLD while a late sample kept it silent), policy, operator.
    sources = [0] * 10 + [1, 1, 2, 1, 1] + [0] * 10 + [1] * 3
    for step, source in enumerate(sources):
        log.on_command(step * 0.02, source, "" if source else ("v1" if step < 10 else "v2"))
    meta = log.metadata("failure", "dropped", end_s=len(sources) * 0.02)
    assert meta["interventions"] == 2 and meta["policy_versions"] == "v1,v2"
    assert meta["intervention_seconds"] == "0.10,0.06"  # the second lasts until the end
    assert meta["task"] == "insertion" and meta["outcome"] == "failure" and meta["command_steps"] == 28


def test_episode_log_leaves_out_commands_stamped_after_the_end_event():
    # The operator takes over at the last ticks, then the policy's and the operator's commands
    # for ticks after the end arrive before the end event: not the episode's steps.
    log = EpisodeLog({"episode_id": "e2", "task": "drawer"})
    sources = [0] * 20 + [1] * 5 + [0] * 3 + [1] * 2  # ticks 0..29; the episode ends at tick 24
    for tick, source in enumerate(sources):
        log.on_command(tick * 0.02, source, "" if source else "v1" if tick < 20 else "v2", stamp_ns=tick * 20_000_000)
    meta = log.metadata("success", "all stages done", end_s=0.6, end_stamp_ns=24 * 20_000_000)
    assert meta["command_steps"] == 25 and meta["policy_versions"] == "v1"
    assert meta["interventions"] == 1 and meta["intervention_seconds"] == "0.20"  # open until end_s
    assert log.metadata("truncated", "stopped", end_s=0.6)["command_steps"] == 30  # no end event: every command


WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from pathlib import Path
    from aloe.data.recording import EpisodeBag, aloe_typestore
    store = aloe_typestore()
    State, Header, Time = (store.types[t] for t in ("sensor_msgs/msg/JointState", "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    bag = EpisodeBag(Path(sys.argv[1]), {"/r/joint_states": "sensor_msgs/msg/JointState"}, store, flush_every_s=0.0)
    for i in range(200):
        msg = State(header=Header(stamp=Time(sec=i, nanosec=0), frame_id=""), name=["j"], position=np.array([float(i)]),
                    velocity=np.zeros(1), effort=np.zeros(0))
        bag.write("/r/joint_states", i * 20_000_000, store.serialize_cdr(msg, "sensor_msgs/msg/JointState"))
        if i == 120:
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_writer_leaves_a_bag_that_recovers_with_everything_flushed(tmp_path):
    bag = tmp_path / "killed"
    result = subprocess.run([sys.executable, "-c", WRITER, str(bag)], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert needs_recovery(bag)
    assert recover(bag, aloe_typestore()) == 121
    assert not needs_recovery(bag)
    states = read_with_mcap(bag)["/r/joint_states"]
    assert [s.position[0] for s in states] == list(range(121))
    assert custom_data(bag)["aloe.outcome"] == "truncated"


def test_closed_bag_has_its_metadata_and_opens_in_mcap(tmp_path):
    store = aloe_typestore()
    bag = EpisodeBag(tmp_path / "ep", {"/r/episode": "aloe_msgs/msg/EpisodeEvent"}, store)
    Event = store.types["aloe_msgs/msg/EpisodeEvent"]
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    event = Event(header=Header(stamp=Time(sec=1, nanosec=0), frame_id=""), episode_id="ep", kind=1, task="drawer",
                  instruction="open it", seed=4, variant="train", reason="detector")
    bag.write("/r/episode", 10**9, store.serialize_cdr(event, "aloe_msgs/msg/EpisodeEvent"))
    bag.close({"task": "drawer", "outcome": "success"})
    assert custom_data(tmp_path / "ep") == {"aloe.task": "drawer", "aloe.outcome": "success"}
    (read,) = read_with_mcap(tmp_path / "ep")["/r/episode"]
    assert (read.task, read.seed, read.kind) == ("drawer", 4, 1)


def joint_state(value):
    return JointState(name=["j"] * 14, position=[value] * 14)


@pytest.fixture
def recorder_graph(bringup, tmp_path):  # noqa: F811
    params = tmp_path / "recorder.yaml"
    params.write_text(
        f"/**/recorder:\n  ros__parameters:\n    use_sim_time: false\n    out_dir: {tmp_path / 'bags'}\n    flush_every_s: 0.2\n"
    )
    graph = bringup("--namespace", "rec", "--only", "recorder", "--params", str(params))
    assert graph.wait_for(r"\[recorder\].*ready"), graph.output()
    return graph, tmp_path / "bags"


def recorder_ready(context, tester) -> bool:
    """Whether the recorder says it has matched every publisher it sees (its ready service)."""
    response = call_service(context, tester, tester.create_client(Trigger, "recorder/ready"), Trigger.Request(), timeout_s=30)
    return response is not None and response.success


def start_event(episode_id, kind=EpisodeEvent.START):
    return EpisodeEvent(episode_id=episode_id, kind=kind, task="sorting", instruction="sort them", seed=3, variant="train")


def test_recorder_is_ready_for_episodes_only_once_a_robot_and_an_episode_manager_are_matched(recorder_graph, rclpy_context):
    """A START the recorder sees late opens the bag late: the episode runner waits for
    `recorder/ready`, which needs the joint states' and the episode events' publishers."""
    graph, _ = recorder_graph
    tester = node(rclpy_context, "tester", namespace="/rec")
    ready = tester.create_client(Trigger, "recorder/ready")
    tester.create_publisher(JointState, "joint_states", topic("joint_states").qos)
    assert not spin_until(rclpy_context, [tester], ready.service_is_ready, timeout_s=3.0)
    assert graph.wait_for(r"not yet ready for episodes: waiting for /rec/episode$", timeout_s=10), graph.output()
    tester.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    response = call_service(rclpy_context, tester, ready, Trigger.Request(), timeout_s=20)
    assert response is not None and response.success, graph.output()


def test_recorder_writes_an_episode_with_its_interventions(recorder_graph, rclpy_context):
    graph, bags = recorder_graph
    tester = node(rclpy_context, "tester", namespace="/rec")
    publishers = {name: tester.create_publisher(topic(name).msg_type, name, topic(name).qos) for name in ("episode", "joint_states", "command", "cameras/head/image_raw")}
    publishers["episode"].publish(start_event("rec-1"))
    assert graph.wait_for(r"recording rec-1"), graph.output()
    # 30 policy steps (v1), 20 operator steps, 10 policy steps (v2), each with a joint state.
    handed_over = {}
    for step in range(60):
        if step in (30, 50):
            handed_over[step] = time.monotonic()
        source = JointCommand.SOURCE_OPERATOR if 30 <= step < 50 else JointCommand.SOURCE_POLICY
        version = "" if source == JointCommand.SOURCE_OPERATOR else ("v1" if step < 30 else "v2")
        publishers["joint_states"].publish(joint_state(float(step)))
        publishers["command"].publish(JointCommand(positions=[float(step)] * 14, source=source, policy_version=version, step=step))
        spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.02)
    image = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
    publishers["cameras/head/image_raw"].publish(image)
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.5)
    publishers["episode"].publish(start_event("rec-1", EpisodeEvent.SUCCESS))
    assert graph.wait_for(r"rec-1: success"), graph.output()

    bag = bags / "rec-1"
    topics = read_with_mcap(bag)
    assert [c.step for c in topics["/rec/command"]] == list(range(60))
    assert len(topics["/rec/joint_states"]) == 60
    assert bytes(topics["/rec/cameras/head/image_raw"][0].data) == bytes(range(18))
    assert [e.kind for e in topics["/rec/episode"]] == [EpisodeEvent.START, EpisodeEvent.SUCCESS]
    meta = custom_data(bag)
    assert meta["aloe.outcome"] == "success" and meta["aloe.task"] == "sorting" and meta["aloe.instruction"] == "sort them"
    assert meta["aloe.interventions"] == "1" and meta["aloe.policy_versions"] == "v1,v2"
    # The recorder timed the takeover on its own (wall) clock: as long as we drove.
    assert abs(float(meta["aloe.intervention_seconds"]) - (handed_over[50] - handed_over[30])) < 0.15


def test_a_start_seen_late_still_records_what_was_stamped_since_it(recorder_graph, rclpy_context):
    """DDS can match the latched START's writer a second after the episode began (a fresh
    graph under load: a lockstep bag once opened 46 steps late). The recorder keeps the last
    seconds between episodes and writes what is stamped at or after the START's stamp."""
    graph, bags = recorder_graph
    tester = node(rclpy_context, "tester", namespace="/rec")
    episode = tester.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    states = tester.create_publisher(JointState, "joint_states", topic("joint_states").writer_qos)
    spin_until(rclpy_context, [tester], lambda: states.get_subscription_count() > 0, timeout_s=10)
    # Our side matching is not the recorder's: what it receives before it has matched us is
    # dropped (CI lost all 40 states so). Its ready service says it has.
    assert recorder_ready(rclpy_context, tester), graph.output()

    def stamped(step):
        state = joint_state(float(step))
        state.header.stamp = Time(sec=100 + step // 50, nanosec=(step % 50) * 20_000_000)
        return state

    for step in range(-10, 30):  # ten steps of the episode before, then 30 of this one
        states.publish(stamped(step + 50))
        spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.02)
    start = start_event("rec-late")
    start.header.stamp = Time(sec=101)  # step 50
    episode.publish(start)
    assert graph.wait_for(r"recording rec-late .*30 messages from before its START"), graph.output()
    for step in range(30, 40):
        states.publish(stamped(step + 50))
        spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.02)
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.3)
    episode.publish(start_event("rec-late", EpisodeEvent.SUCCESS))
    assert graph.wait_for(r"rec-late: success"), graph.output()
    positions = sorted(s.position[0] for s in read_with_mcap(bags / "rec-late")["/rec/joint_states"])
    assert positions == [float(k) for k in range(50, 90)]


def test_an_end_seen_late_leaves_the_next_episode_its_first_steps_and_each_reads_up_to_its_end(recorder_graph, rclpy_context):
    """DDS repairs a lost episode event at the writer's next heartbeat (3 s): in a CI run the
    recorder got an episode's end after the next episode's first 150 steps, wrote them to
    the first bag (425 steps read back for 279) and the second bag lacked them (133 read
    back). Here the recorder sees what it saw then: steps after the end, the late end, then
    the next START, stamped before the steps it already wrote."""
    graph, bags = recorder_graph
    tester = node(rclpy_context, "tester", namespace="/rec")
    episode = tester.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    states = tester.create_publisher(JointState, "joint_states", topic("joint_states").writer_qos)
    commands = tester.create_publisher(JointCommand, "command", topic("command").writer_qos)
    spin_until(rclpy_context, [tester], lambda: commands.get_subscription_count() > 0, timeout_s=10)
    assert recorder_ready(rclpy_context, tester), graph.output()

    def stamp(tick):
        return Time(sec=100 + tick // 50, nanosec=(tick % 50) * 20_000_000)

    def event(episode_id, kind, tick):
        msg = start_event(episode_id, kind)
        msg.header.stamp = stamp(tick)
        return msg

    def ticks(first, last):
        for tick in range(first, last):
            state, command = joint_state(tick * 1e-4), JointCommand(positions=[tick * 1e-4] * 14, source=JointCommand.SOURCE_OPERATOR)
            state.header.stamp = command.header.stamp = stamp(tick)
            states.publish(state)
            commands.publish(command)
            spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.01)
        spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.3)

    episode.publish(event("rec-a", EpisodeEvent.START, 0))
    assert graph.wait_for(r"recording rec-a"), graph.output()
    ticks(0, 45)  # rec-a's ticks 0-29, the robot standing until 40, rec-b's first five
    episode.publish(event("rec-a", EpisodeEvent.SUCCESS, 29))
    episode.publish(event("rec-b", EpisodeEvent.START, 40))
    assert graph.wait_for(r"recording rec-b .*10 messages from before its START"), graph.output()
    ticks(45, 60)
    episode.publish(event("rec-b", EpisodeEvent.SUCCESS, 59))
    assert graph.wait_for(r"rec-b: success"), graph.output()
    store = aloe_typestore()
    first, second = (read_episode(bags / name, store) for name in ("rec-a", "rec-b"))
    assert np.allclose(first.joints[:, 0], np.arange(0, 30) * 1e-4), first.joints[:, 0] / 1e-4
    assert np.allclose(second.joints[:, 0], np.arange(40, 60) * 1e-4), second.joints[:, 0] / 1e-4
    assert np.allclose(second.actions, second.joints) and first.outcome == second.outcome == "success"


def test_a_recorder_held_up_for_a_second_still_records_every_state(recorder_graph, rclpy_context):
    """A recorder that falls behind (a loaded machine) gets the backlog from DDS once it runs
    again: with the contract's 10 samples per reader, a lockstep bag once lost 36 states of
    279 at its start. The publisher keeps what the contract has publishers keep (200 for the
    streams; with 10 it lost all but the last 10 here); DDS resends what the stopped reader
    missed at the writer's next heartbeat (seconds)."""
    graph, bags = recorder_graph
    tester = node(rclpy_context, "tester", namespace="/rec")
    episode = tester.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    states = tester.create_publisher(JointState, "joint_states", topic("joint_states").writer_qos)
    spin_until(rclpy_context, [tester], lambda: states.get_subscription_count() > 0, timeout_s=10)
    assert recorder_ready(rclpy_context, tester), graph.output()
    episode.publish(start_event("rec-held"))
    assert graph.wait_for(r"recording rec-held"), graph.output()
    recorder = graph.pid_of("recorder")
    os.kill(recorder, signal.SIGSTOP)
    try:
        for step in range(150):
            states.publish(joint_state(float(step)))
            spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.005)
    finally:
        os.kill(recorder, signal.SIGCONT)
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=6.0)  # the backlog drains
    episode.publish(start_event("rec-held", EpisodeEvent.SUCCESS))
    assert graph.wait_for(r"rec-held: success"), graph.output()
    positions = [s.position[0] for s in read_with_mcap(bags / "rec-held")["/rec/joint_states"]]
    assert positions == [float(k) for k in range(150)]


def test_recorder_killed_mid_episode_loses_at_most_the_last_flush(recorder_graph, rclpy_context):
    graph, bags = recorder_graph
    tester = node(rclpy_context, "tester", namespace="/rec")
    episode = tester.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    states = tester.create_publisher(JointState, "joint_states", topic("joint_states").qos)
    episode.publish(start_event("rec-2"))
    assert graph.wait_for(r"recording rec-2"), graph.output()
    for step in range(150):  # 3 s at 50 Hz
        states.publish(joint_state(float(step)))
        spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.02)
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=1.5)  # past a flush after the last one
    os.kill(graph.pid_of("recorder"), signal.SIGKILL)
    bag = bags / "rec-2"
    assert needs_recovery(bag)
    assert main(["bag", "recover", str(bags)]) == 0
    positions = [s.position[0] for s in read_with_mcap(bag)["/rec/joint_states"]]
    assert positions == [float(k) for k in range(150)]
    assert np.all(np.diff(positions) > 0)


def test_a_full_disk_stops_recording_with_one_clear_error_and_the_mux_keeps_commanding(bringup, tmp_path, rclpy_context):  # noqa: F811
    params = tmp_path / "recorder.yaml"
    params.write_text(
        f"/**/recorder:\n  ros__parameters:\n    use_sim_time: false\n    out_dir: {tmp_path / 'bags'}\n    flush_every_s: 0.2\n"
        "/**/command_mux:\n  ros__parameters:\n    use_sim_time: false\n"
    )
    # Room for 3 MB per file: the first few VGA frames fit, then the disk is "full".
    graph = bringup("--namespace", "full", "--only", "recorder", "--only", "command_mux", "--params", str(params),
                    file_size_limit=3_000_000)
    assert graph.wait_for(r"\[recorder\].*ready") and graph.wait_for(r"\[command_mux\].*ready"), graph.output()
    tester = node(rclpy_context, "tester", namespace="/full")
    episode = tester.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    images = tester.create_publisher(Image, "cameras/head/image_raw", topic("cameras/head/image_raw").qos)
    states = tester.create_publisher(JointState, "joint_states", topic("joint_states").qos)
    commands = []
    tester.create_subscription(JointCommand, "command", commands.append, topic("command").qos)
    episode.publish(start_event("full-1"))
    assert graph.wait_for(r"recording full-1"), graph.output()
    frame = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=bytes(640 * 480 * 3))
    for step in range(20):
        images.publish(frame)
        states.publish(joint_state(0.1))
        spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.05)
    error = graph.wait_for(r"recording stopped: .*", timeout_s=10)
    assert error and "File too large" in error.group(0) and "the robot is unaffected" in error.group(0), graph.output()
    # The recorder lives on and the rest of the graph is untouched: the mux still holds the
    # robot, whose joint states keep coming (on a loaded machine the mux may have matched
    # the tester's publisher only after the states above).
    commands.clear()
    holding = lambda: states.publish(joint_state(0.1)) or len(commands) >= 10  # noqa: E731
    assert spin_until(rclpy_context, [tester], holding, timeout_s=10), graph.output()
    assert graph.process.poll() is None and "Traceback" not in graph.output()
    # What reached the disk before it filled is a bag the independent reader opens.
    assert main(["bag", "recover", str(tmp_path / "bags" / "full-1")]) == 0
    assert len(read_with_mcap(tmp_path / "bags" / "full-1")["/full/episode"]) == 1


def test_aloe_record_writes_one_bag_per_episode_and_stops(ros_domain, tmp_path):
    # Lockstep (real-time factor 0): paced at 2, a loaded CI machine let the operator fall
    # behind the free-running sim and a bag held 81 commands against 262 joint states.
    result = subprocess.run(
        [sys.executable, "-m", "aloe.cli", "record", "--task", "insertion", "--episodes", "2", "--first-seed", "5",
         "--out", str(tmp_path / "bags"), "--real-time-factor", "0", "--namespace", "rec_cli"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    bags = sorted((tmp_path / "bags").iterdir())
    assert len(bags) == 2, result.stdout[-3000:]
    assert f"2 episode bags in {tmp_path / 'bags'}: " in result.stdout
    for bag in bags:
        meta = custom_data(bag)
        assert meta["aloe.task"] == "insertion" and meta["aloe.outcome"] in ("success", "failure")
        topics = read_with_mcap(bag)
        assert len(topics["/rec_cli/joint_states"]) > 100 and len(topics["/rec_cli/command"]) > 100
        assert {c.source for c in topics["/rec_cli/command"]} >= {JointCommand.SOURCE_OPERATOR}
    assert "node 'episode_runner' finished its work" in result.stdout

    # The recorded bags as a LeRobot dataset, read back: the episodes the bags give.
    assert main(["export", str(tmp_path / "bags"), "--out", str(tmp_path / "dataset"), "--no-progress"]) == 0
    direct, _ = load_bags(tmp_path / "bags", aloe_typestore(), image_size=(96, 128))
    back = read_dataset(tmp_path / "dataset", (96, 128))
    assert [e.episode_id for e in back] == [e.episode_id for e in direct]
    for episode, expected in zip(back, direct):
        np.testing.assert_array_equal(episode.actions, expected.actions)
        np.testing.assert_array_equal(episode.operator, expected.operator)
        assert episode.outcome == expected.outcome and episode.instruction == expected.instruction
        assert np.abs(episode.images.astype(int) - expected.images.astype(int)).mean() < 2.0


def test_aloe_record_stopped_before_its_episodes_fails_and_resumes_with_the_rest(ros_domain, tmp_path):
    command = [sys.executable, "-m", "aloe.cli", "record", "--task", "insertion", "--episodes", "4", "--out", str(tmp_path / "bags"),
               "--real-time-factor", "0", "--namespace", "rec_stop"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "bags").glob("*/metadata.yaml")):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # an operator's Ctrl-C after the first episode
    stdout, stderr = process.communicate(timeout=60)
    recorded = [p for p in (tmp_path / "bags").iterdir() if p.is_dir()]
    assert 1 <= len(recorded) < 4, stdout[-2000:]
    assert process.returncode == 1, stdout[-2000:] + stderr[-2000:]
    assert f"stopped after {len(recorded)} of 4 episodes" in stderr
    finished = {bag.name: custom_data(bag)["aloe.seed"] for bag in recorded
                if (bag / "metadata.yaml").exists() and custom_data(bag)["aloe.outcome"] != "truncated"}

    # Resumed: the finished episodes stay as they were, the others are recorded, each seed once.
    result = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"resuming: {len(finished)} of 4 episodes already recorded" in result.stdout
    bags = [p for p in (tmp_path / "bags").iterdir() if p.is_dir()]
    seeds = sorted(custom_data(bag)["aloe.seed"] for bag in bags)
    assert seeds == ["0", "1", "2", "3"], result.stdout[-3000:]
    assert all(custom_data(bag)["aloe.outcome"] in ("success", "failure") for bag in bags)
    assert {bag.name: custom_data(bag)["aloe.seed"] for bag in bags if bag.name in finished} == finished
    assert f"{4 - len(finished)} episode bag" in result.stdout
