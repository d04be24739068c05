"""Episode bookkeeping: at most one episode runs at a time; it ends exactly once."""
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

# Values of aloe_msgs/msg/EpisodeEvent kinds, kept here so the logic needs no ROS.
START, SUCCESS, FAILURE, ABORT = 0, 1, 2, 3
KIND_NAMES = {START: "START", SUCCESS: "SUCCESS", FAILURE: "FAILURE", ABORT: "ABORT"}
OUTCOMES = (SUCCESS, FAILURE, ABORT)


class EpisodeError(RuntimeError):
    """A request that does not fit the episode state; the message says why."""


@dataclass
class Episode:
    episode_id: str
    task: str
    instruction: str
    seed: int
    variant: str
    start_time: float
    outcome: Optional[int] = None
    reason: str = ""
    end_time: Optional[float] = None


@dataclass
class EpisodeBook:
    robot: str
    time_limit_s: float = 0.0  # 0: no limit
    current: Optional[Episode] = None
    finished: list = field(default_factory=list)

    def start(self, task: str, instruction: str, seed: int, variant: str, now: float, wall_time: Optional[float] = None) -> Episode:
        """`now` is the robot's clock (sim time in simulation); the id is stamped with
        `wall_time` when given, since a sim clock can read 1970 before `/clock` arrives."""
        if not task:
            raise EpisodeError("a task name is required")
        if self.current is not None:
            raise EpisodeError(f"episode {self.current.episode_id} is still running; end it first")
        stamp = datetime.fromtimestamp(now if wall_time is None else wall_time, tz=timezone.utc).strftime("%Y%m%dT%H%M%S")
        episode_id = f"{self.robot}-{stamp}-{len(self.finished) + 1:04d}"
        self.current = Episode(episode_id, task, instruction, seed, variant, now)
        return self.current

    def end(self, outcome: int, reason: str, now: float) -> Episode:
        if outcome not in OUTCOMES:
            raise EpisodeError(
                f"outcome {outcome} is not one of " + ", ".join(f"{KIND_NAMES[o]}={o}" for o in OUTCOMES)
            )
        if self.current is None:
            raise EpisodeError("no episode is running")
        episode, self.current = self.current, None
        # An outcome stamped by its sender before the START reached it ends the episode at its start.
        episode.outcome, episode.reason, episode.end_time = outcome, reason, max(now, episode.start_time)
        self.finished.append(episode)
        return episode

    def expire(self, now: float) -> Optional[Episode]:
        """End the running episode as a FAILURE once it exceeds the time limit."""
        if self.current is None or self.time_limit_s <= 0:
            return None
        if now - self.current.start_time < self.time_limit_s:
            return None
        return self.end(FAILURE, f"time limit of {self.time_limit_s:g} s reached", now)
