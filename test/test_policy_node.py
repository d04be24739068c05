"""The policy node over real DDS: streams chunks as 50 Hz commands with their version and
Q, and hot-swaps a checkpoint at a chunk boundary without the robot waiting for it."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aloe_msgs.msg import ActionChunk, EpisodeEvent, JointCommand, QValue, TakeoverRequest
from aloe_msgs.srv import LoadCheckpoint
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from aloe.graph.topics import CAMERAS, camera_topic, topic
from aloe.learning.checkpoint import load_checkpoint
from ros_helpers import call_service, node, spin_until
from test_bringup import bringup  # noqa: F401  (fixture)

TINY = Path(__file__).parent / "tiny_train.yaml"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An ALOE checkpoint (with a critic) and a BC one trained from it: two versions."""
    folder = tmp_path_factory.mktemp("checkpoints")
    train = [sys.executable, "-m", "aloe.cli", "train", "--config", str(TINY), "--no-progress", "--synthetic", "4"]
    subprocess.run([*train, "--algo", "aloe", "--out", str(folder / "aloe.safetensors")], check=True, capture_output=True, timeout=300)
    subprocess.run([*train, "--algo", "bc", "--out", str(folder / "bc.safetensors")], check=True, capture_output=True, timeout=300)
    return folder / "aloe.safetensors", folder / "bc.safetensors"


def publish_sensors(tester):
    """Joint states at 50 Hz and three 24x32 cameras at 5 Hz, as a robot would."""
    states = tester.create_publisher(JointState, "joint_states", topic("joint_states").qos)
    cameras = {c: tester.create_publisher(Image, camera_topic(c), topic(camera_topic(c)).qos) for c in CAMERAS}
    ticks = [0]

    def publish():
        stamp = tester.get_clock().now().to_msg()
        state = JointState(position=[0.1] * 14)
        state.header.stamp = stamp
        states.publish(state)
        if ticks[0] % 10 == 0:
            for publisher in cameras.values():
                image = Image(height=24, width=32, encoding="rgb8", step=96, data=bytes(np.full(24 * 32 * 3, 120, np.uint8)))
                image.header.stamp = stamp
                publisher.publish(image)
        ticks[0] += 1

    tester.create_timer(0.02, publish)


def start_policy(bringup, tmp_path, namespace, **settings):
    """The policy node alone in `namespace`, on the wall clock, with these parameters."""
    params = tmp_path / "policy.yaml"
    params.write_text("/**/policy:\n  ros__parameters:\n    use_sim_time: false\n"
                      + "".join(f"    {name}: {value}\n" for name, value in settings.items()))
    graph = bringup("--namespace", namespace, "--only", "policy", "--params", str(params))
    assert graph.wait_for(r"\[policy\].*ready", timeout_s=60), graph.output()
    return graph


