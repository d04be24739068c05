"""From action chunks to the 50 Hz command stream, and from camera and joint messages to
one synchronised observation; no ROS, so both are tested without a graph.

ChunkExecutor: the policy emits a chunk of H steps from an observation taken at control
step s0; inference takes time, so by the time the chunk arrives at step s the first s - s0
of its steps are already past and are skipped. A new observation is wanted every
`replan_every` steps. With temporal ensembling (ACT), every chunk that covers the current
step votes, weighted exp(-decay * i) with i = 0 for the oldest, which smooths the seams.

ObservationSync: the newest set of one image per camera whose stamps lie within
`max_skew_s` of each other, with the joint state closest in time; a missing or stale
camera is reported as a reason instead of feeding old frames silently.
"""
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Chunk:
    actions: np.ndarray  # (H, A) joint targets
    chunk_id: int
    version: str  # checkpoint version that produced it
    start_step: int  # control step of the observation: actions[0] was due then


@dataclass
class StepCommand:
    positions: np.ndarray
    chunk_id: int
    step: int  # index inside its chunk
    version: str


class ChunkExecutor:
    def __init__(self, replan_every: int, temporal_ensembling: bool = False, ensemble_decay: float = 0.01):
        if replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {replan_every}")
        self.replan_every = replan_every
        self.temporal_ensembling = temporal_ensembling
        self.ensemble_decay = ensemble_decay
        self.step = 0  # control steps since the start
        self.chunks = []  # oldest first; the last one is the newest

    def reset(self) -> None:
        self.step, self.chunks = 0, []

    def add(self, chunk: Chunk) -> Optional[str]:
        """Take a chunk; returns why it was dropped, if it was."""
        if chunk.start_step > self.step:
            return f"chunk {chunk.chunk_id} was planned at step {chunk.start_step}, ahead of step {self.step}: it predates a reset"
        if self.step - chunk.start_step >= len(chunk.actions):
            return f"chunk {chunk.chunk_id} arrived {self.step - chunk.start_step} steps after its observation: all {len(chunk.actions)} steps past"
        self.chunks.append(chunk)
        if not self.temporal_ensembling:
            self.chunks = self.chunks[-1:]
        return None

    def wants_observation(self) -> bool:
        """True at a replanning point: no chunk yet, the newest is `replan_every` steps old,
        or it is about to run out."""
        if not self.chunks:
            return True
        newest = self.chunks[-1]
        age = self.step - newest.start_step
        return age >= self.replan_every or age >= len(newest.actions) - 1

    def tick(self) -> Optional[StepCommand]:
        """The command for this control step (None without a chunk covering it); advances."""
        self.chunks = [c for c in self.chunks if self.step - c.start_step < len(c.actions)]
        if not self.chunks:
            self.step += 1
            return None
        newest = self.chunks[-1]
        index = self.step - newest.start_step
        if len(self.chunks) == 1:
            positions = newest.actions[index]
        else:
            weights = np.exp(-self.ensemble_decay * np.arange(len(self.chunks)))
            votes = np.stack([c.actions[self.step - c.start_step] for c in self.chunks])
            positions = (weights[:, None] * votes).sum(0) / weights.sum()
        self.step += 1
        return StepCommand(np.asarray(positions, dtype=np.float64), newest.chunk_id, index, newest.version)


@dataclass
class Observation:
    stamp: float  # s, of the joint state
    joints: np.ndarray
    images: Optional[np.ndarray]  # (cameras, H, W, 3), or None without cameras
    skew: float  # s between the oldest and newest image of the set


class ObservationSync:
    def __init__(self, cameras, max_skew_s: float = 0.05, max_age_s: float = 0.5, keep: int = 8):
        self.cameras = tuple(cameras)
        self.max_skew_s, self.max_age_s = max_skew_s, max_age_s
        self.images = {camera: deque(maxlen=keep) for camera in self.cameras}  # (stamp, image)
        self.joints = deque(maxlen=64)  # (stamp, positions)

    def add_image(self, camera: str, stamp: float, image: np.ndarray) -> None:
        self.images[camera].append((stamp, image))

    def add_joints(self, stamp: float, positions) -> None:
        self.joints.append((stamp, np.asarray(positions, dtype=np.float32)))

    def latest(self, now: float):
        """(Observation, None) or (None, the reason there is none)."""
        if not self.joints:
            return None, "no joint state yet"
        if now - self.joints[-1][0] > self.max_age_s:
            return None, f"joint states stale: newest is {now - self.joints[-1][0]:.2f} s old"
        if not self.cameras:
            stamp, positions = self.joints[-1]
            return Observation(stamp, positions, None, 0.0), None
        for camera in self.cameras:
            if not self.images[camera]:
                return None, f"no image from camera {camera} yet"
            age = now - self.images[camera][-1][0]
            if age > self.max_age_s:
                return None, f"camera {camera} stale: newest image is {age:.2f} s old"
        chosen = self._newest_set()
        if chosen is None:
            return None, f"no set of images within {self.max_skew_s * 1000:.0f} ms of each other"
        stamps = [stamp for stamp, _ in chosen]
        reference = max(stamps)
        if now - reference > self.max_age_s:
            return None, f"newest synchronised image set is {now - reference:.2f} s old"
        stamp, positions = min(self.joints, key=lambda entry: abs(entry[0] - reference))
        return Observation(stamp, positions, np.stack([image for _, image in chosen]), reference - min(stamps)), None

    def _newest_set(self):
        """Per camera, the image closest to each candidate reference (newest first)."""
        references = sorted({stamp for camera in self.cameras for stamp, _ in self.images[camera]}, reverse=True)
        for reference in references:
            chosen = [min(self.images[c], key=lambda entry: abs(entry[0] - reference)) for c in self.cameras]
            stamps = [stamp for stamp, _ in chosen]
            if max(stamps) - min(stamps) <= self.max_skew_s:
                return chosen
        return None
