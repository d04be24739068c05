"""Camera images as the encoder sees them: the head camera cut to the workspace, each camera
resized by area averaging. Shared by training, the policy at run time and the bag cache, so
all three see the same pixels. No ROS, no torch."""
import numpy as np


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
