"""sensor_msgs/Image <-> numpy for rgb8 and bgr8, shared by the nodes and the bag reader
(it works on rclpy's messages and on the ones rosbags decodes alike), and the view of a
camera image the encoder takes. No ROS imports."""
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


def camera_view(image: np.ndarray, size, crop=()) -> np.ndarray:
    """One camera image as the encoder sees it: the window `crop` (top, left, height, width,
    as fractions of the image, so any camera resolution gives the same view) cut out first,
    then resized to `size` (height, width) by area averaging."""
    if crop:
        h, w = image.shape[:2]
        top, left, height, width = crop
        image = image[round(top * h):round((top + height) * h), round(left * w):round((left + width) * w)]
    if image.shape[:2] != tuple(size):
        import cv2

        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def resize_images(images: np.ndarray, size, head_crop=()) -> np.ndarray:
    """Camera images (cameras, h, w, 3) as the encoder sees them: (height, width) each, the
    head camera (the first) cut to `head_crop` first (`ModelConfig.head_crop`)."""
    if not head_crop and images.shape[1:3] == tuple(size):
        return images
    return np.stack([camera_view(image, size, head_crop if camera == 0 else ()) for camera, image in enumerate(images)])


def rgb8_fields(pixels: np.ndarray) -> dict:
    """The fields of an rgb8 Image holding H x W x 3 `pixels`."""
    height, width = pixels.shape[:2]
    return {"height": height, "width": width, "encoding": "rgb8", "step": width * 3, "data": pixels.tobytes()}
