"""Command arbitration and safety for the 50 Hz joint command stream, without ROS.

The operator has priority over the policy. A source is live while its last valid command
is younger than `timeout_s`; when no source is live, or after an emergency stop, the robot
holds its last commanded position. An operator who took over keeps the robot until they
hand back (`withdraw`): if they go silent the robot holds, it does not fall back to the
policy they took it from (under load a late operator sample made control flap between
the two, four times in one episode). Every output is clipped to the joint limits and moves
at most `max_velocity * dt` per step. Invalid commands (wrong length, NaN, inf) are
rejected with a reason and never reach the robot, and so are stale ones: stamped more
than `max_age_s` before now, they were computed for a state long gone.

A source that takes control from a hold starts from where the robot is measured, not from
the last output: after a reset, the last output is the old pose, and ramping from there
sent the robot a second of commands it could not follow (each round-0 bag opened with
them). A stamped command waits for the pose measured at its stamp (at most
`ANCHOR_WAIT_S`), since joint states can reach the mux after the command computed from them.
"""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

# Values of aloe_msgs/msg/JointCommand sources, kept here so the logic needs no ROS.
POLICY, OPERATOR, HOLD = 0, 1, 2
SOURCE_NAMES = {POLICY: "POLICY", OPERATOR: "OPERATOR", HOLD: "HOLD"}
# A joint speed no arm reaches (rad/s, or gripper units/s): ten times 3 rad/s. Between two
# measurements it allows at least one 20 ms sample's worth (0.6), more when samples were
# missed in between (a starved subscriber), so only a reset reads as a jump.
JUMP_SPEED, SAMPLE_DT = 30.0, 0.02
# After a reset a robot follows only a command this close to its pose (rad, or gripper
# units): anything further was computed for the pose before (the simulator's rule).
RESYNC_TOLERANCE = 0.3
# How long a source taking control waits for the pose measured at its command's stamp (s).
ANCHOR_WAIT_S = 0.1
# Stamps pass through float seconds in the mux (~0.3 us at today's epoch): stamps this
# close (ns) are the same tick's. Ticks are 20 ms apart.
STAMP_TOLERANCE_NS = 1_000_000

# ViperX 300 s arm limits (rad), twice for the two ALOHA arms; the gripper is normalised
# to [0, 1] (closed .. open). The mux's defaults; override per robot in its parameters.
ARM_LOWER = [-3.14, -1.85, -1.76, -3.14, -1.87, -3.14, 0.0]
ARM_UPPER = [3.14, 1.26, 1.61, 3.14, 2.23, 3.14, 1.0]
ARM_MAX_VELOCITY = [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 5.0]


