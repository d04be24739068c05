"""The actor sees: where the right chunk depends only on where an object is in the image,
with the joints fixed, the trained actor's chunk follows the object. An encoder that ignores
the images (or images that carry no position) cannot pass."""
import numpy as np
import pytest
import torch

from aloe.learning.config import ModelConfig, TrainConfig
from aloe.learning.data import Episode
from aloe.learning.networks import random_shift
from aloe.learning.policy import Policy
from aloe.learning.train import train

SIZE = (24, 32)
HORIZON = 10


def scene(x: float, y: float) -> np.ndarray:
    """Three cameras; the head camera shows a bright square at (x, y) in [-1, 1]^2."""
    images = np.full((3, *SIZE, 3), 50, np.uint8)
    row, col = int((y + 1) / 2 * (SIZE[0] - 5)), int((x + 1) / 2 * (SIZE[1] - 5))
    images[0, row:row + 5, col:col + 5] = (250, 200, 40)
    return images


def episodes(rng, count: int) -> list:
    result = []
    for i in range(count):
        x, y = rng.uniform(-1, 1, 2)
        actions = np.zeros((HORIZON, 14), np.float32)
        actions[:, 0], actions[:, 1] = x, y  # reach towards the object: the chunk's first two joints
        result.append(Episode(np.zeros((HORIZON, 14)), actions, np.ones(HORIZON, bool), "success", "reach",
                              scene(x, y)[None], np.array([0]), "vision", f"vision-{i}"))
    return result


def config(use_images: bool) -> TrainConfig:
    # The object goes anywhere in the head image: the whole image, no window of the sim's workspace.
    model = ModelConfig(horizon=HORIZON, image_size=SIZE, use_images=use_images, use_language=False, feature_dim=64, keypoints=8,
                        encoder_widths=(16, 16, 32), actor_hidden=128, actor_blocks=1, flow_steps=5, head_crop=(), random_shift=0)
    return TrainConfig(algo="bc", model=model, pretrain_steps=600, improve_steps=0, critic_steps=0, batch_size=64, lr=1e-3)


def error_following_the_object(use_images: bool) -> float:
    """Mean absolute error of the chunk's first joint against the object's x, over held-out
    scenes (an actor that ignores the object errs by about 0.65 on this spread)."""
    torch.manual_seed(0)
    policy = Policy(train(config(use_images), episodes(np.random.default_rng(0), 200), progress=False))
    xs = np.linspace(-0.9, 0.9, 24)
    generator = torch.Generator().manual_seed(1)
    predicted = [policy.act(np.zeros(14, np.float32), scene(x, 0.3 * np.sin(3 * x)), "reach", generator)[:, 0].mean() for x in xs]
    return float(np.abs(np.array(predicted) - xs).mean())


def test_the_trained_actor_moves_with_the_object_in_the_image():
    assert error_following_the_object(use_images=True) < 0.2


def test_an_actor_without_images_cannot_follow_the_object():
    assert error_following_the_object(use_images=False) > 0.4


def test_random_shift_moves_whole_images_by_at_most_its_pixels():
    images = torch.rand(64, 3, 12, 16)
    shifted = random_shift(images, 2)
    assert shifted.shape == images.shape
    # Each output is the input shifted by one offset (rows and columns within +-2), edges copied.
    for image, out in zip(images, shifted):
        padded = torch.nn.functional.pad(image[None], (2, 2, 2, 2), mode="replicate")[0]
        matches = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(padded[:, dy:dy + 12, dx:dx + 16], out)]
        assert len(matches) == 1
    offsets = {(dy, dx) for image, out in zip(images, shifted) for dy in range(5) for dx in range(5)
               if torch.equal(torch.nn.functional.pad(image[None], (2,) * 4, mode="replicate")[0][:, dy:dy + 12, dx:dx + 16], out)}
    assert len(offsets) > 5  # a different offset per image, not one for the batch


@pytest.mark.parametrize("shift", [0, 3])
def test_the_encoder_shifts_only_while_training(shift):
    from aloe.learning.networks import ImageEncoder

    encoder = ImageEncoder(4, (8, 8), shift)
    images = torch.randint(0, 255, (8, 12, 16, 3), dtype=torch.uint8)
    encoder.eval()
    assert torch.equal(encoder(images), encoder(images))
    encoder.train()
    assert torch.equal(encoder(images), encoder(images)) == (shift == 0)


