"""The middleware profile aloe's processes load (aloe.graph.transport): chosen unless the
user chose one, valid to Fast DDS, and a node under it still talks to processes that run
Fast DDS's defaults (a user's `ros2 bag`, rviz)."""
import os
import subprocess
import sys

from aloe.graph.transport import FASTDDS_PROFILE, USER_CHOICES, use_aloe_transport
from ros_helpers import spin_until

PUBLISHER = """
import time
import numpy as np
import rclpy
from sensor_msgs.msg import Image, JointState
from aloe.data.images import rgb8_fields
from aloe.graph.topics import CAMERAS, camera_topic, topic
from aloe.graph.transport import use_aloe_transport
use_aloe_transport()
rclpy.init()
node = rclpy.create_node("profile_publisher", namespace="/transport_test")
states = node.create_publisher(JointState, "joint_states", topic("joint_states").qos)
cameras = [node.create_publisher(Image, camera_topic(c), topic(camera_topic(c)).qos) for c in CAMERAS]
pixels = np.full((240, 320, 3), 7, dtype=np.uint8)
end = time.monotonic() + 20
k = 0
while time.monotonic() < end:
    states.publish(JointState(position=[float(k)] * 14))
    if k % 10 == 0:
        for camera in cameras:
            camera.publish(Image(**rgb8_fields(pixels)))
    k += 1
    time.sleep(0.02)
"""


def test_the_profile_is_chosen_unless_the_user_chose_one():
    environ = {}
    use_aloe_transport(environ)
    assert environ == {"FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE)} and FASTDDS_PROFILE.is_file()
    for name in USER_CHOICES:
        environ = {name: "theirs"}
        use_aloe_transport(environ)
        assert environ == {name: "theirs"}


def test_a_node_under_the_profile_reaches_a_reader_with_fast_dds_defaults(rclpy_context):
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState

    from aloe.graph.topics import camera_topic, topic

    env = {k: v for k, v in os.environ.items() if k not in USER_CHOICES}
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env, stderr=subprocess.PIPE, text=True)
    node = Node("default_reader", namespace="/transport_test", context=rclpy_context)
    states, images = [], []
    node.create_subscription(JointState, "joint_states", states.append, topic("joint_states").qos)
    node.create_subscription(Image, camera_topic("head"), images.append, topic(camera_topic("head")).qos)
    try:
        spin_until(rclpy_context, [node], lambda: (len(states) >= 20 and len(images) >= 2) or publisher.poll() is not None, 60)
    finally:
        publisher.kill()
        _, stderr = publisher.communicate()
        node.destroy_node()
    assert "XMLPARSER" not in stderr, stderr  # Fast DDS says so when it cannot read the profile
    assert len(states) >= 20 and len(images) >= 2, (len(states), len(images), stderr[-2000:])
    assert images[0].height == 240 and bytes(images[0].data[:3]) == b"\x07\x07\x07"