@dataclass(frozen=True)
class JointLimits:
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray  # per joint, units per second

    def __post_init__(self):
        for name in ("lower", "upper", "max_velocity"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        sizes = {len(self.lower), len(self.upper), len(self.max_velocity)}
        if len(sizes) != 1:
            raise ValueError(f"joint limit arrays differ in length: {sorted(sizes)}")
        if np.any(self.lower > self.upper):
            raise ValueError("a lower joint limit is above its upper limit")
        if np.any(self.max_velocity <= 0):
            raise ValueError("max velocities must be positive")

    @property
    def dof(self) -> int:
        return len(self.lower)


@dataclass
class Command:
    positions: np.ndarray
    source: int
    policy_version: str = ""
    chunk_id: int = 0
    step: int = 0
    stamp: Optional[float] = None  # when the source computed it (s, the mux's clock), if known


@dataclass(frozen=True)
class Rejection:
    reason: str
    stale: bool = False  # late rather than malformed: the mux warns about each kind separately


@dataclass
class Decision:
    command: Command
    reason: str  # why this source is in control


@dataclass
class CommandArbiter:
    limits: JointLimits
    timeout_s: float
    # Stamped commands older than this are dropped (0: no check). The last two commands of
    # one episode's scripted operator reached the mux 0.98 s late, 46 steps into the next
    # episode, and drove the arm for two steps (drawer, round 1); the policy's commands
    # were at most 0.22 s old when forwarded, with the simulator at full speed.
    max_age_s: float = 0.5
    clipped_count: int = 0
    rejected_count: int = 0
    stale_count: int = 0
    estopped: bool = False
    _latest: dict = field(default_factory=dict)  # source -> (Command, receive time)
    operator_engaged: bool = False  # the operator took over and has not handed back
    _last_output: Optional[np.ndarray] = None
    _last_measured: Optional[np.ndarray] = None
    _last_measured_at: Optional[float] = None
    _driving: int = HOLD  # the source of the last decision
    awaiting_pose: bool = False  # the last decision held while a source waits for its pose
    _awaiting_since: Optional[float] = None  # when that wait began (resends of the command do not extend it)

    def validate(self, positions) -> Optional[str]:
        """None if `positions` can be executed, else the reason it cannot."""
        array = np.asarray(positions, dtype=float)
        if array.shape != (self.limits.dof,):
            return f"expected {self.limits.dof} joint positions, got {array.size}"
        if not np.all(np.isfinite(array)):
            return "command contains NaN or inf"
        return None

    def offer(self, command: Command, now: float) -> Optional[Rejection]:
        """Take a command from POLICY or OPERATOR; returns why it was rejected, if it was.
        A rejected command changes nothing: what drove before still does."""
        age = None if command.stamp is None else now - command.stamp
        if age is not None and self.max_age_s > 0 and age > self.max_age_s:
            self.stale_count += 1
            return Rejection(
                f"stale, stamped {age:.2f} s ago (more than max_command_age_s, {self.max_age_s:g} s: "
                "a late delivery, or clocks out of sync)",
                stale=True,
            )
        reason = self.validate(command.positions)
        if reason is not None:
            self.rejected_count += 1
            return Rejection(reason)
        command.positions = np.asarray(command.positions, dtype=float)
        self._latest[command.source] = (command, now)
        self.operator_engaged = self.operator_engaged or command.source == OPERATOR
        return None

    def observe(self, measured_positions, stamp: Optional[float] = None) -> Optional[str]:
        """Measured joint positions (taken at `stamp` s, when known): the hold position
        until anything has been commanded.

        A jump between two measurements that no arm can make (a simulator reset, or a
        robot re-homed by its driver) makes every command so far stale: they were computed
        for the old pose. They are dropped and the robot holds where it now is; the
        return value says so.
        """
        if self.validate(measured_positions) is not None:
            return None
        measured = np.asarray(measured_positions, dtype=float)
        previous, self._last_measured = self._last_measured, measured
        elapsed = SAMPLE_DT
        if stamp is not None and self._last_measured_at is not None:
            elapsed = max(SAMPLE_DT, stamp - self._last_measured_at)
        self._last_measured_at = stamp
        if self._last_output is None:
            self._last_output = measured
        elif previous is not None and np.max(np.abs(measured - previous)) > JUMP_SPEED * elapsed:
            # Commands stamped at or after the new pose were computed from it: they stay.
            self._latest = {
                source: entry for source, entry in self._latest.items()
                if stamp is not None and entry[0].stamp is not None and entry[0].stamp >= stamp - STAMP_TOLERANCE_NS * 1e-9
            }
            self.operator_engaged = OPERATOR in self._latest
            self._last_output = measured
            joint = int(np.argmax(np.abs(measured - previous)))
            return (
                f"the measured pose jumped (joint {joint} by {measured[joint] - previous[joint]:+.2f} in one sample: "
                "a robot reset); dropped stale commands, holding the new pose"
            )
        return None

    def _measured_at(self, stamp: Optional[float]) -> bool:
        """Whether the pose measured at `stamp` (or later) is known; True when there are no
        stamps to compare (an unstamped command, or no stamped measurement yet)."""
        if stamp is None or self._last_measured_at is None:
            return True
        return self._last_measured_at >= stamp - STAMP_TOLERANCE_NS * 1e-9

    def withdraw(self, source: int) -> None:
        """`source` stops driving now (an operator handing back), not after the timeout."""
        self._latest.pop(source, None)
        if source == OPERATOR:
            self.operator_engaged = False

    def emergency_stop(self) -> None:
        self.estopped = True

    def release(self) -> None:
        self.estopped = False
        # Sources must send a fresh command after a release; nothing stale resumes.
        self._latest.clear()
        self.operator_engaged = False

    def in_control(self, now: float) -> int:
        """The source whose command is executed now: OPERATOR, POLICY or HOLD."""
        if self.estopped:
            return HOLD
        for source in (OPERATOR, POLICY):
            entry = self._latest.get(source)
            if entry is not None and now - entry[1] <= self.timeout_s:
                return source
            if source == OPERATOR and self.operator_engaged:
                return HOLD  # a silent operator still has the robot
        return HOLD

    def decide(self, now: float, dt: float) -> Optional[Decision]:
        """The command to execute this step, or None while the robot's position is unknown."""
        source = self.in_control(now)
        chosen, reason = None, "emergency stop" if self.estopped else "no live source"
        if not self.estopped and self.operator_engaged and source == HOLD:
            reason = "operator silent: holding until they resume or hand back"
        self.awaiting_pose = False
        if source != HOLD and self._driving == HOLD:
            command, received = self._latest[source]
            if self._awaiting_since is None:
                self._awaiting_since = received
            # Timed from the first command, not the latest: a simulator in lockstep resends its
            # command every 20 ms while it waits, and a wait restarted by each resend lasted
            # until the sim gave up on it (1 s) when the reset's joint state was lost.
            if not self._measured_at(command.stamp) and now - self._awaiting_since <= ANCHOR_WAIT_S:
                self.awaiting_pose = True
                source, reason = HOLD, f"{SOURCE_NAMES[source].lower()} waits for the pose measured when it took control"
            elif self._last_measured is not None:
                self._last_output = self._last_measured  # start from where the robot is
        if not self.awaiting_pose:
            self._awaiting_since = None
        if source != HOLD:
            chosen, reason = self._latest[source][0], f"{SOURCE_NAMES[source].lower()} live"
        if chosen is None:
            if self._last_output is None:
                return None
            chosen = Command(self._last_output.copy(), HOLD)
        target = np.clip(chosen.positions, self.limits.lower, self.limits.upper)
        if not np.array_equal(target, chosen.positions):
            self.clipped_count += 1
        if self._last_output is not None:
            max_step = self.limits.max_velocity * dt
            target = np.clip(target, self._last_output - max_step, self._last_output + max_step)
        self._last_output = target
        self._driving = chosen.source
        return Decision(
            Command(target.copy(), chosen.source, chosen.policy_version, chosen.chunk_id, chosen.step, chosen.stamp),
            reason,
        )
