"""One training run of any algorithm: the phases around `aloe.learning.algorithm`.

  pretrain  (only without an initial checkpoint) behaviour cloning of encoder and actor on
            images, joints and instruction of the episodes that succeeded: the policy that
            post-training starts from
  encode    observation features with the now frozen encoder, cached for all later phases
  evaluate  aloe: the chunked-TD critic of the current actor; mc: V(s) on Monte-Carlo returns
  improve   flow matching of the actor on cached features, weighted per algorithm
            (aloe: clip(exp(A/beta)); mc: the same with A = G - V; ibc: operator chunks
            up-weighted; bc: all ones)

Runs unchanged under `torchrun --nproc_per_node N`: every phase's trainable module is
wrapped in DistributedDataParallel (gloo on CPU, nccl on GPU), each rank draws its own
batches, and rank 0 alone writes the checkpoint, TensorBoard scalars and the progress bar.
"""
import copy
import os
import sys
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch
from torch import nn

from aloe.learning import algorithm
from aloe.learning.camera_view import resize_images
from aloe.learning.checkpoint import Checkpoint, VLAModel, new_version
from aloe.learning.config import LearningError, TrainConfig, validate
from aloe.learning.data import ChunkTransitions, Normalizer, chunk_transitions, fingerprint
from aloe.learning.resume import ResumeFile


class TrainingError(LearningError):
    """Training cannot run on this input; one line for the user."""


# --- where the run happens ---------------------------------------------------------------
@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP wrapper when distributed, else the module itself."""
        if self.world_size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)


def runtime_from_environment() -> Runtime:
    """torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; without them this is one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world_size == 1:
        return Runtime(torch.device("cuda" if cuda else "cpu"))
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Runtime(device, dist.get_rank(), world_size)


# --- observations as tensors ---------------------------------------------------------------
@dataclass
class Observations:
    joints: torch.Tensor  # (M, J) normalised
    # Each camera frame once, (F, cameras, H, W, 3) uint8, and the frame each row sees (M,):
    # the rows of consecutive steps share the newest frame at or before them.
    frames: Optional[torch.Tensor]
    frame_of: Optional[torch.Tensor]
    # (M, 384) sentence vectors; with `language_tokens`, (M,) rows of the instructions' tokens
    language: Optional[torch.Tensor]
    # With `language_tokens`: each distinct instruction's token vectors (U, L, 384) and mask (U, L)
    instructions: Optional[tuple] = None

    def rows(self, index):
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        language = pick(self.language)
        if self.instructions is not None:
            tokens, mask = self.instructions
            language = tokens[language], mask[language]
        images = None if self.frames is None else self.frames[self.frame_of[index]]
        return self.joints[index], images, language


def build_observations(episodes, transitions: ChunkTransitions, normalizer: Normalizer, config: TrainConfig, device) -> Observations:
    model = config.model
    steps = transitions.observations
    joints = np.stack([episodes[e].joints[t] for e, t in steps])
    frames = frame_of = language = instructions = None
    if model.use_images:
        missing = [e.episode_id or str(i) for i, e in enumerate(episodes) if e.images is None]
        if missing:
            raise TrainingError(f"the model uses images but episodes {', '.join(missing[:5])} have none")
        seen = [(e, episodes[e].image_index(t)) for e, t in steps]
        frame_row = {key: row for row, key in enumerate(dict.fromkeys(seen))}
        frames = torch.from_numpy(np.stack([resize_images(episodes[e].images[i], model.image_size) for e, i in frame_row]))
        frame_of = torch.tensor([frame_row[key] for key in seen])
        if frames.shape[1] != model.cameras:
            raise TrainingError(f"episodes have {frames.shape[1]} cameras, the model expects {model.cameras}")
    if model.use_language:
        from aloe.learning.text import language_encoder

        texts = [episodes[e].instruction for e, _ in steps]
        if model.language_tokens:
            distinct = sorted(set(texts))
            row = {text: i for i, text in enumerate(distinct)}
            language = torch.tensor([row[text] for text in texts])
            instructions = tuple(t.to(device) for t in language_encoder().tokens(distinct))
        else:
            language = language_encoder().embed(texts)
    joints = torch.tensor(normalizer.joints(joints), dtype=torch.float32)
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return Observations(joints.to(device), to(frames), to(frame_of), to(language), instructions)