@pytest.mark.parametrize("strides, cells", [((), (3, 4)), ((2, 2, 1), (6, 8)), ((2, 1, 1), (12, 16))])
def test_the_keypoints_are_placed_on_the_last_layers_map_of_the_strides_asked(strides, cells):
    """A keypoint is the softmax-weighted mean position over the last layer's cells: one hot
    cell puts it on that cell's place in the grid, so the map's size is the grid the encoder
    places things on without blending cells."""
    from aloe.learning.networks import ImageEncoder

    encoder = ImageEncoder(4, (8, 8, 8), strides=strides)
    features = encoder.net(torch.zeros(1, 3, *SIZE))
    assert tuple(features.shape[-2:]) == cells
    hot = torch.full((1, 1, *cells), -1e4)
    hot[0, 0, 1, 2] = 1e4
    y, x = encoder.keypoints(hot)[0].tolist()
    assert (y, x) == pytest.approx((-1 + 2 * 1 / (cells[0] - 1), -1 + 2 * 2 / (cells[1] - 1)), abs=1e-5)


def test_encoder_strides_must_match_the_widths():
    from aloe.learning.config import ConfigError, from_dict
    from aloe.learning.networks import ImageEncoder, ObservationEncoder

    def cells(model):
        return tuple(ObservationEncoder(model).images.net(torch.zeros(1, 3, *model.image_size)).shape[-2:])

    assert cells(ModelConfig()) == (24, 32)  # the default keeps the last layer at stride 1
    assert cells(from_dict(TrainConfig, {"model": {"encoder_strides": []}}).model) == (12, 16)
    with pytest.raises(ConfigError, match="encoder_strides must give 1 or 2 for each of the 3 encoder_widths"):
        from_dict(TrainConfig, {"model": {"encoder_strides": [2, 1]}})
    with pytest.raises(ConfigError, match="encoder_strides"):
        from_dict(TrainConfig, {"model": {"encoder_strides": [2, 2, 3]}})
    # New widths without their strides: a message that names both, not a shorter network.
    with pytest.raises(ConfigError, match="each of the 4 encoder_widths .*set it with the widths"):
        from_dict(TrainConfig, {"model": {"encoder_widths": [16, 32, 64, 64]}})
    with pytest.raises(ValueError, match="one stride per conv layer"):
        ImageEncoder(4, (8, 8), strides=(2, 2, 1))


def encoder_and_inputs(**overrides):
    from aloe.learning.networks import ObservationEncoder

    model = ModelConfig(image_size=SIZE, use_language=False, feature_dim=32, keypoints=4, encoder_widths=(8, 8),
                        encoder_strides=(), head_crop=(), random_shift=0, **overrides)
    torch.manual_seed(0)
    joints = torch.randn(4, model.joint_dim)
    images = torch.randint(0, 255, (4, 3, *SIZE, 3), dtype=torch.uint8)
    return ObservationEncoder(model), joints, images


def test_without_wrist_cameras_the_encoder_sees_the_head_camera_alone():
    encoder, joints, images = encoder_and_inputs(use_wrist_cameras=False)
    other_wrists, other_head = images.clone(), images.clone()
    other_wrists[:, 1:] = 255 - other_wrists[:, 1:]
    other_head[:, 0] = 255 - other_head[:, 0]
    assert torch.equal(encoder(joints, other_wrists), encoder(joints, images))
    assert not torch.allclose(encoder(joints, other_head), encoder(joints, images))
    with_wrists, _, _ = encoder_and_inputs()
    assert not torch.allclose(with_wrists(joints, other_wrists), with_wrists(joints, images))


def test_joint_noise_perturbs_the_robot_joints_in_training_only():
    encoder, joints, images = encoder_and_inputs(joint_noise=0.1, joint_dim=18, privileged_state_dim=4)
    joints = torch.randn(4, 18)
    encoder.eval()
    assert torch.equal(encoder(joints, images), encoder(joints, images))
    encoder.train()
    assert not torch.allclose(encoder(joints, images), encoder(joints, images))
    # The privileged object state (the last 4 entries) gets no noise: zero the robot joints'
    # weights and training-mode outputs agree again.
    with torch.no_grad():
        encoder.joints.weight[:, :14] = 0
    assert torch.equal(encoder(joints, images), encoder(joints, images))
