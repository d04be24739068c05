"""The networks: observation encoder, flow-matching actor, Q-ensemble and the MC value baseline.

All of them work on normalised quantities; `aloe.learning.policy` wraps them with the
normalisation for the robot.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from aloe.learning.config import ModelConfig
from aloe.learning.text import EMBEDDING_DIM, MAX_TOKENS


class SpatialSoftmax(nn.Module):
    """Expected image coordinates of each channel's activation: where things are, not just what."""

    def forward(self, x):
        batch, channels, height, width = x.shape
        attention = x.flatten(2).softmax(-1).view(batch, channels, height, width)
        ys = torch.linspace(-1, 1, height, device=x.device)
        xs = torch.linspace(-1, 1, width, device=x.device)
        return torch.cat([(attention.sum(3) * ys).sum(-1), (attention.sum(2) * xs).sum(-1)], dim=1)


def random_shift(x, pixels: int):
    """Each image (N, C, H, W) padded by `pixels` (edge copies) and cropped back at its own
    random offset (DrQ, Kostrikov et al. 2020): a shift of a few pixels changes no action."""
    n, _, height, width = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), device=x.device)
    rows = (offsets[:, 0, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (offsets[:, 1, None] + torch.arange(width, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class ImageEncoder(nn.Module):
    """A small conv net shared by all cameras: uint8 images to keypoint features."""

    def __init__(self, keypoints: int, widths=(32, 64, 128), shift: int = 0, strides=()):
        super().__init__()
        strides = tuple(strides) or (2,) * len(widths)
        if len(strides) != len(widths):
            raise ValueError(f"one stride per conv layer: {len(widths)} widths, {len(strides)} strides")
        layers, channels = [], 3
        for width, stride in zip(widths, strides):
            layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1), nn.GroupNorm(8, width), nn.SiLU()]
            channels = width
        layers += [nn.Conv2d(channels, keypoints, 1)]
        self.net = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax()
        self.out_dim = 2 * keypoints
        self.shift = shift

    def forward(self, images):  # (N, H, W, 3) uint8
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if self.training and self.shift:
            x = random_shift(x, self.shift)
        return self.keypoints(self.net(x))


class TokenAttentionPool(nn.Module):
    """Learned queries attend over the instruction's token vectors (MiniLM's last layer), each
    tagged with a learned embedding of its position: a query can pick out one phrase, e.g.
    the bin named for the second object, which a mean over the tokens blurs. Without the
    position tags, or with queries near zero (all starting at the tokens' mean), a probe of
    held-out sorting instructions recovered the bins in 79-90 % instead of 96-100 %
    (test_learning_text.py)."""

    def __init__(self, out: int, queries: int = 4, width: int = 128, heads: int = 4, state: int = 0):
        super().__init__()
        self.project = nn.Linear(EMBEDDING_DIM, width)
        self.position = nn.Parameter(torch.randn(MAX_TOKENS, width) * 0.1)
        self.queries = nn.Parameter(torch.randn(queries, width))
        # With `state` > 0 each query is shifted by a projection of a state vector of that size.
        self.state_query = nn.Linear(state, queries * width) if state else None
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.out = nn.Linear(queries * width, out)

    def forward(self, tokens, mask, state=None):  # (B, L, 384) float, (B, L) bool, True where a token is
        keys = self.project(tokens) + self.position[: tokens.shape[1]]
        queries = self.queries.expand(len(tokens), -1, -1)
        if self.state_query is not None:
            queries = queries + self.state_query(state).view_as(queries)
        pooled, _ = self.attention(queries, keys, keys, key_padding_mask=~mask, need_weights=False)
        return self.out(pooled.flatten(1))


class ObservationEncoder(nn.Module):
    """Three camera images, joint state and the instruction to one feature vector."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        width = config.feature_dim
        parts = width  # joints
        if config.use_images:
            self.images = ImageEncoder(config.keypoints, tuple(config.encoder_widths), config.random_shift, tuple(config.encoder_strides))
            self.seen_cameras = config.cameras if config.use_wrist_cameras else 1  # the head comes first
            self.camera_embedding = nn.Parameter(torch.randn(self.seen_cameras, self.images.out_dim) * 0.02)
            parts += self.seen_cameras * self.images.out_dim
        if config.use_language:
            if config.language_tokens:
                state = parts if config.language_state_query else 0
                self.language = TokenAttentionPool(width, config.language_queries, state=state)
            else:
                self.language = nn.Linear(EMBEDDING_DIM, width)
            parts += width
        self.joints = nn.Linear(config.joint_dim, width)
        self.fuse = nn.Sequential(nn.Linear(parts, width), nn.SiLU(), nn.Linear(width, width), nn.LayerNorm(width))

    def forward(self, joints, images=None, language=None):
        """joints (B, J) normalised; images (B, cameras, H, W, 3) uint8; language the sentence
        vectors (B, 384), or with `language_tokens` the pair (tokens (B, L, 384), mask (B, L))."""
        if self.training and self.config.joint_noise:
            robot = self.config.joint_dim - self.config.privileged_state_dim  # the object state stays exact
            noise = torch.zeros_like(joints)
            noise[:, :robot] = self.config.joint_noise * torch.randn_like(joints[:, :robot])
            joints = joints + noise
        parts = [self.joints(joints)]
        if self.config.use_images:
            images = images[:, : self.seen_cameras]
            batch, cameras = images.shape[:2]
            per_camera = self.images(images.flatten(0, 1)).view(batch, cameras, -1) + self.camera_embedding
            parts.append(per_camera.flatten(1))
        if self.config.use_language:
            if self.config.language_tokens:
                state = torch.cat(parts, dim=-1) if self.config.language_state_query else None
                parts.append(self.language(*language, state=state))
            else:
                parts.append(self.language(language))
        return self.fuse(torch.cat(parts, dim=-1))


def time_embedding(t, dim: int = 64):
    """Sinusoidal embedding of the flow time t in [0, 1]."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = (1000.0 * t)[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, condition: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.film = nn.Linear(condition, 2 * width)
        self.net = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, x, condition):
        scale, shift = self.film(condition).chunk(2, dim=-1)
        return x + self.net(self.norm(x) * (1 + scale) + shift)


class FlowActor(nn.Module):
    """A rectified flow over whole action chunks, with the network predicting the clean chunk.

    x_0 is Gaussian noise, x_1 the (normalised) action chunk, x_t = (1 - t) x_0 + t x_1.
    The network outputs x_1's estimate ("x-prediction"); the velocity that sampling
    integrates with `flow_steps` Euler steps follows from it, v = (x_1_hat - x_t) / (1 - t).
    Why not regress the velocity x_1 - x_0 directly: near t = 0 that target is mostly the
    noise, 700 dimensions of it (50 steps x 14 joints) that would have to pass through a
    512-wide network. The clean chunk is smooth and low-dimensional; predicting it took the
    left arm's error on held-out demonstrations from 0.17 to 0.09 rad (docs/results.md).
    """

    min_remaining_time = 0.05  # bounds 1 / (1 - t) at the last steps of the flow

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        chunk = config.horizon * config.action_dim
        width = config.actor_hidden
        condition = config.feature_dim + 64
        self.condition = nn.Sequential(nn.Linear(condition, width), nn.SiLU())
        self.inp = nn.Linear(chunk, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, width) for _ in range(config.actor_blocks))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, chunk))

    def denoise(self, features, x_t, t):
        """The network's estimate of the clean chunk x_1 from x_t at flow time t."""
        condition = self.condition(torch.cat([features, time_embedding(t)], dim=-1))
        h = self.inp(x_t.flatten(1))
        for block in self.blocks:
            h = block(h, condition)
        return self.out(h).view_as(x_t)

    def velocity(self, features, x_t, t):
        remaining = (1 - t).clamp(min=self.min_remaining_time)[:, None, None]
        return (self.denoise(features, x_t, t) - x_t) / remaining

    def forward(self, features, actions, mask):
        """Per-sample flow-matching loss (B,) in x-prediction form: the squared error of the
        clean chunk, averaged over the valid steps of each chunk. It is the velocity loss
        weighted by (1 - t)^2, which keeps the last, nearly noise-free steps from dominating.

        This is `forward` so that DistributedDataParallel sees the call it synchronises.
        """
        noise = torch.randn_like(actions)
        t = torch.rand(actions.shape[0], device=actions.device)
        x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * actions
        error = (self.denoise(features, x_t, t) - actions).pow(2).mean(-1)
        mask = mask.float()
        return (error * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)

    @torch.no_grad()
    def sample(self, features, generator=None, noise=None):
        """One action chunk (B, H, A) per row of `features`, normalised units. `noise`, when
        given, is the starting point (B, H, A) instead of a fresh draw, so two devices can be
        compared on the same draw."""
        shape = (features.shape[0], self.config.horizon, self.config.action_dim)
        x = torch.randn(shape, generator=generator, device=features.device) if noise is None else noise.to(features.device)
        return integrate_flow(lambda x_t, t: self.velocity(features, x_t, t), x, self.config.flow_steps)