@torch.no_grad()
def encode(encoder, observations: Observations, batch: int = 256) -> torch.Tensor:
    encoder.eval()
    count = len(observations.joints)
    features = [encoder(*observations.rows(slice(i, i + batch))) for i in range(0, count, batch)]
    return torch.cat(features)


class BehaviourCloning(nn.Module):
    """Encoder and actor trained together; one module so DDP synchronises both."""

    def __init__(self, encoder, actor):
        super().__init__()
        self.encoder, self.actor = encoder, actor

    def forward(self, joints, images, language, actions, mask, draws: int = 1):
        """Flow-matching loss with `draws` (noise, t) pairs per encoded observation."""
        features = self.encoder(joints, images, language).repeat_interleave(draws, 0)
        return self.actor(features, actions.repeat_interleave(draws, 0), mask.repeat_interleave(draws, 0))


# --- the run ------------------------------------------------------------------------------
class Logger:
    """TensorBoard scalars and a progress bar, on rank 0 only."""

    def __init__(self, runtime: Runtime, total_steps: int, log_dir=None, progress: bool = True):
        self.main = runtime.main
        self.writer = self.bar = None
        self.global_step = 0
        self.latest = {}
        if self.main and log_dir:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))
        if self.main and progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, unit="step", dynamic_ncols=True)

    def phase(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_description(name)

    def say(self, line: str) -> None:
        if not self.main:
            return
        if self.bar is not None:
            self.bar.write(f"[aloe train] {line}", file=sys.stderr)
        else:
            print(f"[aloe train] {line}", file=sys.stderr, flush=True)

    def skip_to(self, step: int) -> None:
        """Count `step` steps as done (a resumed phase), so later scalars keep their x."""
        self.global_step += step
        if self.bar is not None:
            self.bar.update(step)

    def step(self, _local_step: int, scalars: dict) -> None:
        self.global_step += 1
        self.latest.update(scalars)
        if self.writer is not None and self.global_step % 10 == 0:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, self.global_step)
        if self.bar is not None:
            self.bar.update(1)
            if self.global_step % 20 == 0:
                self.bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in scalars.items()})

    def scalar(self, key: str, value: float) -> None:
        self.latest[key] = value
        if self.writer is not None:
            self.writer.add_scalar(key, value, self.global_step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def train(config: TrainConfig, episodes, init: Optional[Checkpoint] = None, log_dir=None,
          progress: bool = True, runtime: Optional[Runtime] = None, resume: Optional[ResumeFile] = None) -> Checkpoint:
    """Train `config.algo` on `episodes`, from `init` if given; returns the new checkpoint.
    With `resume`, pre-training saves its state there and goes on from a state saved before."""
    validate(config)
    runtime = runtime or runtime_from_environment()
    if not episodes:
        raise TrainingError("no episodes to train on")
    if init is not None:
        _check_compatible(init.config, config)
    model_config = config.model
    dims = {(e.joints.shape[1], e.actions.shape[1]) for e in episodes}
    if dims != {(model_config.joint_dim, model_config.action_dim)}:
        raise TrainingError(f"episodes have (joint, action) dimensions {sorted(dims)}, the model expects "
                            f"({model_config.joint_dim}, {model_config.action_dim})")

    torch.manual_seed(config.seed)
    batches = torch.Generator().manual_seed(config.seed * 1000 + runtime.rank)  # each rank its own batches
    shared = torch.Generator(device=runtime.device).manual_seed(config.seed)  # identical on every rank
    normalizer = init.normalizer if init is not None else Normalizer.fit(episodes)
    transitions = chunk_transitions(episodes, model_config.horizon, config.data)
    if len(transitions) == 0:
        raise TrainingError(f"the episodes yield no chunk transitions (horizon {model_config.horizon}, stride {config.data.stride})")
    observations = build_observations(episodes, transitions, normalizer, config, runtime.device)
    obs, actions, mask = _chunk_tensors(transitions, normalizer, runtime.device)

    model = VLAModel(config, with_critic=config.algo == "aloe", with_value=config.algo == "mc")
    if init is not None:
        trained = {k: v for k, v in init.model.state_dict().items() if k.startswith(("encoder.", "actor."))}
        model.load_state_dict(trained, strict=False)
    model.to(runtime.device)

    pretrain = config.pretrain_steps if init is None else 0
    evaluate = config.critic_steps if config.algo in ("aloe", "mc") else 0
    log = Logger(runtime, pretrain + evaluate + config.improve_steps, log_dir, progress)
    try:
        if pretrain:
            log.phase("pretrain (bc)")
            cloned = _cloned(episodes, transitions, observations, (obs, actions, mask), normalizer, config, runtime, log)
            _pretrain(model, *cloned, config, runtime, batches, log, resume)
        log.phase("encode")
        model.encoder.requires_grad_(False)
        features = encode(model.encoder, observations)
        weights = _weights(model, features, obs, transitions, actions, config, runtime, batches, shared, log)
        if config.algo != "bc":  # bc weighs every chunk 1: nothing to break down
            for name, share in weight_shares(weights, transitions, episodes).items():
                log.scalar(f"improve/relative_weight_{name}", share)
        log.phase(f"improve ({config.algo})")
        model.actor.train()
        algorithm.fit_actor(
            model.actor, features[obs], actions, mask,
            weights.to(runtime.device), config.improve_steps, config.batch_size, config.lr,
            generator=batches, forward=runtime.wrap(model.actor), on_step=log.step, ema_decay=config.ema_decay,
        )
    finally:
        log.close()
    model.eval().cpu()
    return Checkpoint(
        model=model,
        normalizer=normalizer,
        version=new_version(config.algo),
        algo=config.algo,
        data_fingerprint=fingerprint(episodes),
        parent=init.version if init is not None else "",
        metrics={k: float(v) for k, v in log.latest.items()},
    )


def weight_shares(weights, transitions, episodes) -> dict:
    """Mean weight of each kind of chunk over the mean of all: what the improvement favours
    (operator or policy chunks, chunks of episodes that succeeded or failed); 1 is neutral."""
    succeeded = np.array([e.outcome == "success" for e in episodes])[transitions.episode]
    failed = np.array([e.outcome == "failure" for e in episodes])[transitions.episode]
    operator = np.asarray(transitions.intervention, dtype=bool)
    weights, shares = weights.numpy(), {}
    for name, rows in (("operator", operator), ("policy", ~operator), ("success", succeeded), ("failure", failed)):
        if rows.any():
            shares[name] = float(weights[rows].mean() / weights.mean())
    return shares


def _pretrain_rows(transitions, episodes, config: TrainConfig, log) -> torch.Tensor:
    """Which chunk transitions pre-training clones: those of the episodes that succeeded when
    `pretrain_successes_only` (and any did), else all."""
    every = torch.ones(len(transitions.obs), dtype=torch.bool)
    if not config.pretrain_successes_only:
        return every
    succeeded = np.array([e.outcome == "success" for e in episodes])
    if not succeeded.any():
        log.say("no episode succeeded: pre-training clones them all")
        return every
    if not succeeded.all():
        log.say(f"pre-training clones the {succeeded.sum()} of {len(episodes)} episodes that succeeded")
    return torch.from_numpy(succeeded[transitions.episode])


def _chunk_tensors(transitions, normalizer, device) -> tuple:
    """The row of s_t in the observations, the normalised actions and the mask of every transition."""
    obs = torch.as_tensor(transitions.obs, device=device)
    actions = torch.tensor(normalizer.actions(transitions.actions), dtype=torch.float32, device=device)
    return obs, actions, torch.tensor(transitions.mask, device=device)


def _cloned(episodes, transitions, observations, tensors, normalizer, config: TrainConfig, runtime, log) -> tuple:
    """What pre-training clones: observations, and the rows of s_t, actions and masks of the
    chunks. With a `pretrain_stride` of its own, its chunks start at other steps than the
    critic's `transitions` (whose `tensors` are `_chunk_tensors`)."""
    stride = config.pretrain_stride or config.data.stride
    if stride != config.data.stride:
        transitions = chunk_transitions(episodes, config.model.horizon, replace(config.data, stride=stride))
        observations = build_observations(episodes, transitions, normalizer, config, runtime.device)
        tensors = _chunk_tensors(transitions, normalizer, runtime.device)
        every = "at every step" if stride == 1 else f"every {stride} steps"
        log.say(f"pre-training clones chunks starting {every}: {len(transitions)} of them")
    rows = _pretrain_rows(transitions, episodes, config, log).to(runtime.device)
    return (observations, *(tensor[rows] for tensor in tensors))


def _check_compatible(old: TrainConfig, new: TrainConfig) -> None:
    if old.model != new.model:
        raise TrainingError("the initial checkpoint's model config differs from this run's; train with its config")


def _pretrain(model, observations, obs, actions, mask, config, runtime, batches, log, resume: Optional[ResumeFile]) -> None:
    bc = BehaviourCloning(model.encoder, model.actor).train()
    optimizer = torch.optim.Adam(bc.parameters(), lr=config.lr)
    draws = config.pretrain_noise_draws
    average = copy.deepcopy(bc).requires_grad_(False)
    modules = {"model": bc, "average": average}
    start = resume.load(modules, optimizer, batches, log.say) if resume is not None else 0
    if runtime.world_size > 1:
        import torch.distributed as dist

        starts = [None] * runtime.world_size
        dist.all_gather_object(starts, start)
        if len(set(starts)) > 1:  # a crash between two ranks' saves: their steps would not pair up
            raise TrainingError(f"the ranks' saved pre-training states are at different steps {starts}; "
                                f"delete {resume.path} and the other ranks' files beside it to start over")
    log.skip_to(start)
    forward = runtime.wrap(bc)  # after loading: DDP broadcasts rank 0's parameters
    for step in range(start, config.pretrain_steps):
        index = torch.randint(len(obs), (max(config.batch_size // draws, 1),), generator=batches).to(runtime.device)
        loss = forward(*observations.rows(obs[index]), actions[index], mask[index], draws).mean()
        for group in optimizer.param_groups:
            group["lr"] = algorithm.scheduled_lr(config.lr, step, config.pretrain_steps, config.pretrain_lr_schedule)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        algorithm.average_weights(average, bc, step, config.ema_decay)
        log.step(step, {"pretrain/fm_loss": loss.item(), "pretrain/lr": optimizer.param_groups[0]["lr"]})
        if resume is not None:
            resume.maybe_save(step + 1, modules, optimizer, batches, runtime.device)
    bc.load_state_dict(average.state_dict())


def _weights(model, features, obs, transitions, actions, config, runtime, batches, shared, log) -> torch.Tensor:
    """Per-chunk weights of the improvement phase, by algorithm; `obs` holds the rows of s_t."""
    device = runtime.device
    if config.algo == "bc":
        return torch.ones(len(transitions))
    if config.algo == "ibc":
        return algorithm.intervention_weights(torch.as_tensor(transitions.intervention), config.improve)
    start_features = features[obs]
    if config.algo == "mc":
        log.phase("evaluate (mc value)")
        returns = torch.as_tensor(transitions.mc_return, device=device)
        model.value.train()
        algorithm.fit_value(model.value, start_features, returns, config.critic_steps, config.batch_size, config.lr,
                            generator=batches, forward=runtime.wrap(model.value), on_step=log.step)
        model.value.eval()
        with torch.no_grad():
            advantages = returns - model.value(start_features)
    else:
        log.phase("evaluate (chunked-td critic)")
        model.actor.eval()
        next_obs = torch.as_tensor(transitions.next_obs, device=device)
        next_features = features[next_obs.clamp(min=0)]
        data = algorithm.CriticData(
            features=features,
            obs=obs,
            next_obs=next_obs,
            actions=actions,
            reward=torch.as_tensor(transitions.reward, device=device),
            discount=torch.as_tensor(transitions.discount, device=device),
            next_actions=algorithm.sample_policy_actions(model.actor, next_features, config.critic.target_action_samples, shared),
            executed=torch.as_tensor(transitions.mask, device=device),
        )
        model.critic.train()
        algorithm.fit_critic(model.critic, data, config.critic, config.critic_steps, config.batch_size,
                             generator=batches, forward=runtime.wrap(model.critic), on_step=log.step)
        model.critic.eval()
        policy_actions = algorithm.sample_policy_actions(model.actor, start_features, config.improve.value_samples, shared)
        advantages = algorithm.action_level_advantages(model.critic, start_features, actions, policy_actions, config.critic)
    improve = config.improve
    weights = algorithm.advantage_weights(advantages, improve.beta, improve.max_weight, improve.normalize_advantages)
    log.scalar("improve/advantage_std", advantages.std().item())
    log.scalar("improve/effective_sample_fraction", algorithm.effective_sample_fraction(weights))
    log.scalar("improve/weight_mean", weights.mean().item())
    log.scalar("improve/weight_clipped_fraction", (weights >= improve.max_weight * 0.999).float().mean().item())
    return weights.cpu()
