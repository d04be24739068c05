"""The OpenCV camera node over real DDS: frames from a device (here a video file) as rgb8,
and a device that stops is reported and reopened, not a crash."""
import cv2
import numpy as np
from sensor_msgs.msg import Image

from aloe.graph.topics import topic
from ros_helpers import node, spin_until
from test_bringup import bringup  # noqa: F401  (fixture)


def test_camera_streams_a_device_and_reopens_it_when_it_stops(bringup, rclpy_context, tmp_path):  # noqa: F811
    video = tmp_path / "device.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for k in range(15):  # half a second; then the "device" ends and must be reopened
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[..., 2] = 200  # red in OpenCV's BGR
        writer.write(frame)
    writer.release()
    params = tmp_path / "camera.yaml"
    params.write_text(f"/**/head_camera:\n  ros__parameters:\n    device: {video}\n    width: 32\n    height: 24\n"
                      "    rate_hz: 30.0\n    retry_s: 0.2\n")
    graph = bringup("--namespace", "cam", "--only", "head_camera", "--params", str(params))
    assert graph.wait_for(r"\[head_camera\].*ready"), graph.output()
    tester = node(rclpy_context, "tester", namespace="/cam")
    images = []
    tester.create_subscription(Image, "cameras/head/image_raw", images.append, topic("cameras/head/image_raw").qos)
    assert spin_until(rclpy_context, [tester], lambda: len(images) >= 25, timeout_s=20), graph.output()
    image = images[-1]
    assert (image.width, image.height, image.encoding, image.header.frame_id) == (32, 24, "rgb8", "head")
    pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(24, 32, 3)
    assert pixels[..., 0].mean() > 150 and pixels[..., 2].mean() < 50  # red, now in RGB order
    assert graph.wait_for(r"stopped delivering frames after \d+; reopening") and graph.wait_for(r"streaming|is back"), graph.output()
