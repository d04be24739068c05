"""sensor_msgs/Image <-> numpy for rgb8 and bgr8, shared by the nodes and the bag reader
(it works on rclpy's messages and on the ones rosbags decodes alike). No ROS imports."""
import numpy as np

ENCODINGS = ("rgb8", "bgr8")


class ImageEncodingError(ValueError):
    """An image this stack does not read; the message names its encoding."""


def rgb_array(msg) -> np.ndarray:
    """H x W x 3 RGB pixels of an rgb8 or bgr8 image (row padding in `step` dropped)."""
    if msg.encoding not in ENCODINGS:
        raise ImageEncodingError(f"image encoding '{msg.encoding}' is not {' or '.join(ENCODINGS)}")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    image = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return image[..., ::-1] if msg.encoding == "bgr8" else image


def rgb8_fields(pixels: np.ndarray) -> dict:
    """The fields of an rgb8 Image holding H x W x 3 `pixels`."""
    height, width = pixels.shape[:2]
    return {"height": height, "width": width, "encoding": "rgb8", "step": width * 3, "data": pixels.tobytes()}
