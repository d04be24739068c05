"""When to ask the operator to take over, from the critic's Q of each executed chunk.

Two signals, each off by default: the pessimistic Q of a chunk below `below` (the policy
expects to fail from here), or a drop of more than `drop` from the best Q of the last
`window` chunks (something just went wrong: a slipped grasp, a push). One request per
episode phase: after a request the monitor stays quiet until `reset` (a new episode, or
the policy driving again after the operator handed back).
"""
import math
from collections import deque
from typing import Optional


class TakeoverMonitor:
    def __init__(self, below: float = -math.inf, drop: float = 0.0, window: int = 5):
        if drop < 0 or window < 1:
            raise ValueError(f"drop must be >= 0 and window >= 1, got drop {drop}, window {window}")
        self.below, self.drop, self.window = below, drop, window
        self.recent = deque(maxlen=window)
        self.requested = False

    def reset(self) -> None:
        self.recent.clear()
        self.requested = False

    def observe(self, q: float) -> Optional[str]:
        """The reason to request a takeover now, or None."""
        reason = None
        if not self.requested:
            if q < self.below:
                reason = f"pessimistic Q {q:.3f} below {self.below:.3f}"
            elif self.drop > 0 and self.recent and max(self.recent) - q > self.drop:
                reason = f"pessimistic Q fell by {max(self.recent) - q:.3f} (from {max(self.recent):.3f} to {q:.3f}) within {len(self.recent)} chunks"
        self.recent.append(q)
        self.requested = self.requested or reason is not None
        return reason
