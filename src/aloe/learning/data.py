"""Episodes to chunk transitions: what the critic and the actor train on. No ROS, no torch.

An episode is T control steps at 50 Hz: the joint state observed and the command executed
at each step, who was in control (policy or operator), and how it ended. Camera images
come at their own (slower) rate; the observation at step t uses the newest image at or
before t, as a robot would.

A chunk transition starts every `stride` steps at step t and holds:
  actions   a_t .. a_t+H-1  (steps past the episode's end repeat the last command: the
            robot holds; `mask` marks them so no loss is taken on them)
  reward    sum_{i<H} gamma^i r_t+i over the steps that exist
  discount  gamma^H when the episode goes on past t+H (bootstrap from s_t+H), else 0
An episode that ended in success or failure is terminal: no value beyond its end. A
truncated episode (aborted, or recording stopped) has no observed state after its last
step, so its chunks whose s_t+H is missing are left out instead of being bootstrapped wrongly.
"""
import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from aloe.learning.config import DataConfig, LearningError

OUTCOMES = ("success", "failure", "truncated")


class DataError(LearningError, ValueError):
    """An episode that cannot be used; the message names it and says why."""


@dataclass
class Episode:
    joints: np.ndarray  # (T, J) measured joint positions at each control step
    actions: np.ndarray  # (T, A) command executed at each step
    operator: np.ndarray  # (T,) True where the operator was in control
    outcome: str  # success | failure | truncated
    instruction: str = ""
    images: Optional[np.ndarray] = None  # (N, cameras, H, W, 3) uint8
    image_steps: Optional[np.ndarray] = None  # (N,) control step at which each image set was taken
    task: str = ""
    episode_id: str = ""
    stage_progress: Optional[np.ndarray] = None  # (T,) share of the task's stages reached by each step

    def __post_init__(self):
        self.joints = np.asarray(self.joints, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.operator = np.asarray(self.operator, dtype=bool)
        name = self.episode_id or "episode"
        length = len(self.actions)
        if length == 0:
            raise DataError(f"{name}: no steps")
        if len(self.joints) != length or len(self.operator) != length:
            raise DataError(f"{name}: joints, actions and operator flags differ in length")
        if self.outcome not in OUTCOMES:
            raise DataError(f"{name}: outcome '{self.outcome}' is not one of {', '.join(OUTCOMES)}")
        if not (np.all(np.isfinite(self.actions)) and np.all(np.isfinite(self.joints))):
            raise DataError(f"{name}: NaN or inf in joints or actions")
        if self.stage_progress is not None:
            self.stage_progress = np.asarray(self.stage_progress, dtype=np.float64)
            if len(self.stage_progress) != length:
                raise DataError(f"{name}: stage progress and actions differ in length")
        if self.images is not None:
            if self.image_steps is None or len(self.image_steps) != len(self.images):
                raise DataError(f"{name}: every image set needs its control step")
            self.image_steps = np.asarray(self.image_steps, dtype=np.int64)
            if np.any(np.diff(self.image_steps) < 0):
                raise DataError(f"{name}: image steps must be in time order")

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def terminal(self) -> bool:
        return self.outcome in ("success", "failure")

    def rewards(self, config: DataConfig) -> np.ndarray:
        """Sparse success at the last step (or, with `reward: stages`, a share at each stage
        reached and the rest at success), minus the optional time cost at every step and the
        optional takeover cost on the policy's last step before the operator took over."""
        rewards = np.full(len(self), -config.time_cost, dtype=np.float64)
        if config.reward == "stages":
            if self.stage_progress is None:
                raise DataError(f"{self.episode_id or 'episode'}: no task stages recorded (data.reward 'stages' "
                                "needs episodes recorded with the task/stages topic)")
            progress = np.maximum.accumulate(self.stage_progress)
            rewards += config.success_reward * np.diff(progress, prepend=0.0)
            if self.outcome == "success":
                rewards[-1] += config.success_reward * (1.0 - progress[-1])
        elif self.outcome == "success":
            rewards[-1] += config.success_reward
        last_policy_steps = np.flatnonzero(~self.operator[:-1] & self.operator[1:])
        rewards[last_policy_steps] -= config.takeover_cost
        return rewards

    def image_index(self, step: int) -> int:
        """Index of the newest image set taken at or before `step` (the first one before any)."""
        return max(int(np.searchsorted(self.image_steps, step, side="right")) - 1, 0)


def stages_reached(done) -> np.ndarray:
    """How many of a task's stages are reached at each update of `done` (updates x stages,
    bools, the task's order): a stage counts once it is done with every stage before it
    reached, and stays counted (a drawer's lid that opened and then closed was opened)."""
    reached, counts = 0, []
    for row in np.asarray(done, dtype=bool).reshape(len(done), -1):
        while reached < len(row) and row[reached]:
            reached += 1
        counts.append(reached)
    return np.asarray(counts, dtype=np.int64)


@dataclass
class ChunkTransitions:
    """N chunk transitions over a list of episodes; observations are referenced by index
    into `observations`, a list of (episode, step) so each one is encoded once."""

    observations: np.ndarray  # (M, 2) episode index, step
    obs: np.ndarray  # (N,) index into observations of s_t
    next_obs: np.ndarray  # (N,) index of s_t+H, -1 without bootstrap
    next_transition: np.ndarray  # (N,) transition starting at t+H (the data's next chunk), -1 if none
    actions: np.ndarray  # (N, H, A) raw units
    mask: np.ndarray  # (N, H) valid steps
    reward: np.ndarray  # (N,)
    discount: np.ndarray  # (N,) gamma^H or 0
    intervention: np.ndarray  # (N,) any operator step in the chunk
    mc_return: np.ndarray  # (N,) discounted return from t to the episode's end

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def episode(self) -> np.ndarray:
        """(N,) index of the episode each transition comes from."""
        return self.observations[self.obs, 0]


def discounted_sums(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = sum_k gamma^k r_t+k for every t."""
    out = np.zeros(len(rewards) + 1)
    for t in range(len(rewards) - 1, -1, -1):
        out[t] = rewards[t] + gamma * out[t + 1]
    return out[:-1]


def chunk_transitions(episodes, horizon: int, config: DataConfig) -> ChunkTransitions:
    gamma = config.gamma
    powers = gamma ** np.arange(horizon)
    observation_index = {}
    columns = {k: [] for k in ("obs", "next_obs", "start", "actions", "mask", "reward", "discount", "intervention", "mc_return")}

    def observation(e: int, t: int) -> int:
        return observation_index.setdefault((e, t), len(observation_index))

    for e, episode in enumerate(episodes):
        length = len(episode)
        rewards = episode.rewards(config)
        returns = discounted_sums(rewards, gamma)
        for t in range(0, length, config.stride):
            end = t + horizon
            if end >= length and not episode.terminal:
                break  # s_t+H was never observed: cannot bootstrap, must not pretend it ended
            steps = np.arange(t, end)
            valid = steps < length
            clipped = np.minimum(steps, length - 1)
            columns["obs"].append(observation(e, t))
            columns["next_obs"].append(observation(e, end) if end < length else -1)
            columns["start"].append((e, t))
            columns["actions"].append(episode.actions[clipped])
            columns["mask"].append(valid)
            columns["reward"].append(float(np.sum(powers[valid] * rewards[steps[valid]])))
            columns["discount"].append(gamma**horizon if end < length else 0.0)
            columns["intervention"].append(bool(episode.operator[t:end].any()))
            columns["mc_return"].append(returns[t])

    starts = {start: i for i, start in enumerate(columns["start"])}
    next_transition = [starts.get((e, t + horizon), -1) for e, t in columns["start"]]
    action_dim = episodes[0].actions.shape[1] if episodes else 0
    return ChunkTransitions(
        observations=np.array(list(observation_index), dtype=np.int64).reshape(-1, 2),
        obs=np.array(columns["obs"], dtype=np.int64),
        next_obs=np.array(columns["next_obs"], dtype=np.int64),
        next_transition=np.array(next_transition, dtype=np.int64),
        actions=np.array(columns["actions"], dtype=np.float32).reshape(-1, horizon, action_dim),
        mask=np.array(columns["mask"], dtype=bool).reshape(-1, horizon),
        reward=np.array(columns["reward"], dtype=np.float32),
        discount=np.array(columns["discount"], dtype=np.float32),
        intervention=np.array(columns["intervention"], dtype=bool),
        mc_return=np.array(columns["mc_return"], dtype=np.float32),
    )


@dataclass
class Normalizer:
    """Per-dimension mean and std of joints and actions, computed once and stored with the model."""

    joint_mean: np.ndarray
    joint_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    @classmethod
    def fit(cls, episodes) -> "Normalizer":
        joints = np.concatenate([e.joints for e in episodes])
        actions = np.concatenate([e.actions for e in episodes])
        # A dimension that never moved in the data keeps unit scale instead of exploding.
        return cls(joints.mean(0), np.maximum(joints.std(0), 1e-2), actions.mean(0), np.maximum(actions.std(0), 1e-2))

    def to_dict(self) -> dict:
        return {k: np.asarray(getattr(self, k), dtype=float).tolist() for k in ("joint_mean", "joint_std", "action_mean", "action_std")}

    @classmethod
    def from_dict(cls, values: dict) -> "Normalizer":
        return cls(**{k: np.asarray(v, dtype=np.float32) for k, v in values.items()})

    def joints(self, joints):
        return (joints - self.joint_mean) / self.joint_std

    def actions(self, actions):
        return (actions - self.action_mean) / self.action_std

    def unnormalize_actions(self, actions):
        return actions * self.action_std + self.action_mean


def fingerprint(episodes) -> str:
    """A short digest of the training data, stored in checkpoints to tell data sets apart."""
    digest = hashlib.sha256()
    for episode in episodes:
        digest.update(f"{episode.episode_id}|{len(episode)}|{episode.outcome}|{episode.instruction}".encode())
        digest.update(episode.actions.tobytes())
        digest.update(episode.operator.tobytes())
    return digest.hexdigest()[:16]