def integrate_flow(velocity, x, steps: int):
    """Euler steps of a flow from its noise `x` at t = 0 to the chunk at t = 1, moving by
    `velocity(x_t, t)` (t of shape (B,)) at each of `steps` equal steps."""
    for i in range(steps):
        t = torch.full((x.shape[0],), i / steps, device=x.device)
        x = x + velocity(x, t) / steps
    return x


class EnsembleLinear(nn.Module):
    """K independent linear layers applied at once: (K, B, in) -> (K, B, out)."""

    def __init__(self, members: int, inputs: int, outputs: int):
        super().__init__()
        bound = 1 / math.sqrt(inputs)
        self.weight = nn.Parameter(torch.empty(members, inputs, outputs).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, outputs).uniform_(-bound, bound))

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight)


class CriticEnsemble(nn.Module):
    """K Q-heads over (observation features, action chunk); independent initialisations make
    them agree where data constrains them and spread where it does not.

    Initialisations alone spread little: trained on the same features, the heads of the
    experiment agreed to 0.01 on the actor's own chunks. With `prior_scale` > 0 each head
    adds a fixed random network of its own (a randomised prior, Osband et al. 2018) that
    training can cancel only where there are data, so the heads disagree, and the
    pessimistic value drops, away from them."""

    def __init__(self, config: ModelConfig, prior_scale: float = 0.0):
        super().__init__()
        self.members = config.ensemble_size
        inputs = config.feature_dim + config.horizon * config.action_dim
        width = config.critic_hidden
        self.layers = nn.ModuleList([EnsembleLinear(self.members, inputs, width), EnsembleLinear(self.members, width, width)])
        self.head = EnsembleLinear(self.members, width, 1)
        self.prior_scale = prior_scale
        self.prior = CriticEnsemble(config).requires_grad_(False) if prior_scale > 0 else None

    def forward(self, features, actions):
        """Q of every head: (K, B)."""
        x = torch.cat([features, actions.flatten(1)], dim=-1)
        x = x.unsqueeze(0).expand(self.members, *x.shape)
        for layer in self.layers:
            x = layer(x)
            x = F.silu(F.layer_norm(x, x.shape[-1:]))
        q = self.head(x).squeeze(-1)
        if self.prior is not None:
            q = q + self.prior_scale * self.prior(features, actions)
        return q


class ValueNet(nn.Module):
    """V(s) of the trajectory-level baseline, regressed on Monte-Carlo returns."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = config.value_hidden
        self.net = nn.Sequential(
            nn.Linear(config.feature_dim, width), nn.LayerNorm(width), nn.SiLU(),
            nn.Linear(width, width), nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, 1),
        )

    def forward(self, features):
        return self.net(features).squeeze(-1)
