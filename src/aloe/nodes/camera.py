"""Camera: one real camera through OpenCV on `cameras/<camera>/image_raw` (rgb8).

`device` is a V4L2 index ("0") or anything OpenCV opens (a /dev/video path, a stream URL,
a video file). A camera that stops delivering frames (unplugged, a stream that ended) is
reported once and reopened every `retry_s` until it is back; the node never dies of it.
Capture runs in its own thread so a slow device never holds up the executor. Run one per
camera:

    .venv/bin/camera --ros-args -r __ns:=/aloe -r __node:=head_camera -p camera:=head -p device:=0
"""
import sys
import threading
import time

import cv2
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image

from aloe.data.images import rgb8_fields
from aloe.graph.topics import CAMERAS, camera_topic, topic
from aloe.nodes.entry import NodeConfigError, declare_checked, run

PARAMETERS = {
    "camera": "head",  # head | left_wrist | right_wrist
    "device": "0",
    "width": 640,
    "height": 480,
    "rate_hz": 30.0,
    "frame_id": "",  # default: the camera's name
    "retry_s": 1.0,
}


class CameraNode(Node):
    def __init__(self):
        super().__init__("camera")
        self.running, self.thread = False, None  # destroy_node needs them, also after a refused configuration
        declare_checked(self, PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.camera = value("camera")
        if self.camera not in CAMERAS:
            raise NodeConfigError(f"camera: camera must be one of {', '.join(CAMERAS)}, got '{self.camera}'")
        if value("rate_hz") <= 0 or value("width") <= 0 or value("height") <= 0:
            raise NodeConfigError("camera: rate_hz, width and height must be positive")
        device = value("device")
        self.device = int(device) if device.isdigit() else device
        self.size = (value("width"), value("height"))
        self.period, self.retry_s = 1.0 / value("rate_hz"), value("retry_s")
        self.frame_id = value("frame_id") or self.camera
        name = camera_topic(self.camera)
        self.output = self.create_publisher(Image, name, topic(name).writer_qos)
        self.running = True
        self.thread = threading.Thread(target=self.capture_loop, daemon=True)
        self.thread.start()

    def open(self):
        capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            return None
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        return capture

    def capture_loop(self) -> None:
        capture, lost_since, frames = None, None, 0
        next_frame = time.monotonic()
        while self.running:
            if capture is None:
                capture = self.open()
                if capture is None:
                    if lost_since is None:
                        lost_since = time.monotonic()
                        self.get_logger().error(f"camera {self.camera}: cannot open device {self.device!r}; retrying every {self.retry_s:g} s")
                    time.sleep(self.retry_s)
                    continue
                if lost_since is not None:
                    self.get_logger().info(f"camera {self.camera}: device {self.device!r} is back after {time.monotonic() - lost_since:.1f} s")
                    lost_since = None
                else:
                    self.get_logger().info(f"camera {self.camera}: streaming device {self.device!r}")
            ok, frame = capture.read()
            if not ok:
                capture.release()
                capture, lost_since = None, time.monotonic()
                self.get_logger().error(f"camera {self.camera}: device {self.device!r} stopped delivering frames after {frames}; reopening")
                continue
            frames += 1
            self.publish(frame)
            next_frame += self.period
            time.sleep(max(0.0, next_frame - time.monotonic()))
            next_frame = max(next_frame, time.monotonic() - self.period)  # do not burst after a stall
        if capture is not None:
            capture.release()

    def publish(self, bgr: np.ndarray) -> None:
        if (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        msg = Image(**rgb8_fields(rgb))
        msg.header.stamp, msg.header.frame_id = self.get_clock().now().to_msg(), self.frame_id
        self.output.publish(msg)

    def destroy_node(self):
        self.running = False
        if self.thread is not None:
            self.thread.join(timeout=2.0)
        super().destroy_node()


def main():
    sys.exit(run(CameraNode))


if __name__ == "__main__":
    main()
