"""Configuration of the learning core, as plain dataclasses (saved inside every checkpoint)."""
from dataclasses import asdict, dataclass, field, fields

ALGORITHMS = ("aloe", "bc", "ibc", "mc")
CRITIC_TARGETS = ("pessimistic", "mean", "per_head")
REWARDS = ("success", "stages")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class ModelConfig:
    horizon: int = 50  # action chunk length H, steps at 50 Hz
    action_dim: int = 14
    joint_dim: int = 14
    # Diagnostic only, never deployable: the last `privileged_state_dim` entries of the joint
    # vector are the simulator's object state (`SimRobot.object_state`); the policy node
    # refuses such a checkpoint. 0 for every real policy.
    privileged_state_dim: int = 0
    cameras: int = 3  # head, left wrist, right wrist
    # Ladder ablations (docs/results.md): False feeds the encoder the head camera only;
    # joint_noise adds Gaussian noise of this std to the normalised joints in training
    # (against copying the proprioception instead of looking).
    use_wrist_cameras: bool = True
    joint_noise: float = 0.0
    image_size: tuple = (96, 128)  # (height, width) the encoder sees
    # The head camera's window (top, left, height, width, fractions of its image) cut out
    # before resizing to image_size; () takes the whole image. The tasks' workspace fills
    # only the middle 0.23 x 0.26 of the sim's head image; the window below keeps it with a
    # margin, at the camera's own resolution (docs/results.md, the base-policy ladder).
    head_crop: tuple = (0.3, 0.3, 0.4, 0.4)
    use_images: bool = True
    use_language: bool = True
    # The instruction as its token vectors, attended over by learned queries, instead of
    # their mean: the mean all but erases which bin each of sorting's objects goes to.
    language_tokens: bool = True
    language_queries: int = 4  # learned queries over the instruction's tokens
    # Each query also carries a projection of what the robot sees and feels (joints and
    # images), so the instruction is read for the current state: which phrase names the
    # object in the gripper, rather than all phrases at once for the actor to pick from.
    # It cut sorting's objects put in the wrong bin from 108 of 300 to 23 and lifted sorting's
    # BC from images, but cost insertion and drawer from images (same demonstrations and
    # seed: 28/50 against 43/50, 16/50 against 37/50), so it is off unless asked for
    # (docs/results.md, "A language path steered by the state" and after).
    language_state_query: bool = False
    feature_dim: int = 256  # observation embedding shared by actor and critic
    keypoints: int = 32  # spatial-softmax keypoints per camera
    encoder_widths: tuple = (16, 32, 64)  # channels of the conv layers, shared by the cameras
    # Each conv layer's stride (1 or 2), one per width; () halves the image at every layer.
    # The spatial softmax's map is the last layer's: 24x32 cells here instead of 12x16 with
    # (2, 2, 2): it halved the probe's error placing the box and lifted BC on training seeds
    # from 59 to 79 of 100 on insertion and from 25 to 37 of 50 on drawer (docs/results.md,
    # "The encoder's depth and receptive field").
    encoder_strides: tuple = (2, 2, 1)
    # DrQ-style augmentation in BC: each image is padded by this many pixels (edge copies)
    # and cropped back at a random offset, so the encoder cannot key on exact pixel positions.
    random_shift: int = 4
    actor_hidden: int = 512
    actor_blocks: int = 3
    flow_steps: int = 10  # Euler steps from noise to an action chunk
    ensemble_size: int = 10  # K Q-heads
    critic_hidden: int = 256
    value_hidden: int = 256  # the Monte-Carlo baseline's V(s)


@dataclass
class DataConfig:
    stride: int = 10  # steps between consecutive chunk transitions
    gamma: float = 0.998  # per 50 Hz step: gamma^H = 0.90 per 50-step chunk
    success_reward: float = 1.0
    # "success": the paper's sparse reward at the last step of a success. "stages": the same
    # total, paid a share per task stage reached in order (bags with `task/stages`), the rest
    # at success; a failed episode keeps what its stages earned.
    reward: str = "success"
    time_cost: float = 0.0  # per-step cost, so that faster success is worth more
    # Charged on the policy's last step before each operator takeover (RLIF's reward):
    # the operator's rescue to success otherwise credits the states the policy drifted into.
    takeover_cost: float = 0.0


@dataclass
class CriticConfig:
    pessimism: str = "min"  # "min" over the ensemble, or "mean_std": mean - lam * std
    pessimism_lambda: float = 1.0
    # What the TD target bootstraps from: the target heads' "mean", their "pessimistic"
    # value (as `pessimism` says), or "per_head" (each head its own target head).
    # Advantages are pessimistic whatever this is. The mean: on the exact-Q suite
    # (benchmarks/critic_accuracy.py) the minimum in the target compounds its bias through
    # bootstrapping, to 2-4 times the mean's error where the heads disagree.
    target: str = "mean"
    polyak: float = 0.005  # target heads track the online heads at this rate per step
    lr: float = 3e-4
    target_action_samples: int = 4  # a' ~ pi(s_t+H) drawn per next state, once per round
    # Each head adds this times a fixed random network of its own (networks.CriticEnsemble):
    # 0 leaves the heads as diverse as their initialisations make them.
    prior_scale: float = 0.0


@dataclass
class ImprovementConfig:
    # A is divided by its standard deviation over the data before exp(A / beta), so beta is
    # in units of that spread and means the same for any reward scale, critic and task.
    normalize_advantages: bool = True
    beta: float = 0.5  # temperature of exp(A / beta); large beta turns into BC (chosen in docs/results.md)
    max_weight: float = 20.0
    value_samples: int = 8  # M actions from the actor to estimate V(s)
    intervention_weight: float = 5.0  # ibc: weight of chunks with operator steps


