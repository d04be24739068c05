"""A loaded checkpoint as the robot uses it: observation in, action chunk (and its Q) out,
on the CPU or a CUDA device."""
from typing import Optional

import numpy as np
import torch

from aloe.learning.algorithm import pessimistic
from aloe.learning.camera_view import resize_images
from aloe.learning.checkpoint import Checkpoint, load_checkpoint
from aloe.learning.networks import integrate_flow
from aloe.learning.text import language_input


def starting_noise(model, generator=None, scale: float = 1.0) -> torch.Tensor:
    """The flow's starting point (1, H, A) for one chunk, drawn on the CPU from `generator`
    (so a seed gives the same chunk on every device), times `scale`."""
    return scale * torch.randn(1, model.horizon, model.action_dim, generator=generator)


def inference_device(name: str) -> torch.device:
    """The torch device called `name` ("cpu", "cuda", "cuda:1"), or ValueError saying why it
    cannot run here."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a torch device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: torch {torch.__version__} sees no CUDA device here; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise ValueError(f"device {name!r}: inference runs on cpu or cuda only")
    return device


class Policy:
    def __init__(self, checkpoint: Checkpoint):
        self.checkpoint = checkpoint
        self.model = checkpoint.model.eval()
        self.device = next(self.model.parameters()).device
        self.config = checkpoint.config
        self.normalizer = checkpoint.normalizer

    @classmethod
    def load(cls, path, device: str = "cpu") -> "Policy":
        return cls(load_checkpoint(path, str(inference_device(device))))

    @property
    def version(self) -> str:
        return self.checkpoint.version

    @property
    def has_critic(self) -> bool:
        return self.model.critic is not None

    def _instruction(self, instruction: str):
        if not self.config.model.use_language:
            return None
        language = language_input([instruction], self.config.model.language_tokens)
        return tuple(t.to(self.device) for t in language) if isinstance(language, tuple) else language.to(self.device)

    @torch.no_grad()
    def features(self, joints, images: Optional[np.ndarray], instruction: str):
        joints = torch.tensor(self.normalizer.joints(np.asarray(joints, dtype=np.float32)), dtype=torch.float32, device=self.device)[None]
        image_tensor = None
        if self.config.model.use_images:
            resized = resize_images(np.asarray(images, dtype=np.uint8), self.config.model.image_size, tuple(self.config.model.head_crop))
            image_tensor = torch.from_numpy(resized)[None].to(self.device)
        return self.model.encoder(joints, image_tensor, self._instruction(instruction))

    @torch.no_grad()
    def act(self, joints, images, instruction: str, generator=None, noise_scale: float = 1.0) -> np.ndarray:
        """One action chunk (H, A) in robot units for the current observation. The starting
        noise is drawn on the CPU (from `generator`), so a seed gives the same chunk on every
        device up to rounding; `noise_scale` below 1 samples nearer the flow's mean chunk
        (0: the same chunk every time)."""
        noise = starting_noise(self.config.model, generator, noise_scale)
        chunk = self.model.actor.sample(self.features(joints, images, instruction), noise=noise)[0].cpu().numpy()
        return self.normalizer.unnormalize_actions(chunk).astype(np.float32)

    @torch.no_grad()
    def q_values(self, joints, images, instruction: str, chunk) -> dict:
        """The critic's view of executing `chunk` (H, A robot units) from this observation."""
        if not self.has_critic:
            raise RuntimeError(f"checkpoint {self.version} ({self.checkpoint.algo}) has no critic")
        features = self.features(joints, images, instruction)
        actions = torch.tensor(self.normalizer.actions(np.asarray(chunk, dtype=np.float32)), dtype=torch.float32, device=self.device)[None]
        q = self.model.critic(features, actions).cpu()  # (K, 1)
        return {
            "members": q[:, 0].numpy(),
            "mean": float(q.mean()),
            "std": float(q.std()),
            "pessimistic": float(pessimistic(q, self.config.critic)[0]),
        }


class PolicyEnsemble:
    """Several BC runs of one setting acting as one policy, a diagnostic of the run-to-run
    variance (docs/results.md): from one starting noise, each Euler step of the flow follows
    the mean of the members' velocities, so the chunk comes from the members' averaged flow
    field rather than from averaging chunks that may sit in different modes. Members must
    share their model settings and normalisation (the same data). No critic: evaluation only."""

    has_critic = False

    def __init__(self, members):
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two checkpoints")
        first = members[0]
        for member in members[1:]:
            if member.config.model != first.config.model:
                raise ValueError(f"checkpoint {member.version}: its model settings differ from {first.version}'s")
            if member.normalizer.to_dict() != first.normalizer.to_dict():
                raise ValueError(f"checkpoint {member.version}: its normalisation differs from {first.version}'s (other data)")
        self.members = members
        self.config = first.config
        self.normalizer = first.normalizer

    @classmethod
    def load(cls, paths, device: str = "cpu") -> "PolicyEnsemble":
        return cls([Policy.load(path, device) for path in paths])

    @property
    def version(self) -> str:
        return "+".join(member.version for member in self.members)

    @torch.no_grad()
    def act(self, joints, images, instruction: str, generator=None, noise_scale: float = 1.0) -> np.ndarray:
        features = [member.features(joints, images, instruction) for member in self.members]

        def mean_velocity(x_t, t):
            return sum(member.model.actor.velocity(f, x_t, t) for member, f in zip(self.members, features)) / len(self.members)

        noise = starting_noise(self.config.model, generator, noise_scale)
        chunk = integrate_flow(mean_velocity, noise, self.config.model.flow_steps)[0].numpy()
        return self.normalizer.unnormalize_actions(chunk).astype(np.float32)