def test_policy_streams_chunks_with_q_and_swaps_checkpoints_at_a_chunk_boundary(bringup, rclpy_context, tmp_path, checkpoints):  # noqa: F811
    first, second = checkpoints
    # Replanning every 2 of the 10 steps leaves 8 steps (160 ms) for inference on a busy machine.
    graph = start_policy(bringup, tmp_path, "pol", checkpoint=first, replan_every=2)

    tester = node(rclpy_context, "tester", namespace="/pol")
    commands, chunks, values = [], [], []
    tester.create_subscription(JointCommand, "policy/command", commands.append, topic("policy/command").qos)
    tester.create_subscription(ActionChunk, "policy/action_chunk", chunks.append, topic("policy/action_chunk").qos)
    tester.create_subscription(QValue, "critic/q_value", values.append, topic("critic/q_value").qos)
    # Ready for episodes only once matched with a robot's sensors and an episode manager.
    ready = tester.create_client(Trigger, "policy/ready")
    assert not spin_until(rclpy_context, [tester], ready.service_is_ready, timeout_s=2.0)
    assert graph.wait_for(r"not yet ready for episodes: waiting for .*/pol/joint_states", timeout_s=10), graph.output()
    publish_sensors(tester)
    episode = tester.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    response = call_service(rclpy_context, tester, ready, Trigger.Request(), timeout_s=20)
    assert response is not None and response.success, graph.output()
    episode.publish(EpisodeEvent(episode_id="e1", kind=EpisodeEvent.START, task="insertion", instruction="pack the phone"))
    assert spin_until(rclpy_context, [tester], lambda: len(commands) >= 50, timeout_s=60), graph.output()
    version_one = load_checkpoint(first).version
    assert {c.policy_version for c in commands} == {version_one} and all(c.source == JointCommand.SOURCE_POLICY for c in commands)
    assert chunks and chunks[0].horizon == 10 and chunks[0].action_dim == 14 and len(chunks[0].actions) == 140
    assert values and {v.chunk_id for v in values} <= {c.chunk_id for c in chunks} and len(values[0].members) == 3
    assert values[0].pessimistic <= values[0].mean  # min over the ensemble

    # Hot swap: the new version appears in the stream, and the stream never pauses for it.
    client = tester.create_client(LoadCheckpoint, "load_checkpoint")
    response = call_service(rclpy_context, tester, client, LoadCheckpoint.Request(path=str(second)), timeout_s=60)
    version_two = load_checkpoint(second).version
    assert response.success and response.policy_version == version_two, response
    swap_from = len(commands)
    assert spin_until(rclpy_context, [tester], lambda: commands[-1].policy_version == version_two, timeout_s=30)
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.5)
    versions = [c.policy_version for c in commands[swap_from:]]
    switch = swap_from + versions.index(version_two)
    assert {c.policy_version for c in commands[swap_from:switch]} <= {version_one}
    assert {c.policy_version for c in commands[switch:]} == {version_two}  # one clean switch, no way back
    # At the switch, the new model's first chunk came before the old chunk's 10 steps
    # (0.2 s) ran out, so the robot did not wait for it (a tick of slack for a busy machine).
    stamp = lambda c: c.header.stamp.sec + c.header.stamp.nanosec * 1e-9  # noqa: E731
    assert stamp(commands[switch]) - stamp(commands[switch - 1]) < 0.2 + 0.04

    # A bad checkpoint is refused with a reason; the running one stays.
    response = call_service(rclpy_context, tester, client, LoadCheckpoint.Request(path=str(tmp_path / "missing.safetensors")))
    assert not response.success and "does not exist" in response.message and response.policy_version == version_two


def test_a_low_q_requests_a_takeover_once_per_episode(bringup, rclpy_context, tmp_path, checkpoints):  # noqa: F811
    first, _ = checkpoints
    # Every Q is below the threshold: it asks at the first chunk.
    graph = start_policy(bringup, tmp_path, "ask", checkpoint=first, replan_every=5, takeover_below="1.0e9")
    tester = node(rclpy_context, "tester", namespace="/ask")
    requests, values = [], []
    tester.create_subscription(TakeoverRequest, "critic/takeover_request", requests.append, topic("critic/takeover_request").qos)
    tester.create_subscription(QValue, "critic/q_value", values.append, topic("critic/q_value").qos)
    publish_sensors(tester)
    episode = tester.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    episode.publish(EpisodeEvent(episode_id="e1", kind=EpisodeEvent.START, task="insertion", instruction="pack the phone"))
    assert spin_until(rclpy_context, [tester], lambda: len(values) >= 5, timeout_s=60), graph.output()
    assert len(requests) == 1 and "below" in requests[0].reason and requests[0].chunk_id == values[0].chunk_id
    episode.publish(EpisodeEvent(episode_id="e2", kind=EpisodeEvent.START, task="insertion", instruction="pack the phone"))
    assert spin_until(rclpy_context, [tester], lambda: len(requests) == 2, timeout_s=30)
    assert graph.wait_for(r"takeover requested: pessimistic Q")


def test_a_checkpoint_conditioned_on_simulator_state_is_refused(bringup, tmp_path):  # noqa: F811
    # The privileged-state diagnostic (docs/results.md's ladder) must never drive a robot.
    config = tmp_path / "privileged.yaml"
    config.write_text(TINY.read_text().replace("model:\n", "model:\n  privileged_state_dim: 3\n", 1))
    checkpoint = tmp_path / "privileged.safetensors"
    subprocess.run([sys.executable, "-m", "aloe.cli", "train", "--config", str(config), "--no-progress", "--synthetic", "2",
                    "--algo", "bc", "--out", str(checkpoint)], check=True, capture_output=True, timeout=300)
    params = tmp_path / "policy.yaml"
    params.write_text(f"/**/policy:\n  ros__parameters:\n    checkpoint: {checkpoint}\n")
    graph = bringup("--namespace", "privileged", "--only", "policy", "--params", str(params))
    assert graph.finish() == 1
    assert graph.wait_for(r"node 'policy' exited with code 2: error: policy: .*conditioned on the simulator's object state"), graph.output()
