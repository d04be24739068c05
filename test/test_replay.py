"""`aloe play` republishes a recorded episode with /clock, and with a critic its Q trajectory."""
import subprocess
import sys
import threading

import pytest
from aloe_msgs.msg import JointCommand, QValue
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from aloe.data.recording import aloe_typestore
from aloe.graph.topics import topic
from ros_helpers import node, spin_until
from test_bag_dataset import UNIT, write_bag
from test_policy_node import checkpoints  # noqa: F401  (fixture)


def test_play_republishes_the_episode_and_its_q_trajectory(rclpy_context, tmp_path, checkpoints):  # noqa: F811
    critic, _ = checkpoints
    write_bag(aloe_typestore(), tmp_path / "ep", steps=100, dof=14)
    tester = node(rclpy_context, "tester")
    got = {"states": [], "commands": [], "images": [], "q": [], "clock": []}
    tester.create_subscription(JointState, "/r/joint_states", got["states"].append, topic("joint_states").qos)
    tester.create_subscription(JointCommand, "/r/command", got["commands"].append, topic("command").qos)
    tester.create_subscription(Image, "/r/cameras/head/image_raw", got["images"].append, topic("cameras/head/image_raw").qos)
    tester.create_subscription(QValue, "/r/critic/q_value", got["q"].append, topic("critic/q_value").qos)
    tester.create_subscription(Clock, "/clock", got["clock"].append, topic("/clock").qos)
    player = subprocess.Popen([sys.executable, "-m", "aloe.cli", "play", str(tmp_path / "ep"), "--rate", "2", "--critic", str(critic),
                               "--delay", "8"],  # discovery on a busy machine (3 s lost the first state once)
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    threading.Thread(target=lambda: output.extend(player.stdout), daemon=True).start()
    assert spin_until(rclpy_context, [tester], lambda: player.poll() is not None, timeout_s=90), "".join(output)
    spin_until(rclpy_context, [tester], lambda: False, timeout_s=0.5)
    assert player.returncode == 0, "".join(output)
    assert "played 229 messages" in "".join(output)  # 100 states, 99 commands, 10 x 3 images
    assert [s.position[0] for s in got["states"]] == pytest.approx([(k + 0.5) * UNIT for k in range(100)])
    assert len(got["commands"]) == 99 and len(got["images"]) == 10
    assert [q.chunk_id for q in got["q"]] == list(range(0, 99, 10))  # the episode's steps: those with a command
    assert all(q.pessimistic <= q.mean for q in got["q"]) and got["clock"]