@dataclass
class TrainConfig:
    algo: str = "aloe"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    improve: ImprovementConfig = field(default_factory=ImprovementConfig)
    pretrain_steps: int = 2000  # BC of encoder and actor, when no initial checkpoint is given
    # (noise, t) draws per encoded observation in BC: encoding the images is what costs, so a
    # batch of 64 is 16 observations x 4 draws (4x faster per step, same loss per step).
    pretrain_noise_draws: int = 4
    # Pre-training clones the episodes that succeeded (all of them when none did): a
    # demonstration the operator lost, e.g. to graph timing, teaches what not to do.
    pretrain_successes_only: bool = True
    # Pre-training's chunks start every this many steps (0: `data.stride`, as the critic's).
    # At 1 BC sees every step, each with the newest camera frame at or before it: images up
    # to 9 steps old at 5 Hz, as the policy node sees them when it replans between frames.
    pretrain_stride: int = 0
    critic_steps: int = 2000  # policy evaluation (aloe's critic, mc's value)
    improve_steps: int = 1000  # advantage-weighted flow matching on frozen features
    batch_size: int = 64
    lr: float = 3e-4
    # Pre-training's learning rate over its steps: "constant", or "cosine": from `lr` down to
    # 0 along a half cosine, the schedule of Diffusion Policy's training.
    pretrain_lr_schedule: str = "constant"
    # The actor (and, in pre-training, the encoder) ends as the moving average of its weights
    # over the run, as diffusion and flow policies are usually deployed; 0: the last step's.
    ema_decay: float = 0.999
    seed: int = 0


class LearningError(Exception):
    """A problem with the user's input to the learning core (config, data, checkpoint, ...):
    its message is one line, and `aloe` prints it instead of a traceback. It lives here,
    beside the configs, so the command line can catch it without importing torch."""


class ConfigError(LearningError, ValueError):
    """A configuration value or file that cannot be used; one line for the user."""


def to_dict(config) -> dict:
    return asdict(config)


def from_dict(cls, values: dict, where: str = "config"):
    """Build dataclass `cls` from nested dicts, refusing unknown keys with a clear message."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (known: {', '.join(known)})")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if hasattr(default, "__dataclass_fields__"):
            kwargs[name] = from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    config = cls(**kwargs)
    validate(config, where)
    return config


def validate(config, where: str = "config") -> None:
    if isinstance(config, TrainConfig):
        if config.algo not in ALGORITHMS:
            raise ConfigError(f"{where}.algo: unknown algorithm '{config.algo}' (valid: {', '.join(ALGORITHMS)})")
        if config.critic.pessimism not in ("min", "mean_std"):
            raise ConfigError(f"{where}.critic.pessimism must be 'min' or 'mean_std', got '{config.critic.pessimism}'")
        if config.critic.target not in CRITIC_TARGETS:
            raise ConfigError(f"{where}.critic.target must be one of {', '.join(CRITIC_TARGETS)}, got '{config.critic.target}'")
        if config.critic.prior_scale < 0:
            raise ConfigError(f"{where}.critic.prior_scale must be >= 0, got {config.critic.prior_scale}")
        if config.data.reward not in REWARDS:
            raise ConfigError(f"{where}.data.reward must be one of {', '.join(REWARDS)}, got '{config.data.reward}'")
        if config.data.takeover_cost < 0:
            raise ConfigError(f"{where}.data.takeover_cost must be >= 0, got {config.data.takeover_cost}")
        if config.improve.beta <= 0:
            raise ConfigError(f"{where}.improve.beta must be positive, got {config.improve.beta}")
        if not 0 <= config.ema_decay < 1:
            raise ConfigError(f"{where}.ema_decay must be in [0, 1), got {config.ema_decay}")
        if config.pretrain_lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"{where}.pretrain_lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {config.pretrain_lr_schedule!r}")
        if config.pretrain_stride < 0:
            raise ConfigError(f"{where}.pretrain_stride must be >= 0 (0: data.stride), got {config.pretrain_stride}")
        if config.pretrain_noise_draws < 1:
            raise ConfigError(f"{where}.pretrain_noise_draws must be at least 1, got {config.pretrain_noise_draws}")
        if not config.model.encoder_widths or any(int(w) < 8 or int(w) % 8 for w in config.model.encoder_widths):
            raise ConfigError(f"{where}.model.encoder_widths must be multiples of 8 (GroupNorm's groups), got {list(config.model.encoder_widths)}")
        strides = tuple(config.model.encoder_strides)
        if strides and (len(strides) != len(config.model.encoder_widths) or any(int(v) not in (1, 2) for v in strides)):
            raise ConfigError(f"{where}.model.encoder_strides must give 1 or 2 for each of the {len(config.model.encoder_widths)} encoder_widths "
                              f"(or be empty: 2 at every layer), got {list(strides)}; set it with the widths")
        crop = tuple(config.model.head_crop)
        if crop and not (len(crop) == 4 and min(crop) >= 0 and min(crop[2:]) > 0 and crop[0] + crop[2] <= 1 and crop[1] + crop[3] <= 1):
            raise ConfigError(f"{where}.model.head_crop must be [top, left, height, width] within the image (fractions), got {list(crop)}")
        if config.model.random_shift < 0:
            raise ConfigError(f"{where}.model.random_shift must be >= 0, got {config.model.random_shift}")
        if not 0 <= config.model.privileged_state_dim < config.model.joint_dim:
            raise ConfigError(f"{where}.model.privileged_state_dim must be in [0, joint_dim), got {config.model.privileged_state_dim}")
        if config.model.horizon < 1 or config.data.stride < 1:
            raise ConfigError(f"{where}: horizon and stride must be at least 1")
