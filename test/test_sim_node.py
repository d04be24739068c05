"""The simulated robot behind ROS: the per-tick logic without a graph, then the node over
real DDS, then the whole default graph running scripted episodes to the end."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from aloe_msgs.msg import JointCommand
from aloe_msgs.srv import ResetSim
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from aloe.data.bag_dataset import load_bags, read_episode
from aloe.data.demonstrations import action_mismatch, demonstrate
from aloe.data.recording import aloe_typestore
from aloe.graph.topics import CAMERAS, camera_topic, topic
from aloe.sim.env import SimError
from aloe.sim.scene import HOME
from aloe.sim.session import SimSession
from ros_helpers import call_service, node, spin_until
from test_bringup import bringup  # noqa: F401  (fixture)

TINY = Path(__file__).parent / "tiny_train.yaml"


@pytest.fixture
def session():
    session = SimSession(image_size=(48, 64), camera_rate_hz=10.0, start_time=100.0)
    yield session
    session.close()


def test_session_renders_at_the_camera_rate_and_its_clock_never_goes_back(session):
    session.reset("sorting", 1)
    ticks = [session.tick(None) for _ in range(20)]
    assert [t.images is not None for t in ticks] == [k % 5 == 4 for k in range(20)]
    assert set(ticks[4].images) == set(CAMERAS)
    session.reset("insertion", 2)  # the robot's own time restarts; the published clock does not
    after = session.tick(None)
    assert after.time > ticks[-1].time
    np.testing.assert_allclose(after.time, 100.0 + 21 * 0.02)


def test_session_operator_works_episodes_only_and_the_outcome_is_reported_once(session):
    session.reset("insertion", 3)
    assert session.tick(None).operator_command is None  # no episode yet: nothing drives
    session.begin_episode()
    outcomes, command = [], None
    for _ in range(1000):
        tick = session.tick(command)
        command = tick.operator_command
        if tick.outcome:
            outcomes.append(tick.outcome)
    assert len(outcomes) == 1 and outcomes[0][0] == "success"
    assert "grasped, inserted" in outcomes[0][1]
    with pytest.raises(SimError, match="valid: insertion, drawer, sorting"):
        session.reset("laundry", 0)


def test_in_takeover_mode_the_operator_waits_then_drives_from_where_the_policy_left_it():
    session = SimSession(image_size=(48, 64), operator_mode="takeover", takeover_after_s=1.0)
    session.reset("insertion", 3)
    session.begin_episode()
    drift = session.robot.joint_positions().copy()
    drift[:6] += 0.3  # a "policy" that moved the left arm somewhere else
    ticks = [session.tick(drift) for _ in range(49)]
    assert all(t.operator_command is None for t in ticks) and not session.operator_driving
    assert session.tick(drift).operator_command is not None  # 1 s of episode time: it takes over
    assert not session.take_over()  # already driving
    command, outcome = None, None
    for _ in range(1000):
        tick = session.tick(command)
        command, outcome = tick.operator_command, outcome or tick.outcome
    assert outcome and outcome[0] == "success"
    with pytest.raises(ValueError, match="operator_mode must be one of demonstrate, takeover"):
        SimSession(operator_mode="sometimes")
    session.close()


def test_sim_node_publishes_its_topics_obeys_commands_and_resets(bringup, rclpy_context, tmp_path):  # noqa: F811
    params = tmp_path / "sim.yaml"
    params.write_text(
        "/**/sim_robot:\n  ros__parameters:\n    image_height: 48\n    image_width: 64\n"
        "    camera_rate_hz: 10.0\n    scripted_operator: false\n"
    )
    graph = bringup("--namespace", "simnode", "--only", "sim_robot", "--params", str(params))
    assert graph.wait_for(r"\[sim_robot\].*ready", timeout_s=60), graph.output()
    tester = node(rclpy_context, "tester", namespace="/simnode")
    seen = {name: [] for name in ("joint_states", "/clock", *(camera_topic(c) for c in CAMERAS))}
    for name, msg_type in (("joint_states", JointState), ("/clock", Clock), *((camera_topic(c), Image) for c in CAMERAS)):
        tester.create_subscription(msg_type, name, seen[name].append, topic(name).qos)
    assert spin_until(rclpy_context, [tester], lambda: all(len(v) >= 3 for v in seen.values()), timeout_s=60), {k: len(v) for k, v in seen.items()}
    image = seen[camera_topic("head")][-1]
    assert (image.height, image.width, image.encoding, len(image.data)) == (48, 64, "rgb8", 48 * 64 * 3)
    assert list(seen["joint_states"][-1].name)[:2] == ["left_waist", "left_shoulder"]
    clock = [c.clock.sec + c.clock.nanosec * 1e-9 for c in seen["/clock"]]
    assert all(b > a for a, b in zip(clock, clock[1:]))

    # A command moves the robot: the left waist turns to 0.3 rad.
    command = tester.create_publisher(JointCommand, "command", topic("command").qos)
    target = HOME.copy()
    target[0] = 0.3
    timer = tester.create_timer(0.02, lambda: command.publish(JointCommand(positions=target.tolist())))
    assert spin_until(rclpy_context, [tester], lambda: abs(seen["joint_states"][-1].position[0] - 0.3) < 0.02, timeout_s=20)
    tester.destroy_timer(timer)

    reset = tester.create_client(ResetSim, "sim/reset")
    bad = call_service(rclpy_context, tester, reset, ResetSim.Request(task="laundry"), timeout_s=20)
    assert not bad.success and "valid: insertion, drawer, sorting" in bad.message
    good = call_service(rclpy_context, tester, reset, ResetSim.Request(task="sorting", seed=4, variant="unseen"))
    assert good.success and good.instruction.startswith("put the ")
    bad_disturbance = call_service(rclpy_context, tester, reset, ResetSim.Request(task="sorting", disturbances="wind:1"))
    assert not bad_disturbance.success and "unknown disturbance 'wind'" in bad_disturbance.message

    # Reset above: the robot now stands at home in the new scene; a NaN command leaves it there.
    nan = JointCommand(positions=[float("nan")] * 14)
    tester.create_timer(0.02, lambda: command.publish(nan))
    assert graph.wait_for(r"rejected command: command contains NaN or inf; holding", timeout_s=0.1) is None
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=1.0)
    assert graph.wait_for(r"rejected command: command contains NaN or inf; holding"), graph.output()
    np.testing.assert_allclose(seen["joint_states"][-1].position[:6], HOME[:6], atol=0.02)
    graph.interrupt()
    assert graph.finish() == 0, graph.output()


def test_default_graph_runs_scripted_episodes_through_the_mux_and_ends_by_itself(bringup, tmp_path):  # noqa: F811
    params = tmp_path / "episodes.yaml"
    params.write_text(
        "/**/episode_runner:\n  ros__parameters:\n    tasks: [insertion, sorting]\n    first_seed: 3\n"
        "/**/sim_robot:\n  ros__parameters:\n    real_time_factor: 2.0\n"
        f"/**/recorder:\n  ros__parameters:\n    out_dir: {tmp_path / 'bags'}\n"
    )
    graph = bringup("--namespace", "episodes", "--params", str(params))
    assert graph.finish(timeout_s=240) == 0, graph.output()
    out = graph.output()
    # Whether the expert succeeds in a loaded graph is a figure (benchmarks/sim.py, the closing
    # notes), not something to assert here: each episode must end with the detector's verdict.
    done = re.search(r"done: \d/2 episodes succeeded: insertion/3 (SUCCESS|FAILURE), sorting/3 (SUCCESS|FAILURE)", out)
    assert done, out
    outcomes = {"insertion": done.group(1).lower(), "sorting": done.group(2).lower()}
    assert "in control: OPERATOR (operator live)" in out  # the expert's commands went through the mux
    assert "node 'episode_runner' finished its work" in out
    for name in ("/episodes/joint_states", "/episodes/cameras/head/image_raw", "/clock", "/episodes/operator/command", "/episodes/episode"):
        assert f"topic {name} (" in out

    # Each episode is in its own bag; it decodes into the episode the operator drove.
    episodes, skipped = load_bags(tmp_path / "bags", aloe_typestore(), image_size=(24, 32), cache_dir=tmp_path / "cache")
    assert not skipped and sorted(e.task for e in episodes) == ["insertion", "sorting"]
    for episode in episodes:
        assert episode.outcome == outcomes[episode.task]
        # The mux holds until the operator's first command arrives, then the operator drives
        # (the mux's watchdog may hold for a tick or two when its messages come late). The
        # first episode of a new graph may start before DDS discovery has matched the
        # operator with the mux: 164 steps (3.3 s of sim time at 2x) seen on a slow machine.
        first = int(np.argmax(episode.operator))
        arrives_within = 25 if episode.task == "sorting" else 500
        assert first < arrives_within and episode.operator[first:].mean() > 0.9, np.flatnonzero(~episode.operator)
        assert 100 < len(episode) <= 45 * 50 + 5 and episode.images.shape[1:] == (3, 24, 32, 3)
        # Cameras at 5 Hz, steps at 50 Hz: an image set every 10 steps (fewer where the
        # recorder missed a joint state).
        gaps = np.diff(episode.image_steps)
        assert np.all((gaps > 0) & (gaps <= 10)) and np.median(gaps) == 10
        assert episode.actions.shape[1] == episode.joints.shape[1] == 14
        # The task's stages came on task/stages: a success had reached them all by its end.
        assert episode.stage_progress is not None and np.all(np.diff(episode.stage_progress) >= 0)
        assert episode.stage_progress[-1] == 1.0 or episode.outcome != "success"
    # And `aloe train --bags` trains on them.
    model = tmp_path / "bc.safetensors"
    train = subprocess.run([sys.executable, "-m", "aloe.cli", "train", "--config", str(TINY), "--no-progress", "--algo", "bc",
                            "--bags", str(tmp_path / "bags"), "--out", str(model)], capture_output=True, text=True, timeout=300)
    assert train.returncode == 0 and model.exists(), train.stderr
    assert "bc on 2 episodes" in train.stderr


def test_at_full_speed_recorded_demonstrations_match_the_in_process_ones_beside_a_cpu_hog(bringup, tmp_path):  # noqa: F811
    """At real_time_factor 0 the sim waits for its operator's command to come back through
    the mux, so a loaded machine slows the recording but does not change it. Free-running,
    drawer's demonstrations through the graph ran ~40 % longer than in process, with the
    operator timed out by the mux several times an episode. The second episode starts after
    a reset: its bag once opened with the mux's ramp from the first episode's last pose.
    The recorder is held up for 1 s in the first episode, as a loaded machine does: with
    publishers keeping 10 samples, its bag lost steps (34 of 279 for 1.5 s; CI failed this
    test so)."""
    hog = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        graph = bringup("--task", "insertion", "--episodes", "2", "--first-seed", "503", "--out", str(tmp_path / "bags"),
                        "--real-time-factor", "0", "--namespace", "lockstep", command="record")
        assert graph.wait_for(r"\[recorder\].*recording sim-\S*-0001", timeout_s=120), graph.output()[-3000:]
        recorder = graph.pid_of("recorder")
        # Early and short enough to resume before the episode ends (2.2 s on a fast machine):
        # episode events sent to a stopped recorder have been seen not to reach it (notes).
        time.sleep(0.2)
        os.kill(recorder, signal.SIGSTOP)
        try:
            time.sleep(1.0)
        finally:
            os.kill(recorder, signal.SIGCONT)
        code = graph.finish(timeout_s=240)
    finally:
        hog.kill()
        hog.wait()
    output = graph.output()
    assert code == 0, output[-5000:]
    # Within each episode, from its reset to its outcome (between and after them the scripted
    # operator stops, and a hand-back that comes late reads as silence: no matter)
    episodes = re.findall(r"reset to insertion seed 50[34].*?sim_robot\]: episode ", output, flags=re.S)
    assert len(episodes) == 2, output[-3000:]
    for text in episodes:
        assert "operator silent" not in text and "no command within" not in text, text[-3000:]
    bags = sorted(p for p in (tmp_path / "bags").iterdir() if p.is_dir())
    assert len(bags) == 2
    for seed, bag in zip((503, 504), bags):
        recorded = read_episode(bag, aloe_typestore(), image_size=(24, 32))
        in_process = demonstrate("insertion", seed, camera_every=0)
        assert recorded.outcome == in_process["outcome"] == "success"
        # No pauses: not longer than in process (free-running: ~40 % longer; a loaded
        # recorder may open the bag a few steps late, so it can be shorter).
        steps = len(in_process["actions"])
        recorder_log = [line for line in output.splitlines() if line.startswith("[recorder]")]
        assert 0.9 * steps <= len(recorded.actions) <= 1.05 * steps, (seed, len(recorded.actions), steps, recorder_log)
        # The same actions at the same poses, in the fresh graph's first episode too (before
        # the sim expected the mux from its first tick, that episode ran free while the mux
        # waited for the pose at the operator's first command: 0.24 rad off under load). Read
        # in the order the recorder logged them, 6-13 % of insertion's steps got another
        # action (joint states come in bursts). Paired by stamp: 0-0.7 % here beside one to
        # three hogs, but 5.4 % (15 of 278 steps) once in a clean-clone CI run of the whole suite,
        # likely steps after the episode's end (the robot standing at its last poses, held)
        # that a late end event let into the bag: reading now ends the episode at its end.
        share, matched = action_mismatch(recorded.joints, recorded.actions, in_process["joints"], in_process["actions"])
        assert matched >= 0.9 * steps and share <= 0.08, (seed, share, matched, steps, len(recorded.actions), recorder_log)
