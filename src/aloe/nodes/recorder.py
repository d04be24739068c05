"""Recorder: each episode to its own rosbag2 (MCAP) directory, `<out_dir>/<episode_id>`.

Between an episode's START and its end on `episode` it writes every contract topic as
DDS delivered it (raw CDR, no decoding), stamped with the node's clock (sim time in
simulation), plus the episode events. The bag's metadata holds the task, instruction,
seed, variant, outcome, the policy versions that drove and the operator's interventions.
The bag is flushed every `flush_every_s`: a recorder killed mid-episode loses at most that
much (`aloe bag recover` then completes the bag). It keeps the last `keep_before_start_s`
of messages in memory: when a START reaches it late, the messages stamped since the START's
stamp still go in. DDS matches the latched event's writer on its own time, and repairs a
lost event only at the writer's next heartbeat (3 s): an end that came so late had the next
episode's first steps written to the bag before, and without them in memory the next bag
lost them (133 of 279 steps once, in CI). Steps written after the end event's stamp stay in
that bag as delivered; reading it (`read_episode`) ends the episode at that stamp.
A failing disk stops recording with one clear error; the robot is unaffected, since
nothing waits on the recorder.
"""
import struct
import sys
import time
from collections import deque
from copy import copy
from pathlib import Path

from aloe_msgs.msg import EpisodeEvent, JointCommand
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.time import Time
from rclpy.serialization import deserialize_message, serialize_message

from aloe.data.recording import EpisodeBag, EpisodeLog, RecordingError, aloe_typestore
from aloe.graph.readiness import ReadyService, unmatched, waiting_for_clock
from aloe.graph.topics import CONTRACT, topic
from aloe.nodes.entry import NodeConfigError, declare_checked, run

RECORDED = [t.name for t in CONTRACT if t.name not in ("episode", "/clock")]
# Samples DDS holds per topic while the recorder is busy (a loaded machine, a bag being
# opened), where the contract's 10 would keep only the newest: 4 s of joint states at 50 Hz.
# Memory is spent only while a backlog lasts.
RECORDING_DEPTH = 200
OUTCOME_NAMES = {EpisodeEvent.SUCCESS: "success", EpisodeEvent.FAILURE: "failure", EpisodeEvent.ABORT: "truncated"}

PARAMETERS = {
    "out_dir": "bags",
    "topics": RECORDED,  # contract topics written besides `episode`
    "flush_every_s": 0.5,  # at most this much is lost when the recorder is killed
    "keep_before_start_s": 5.0,  # wall time of messages kept in memory, for a late START
}


def header_stamp_ns(data: bytes) -> int:
    """The header stamp of a raw CDR message whose first field is a std_msgs/Header."""
    sec, nanosec = struct.unpack_from("<iI" if data[1] == 1 else ">iI", data, 4)
    return sec * 1_000_000_000 + nanosec


class Recorder(Node):
    def __init__(self):
        super().__init__("recorder")
        self.bag, self.log = None, None  # destroy_node needs them, also after a refused configuration
        declare_checked(self, PARAMETERS)
        self.out_dir = Path(self.get_parameter("out_dir").value).expanduser()
        self.flush_every_s = self.get_parameter("flush_every_s").value
        if self.flush_every_s <= 0:
            raise NodeConfigError(f"recorder: flush_every_s must be positive, got {self.flush_every_s}")
        self.keep_before_start_s = self.get_parameter("keep_before_start_s").value
        if self.keep_before_start_s < 0:
            raise NodeConfigError(f"recorder: keep_before_start_s must be at least 0, got {self.keep_before_start_s}")
        self.recent = deque()  # (monotonic receipt, log time, topic, raw) of the last keep_before_start_s
        names = self.get_parameter("topics").value
        unknown = [n for n in names if n not in RECORDED]
        if unknown:
            raise NodeConfigError(f"recorder: unknown topics {unknown}; recordable: {', '.join(RECORDED)}")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.typestore = aloe_typestore()
        except (OSError, RecordingError) as error:
            raise NodeConfigError(f"recorder: {error}") from None
        self.episode_topic = self.resolve_topic_name(topic("episode").name)
        self.types = {self.episode_topic: topic("episode").type_name}
        for name in names:
            contract = topic(name)
            resolved = self.resolve_topic_name(name)
            self.types[resolved] = contract.type_name
            qos = copy(contract.qos)  # the contract's, every policy kept, with a deeper history
            qos.depth = max(qos.depth, RECORDING_DEPTH)
            self.create_subscription(contract.msg_type, name, lambda data, t=resolved: self.on_message(t, data), qos, raw=True)
        self.command_topic = self.resolve_topic_name("command")
        episode = topic("episode")
        self.create_subscription(EpisodeEvent, episode.name, self.on_episode, episode.qos)
        # Flush on the wall clock too: a quiet topic or a paused sim clock must not keep
        # recorded messages in memory.
        self.create_timer(self.flush_every_s, self.flush_quiet, clock=Clock(clock_type=ClockType.STEADY_TIME))
        # Ready once every publisher of what it records is matched, and a robot and an
        # episode manager are (a START seen late opens the bag late), and its clock runs.
        self.ready = ReadyService(
            self, lambda: unmatched(self, [*names, episode.name], required=("joint_states", episode.name)) + waiting_for_clock(self)
        )

    def flush_quiet(self) -> None:
        if self.bag is not None and time.monotonic() - self.bag.last_flush >= self.flush_every_s:
            try:
                self.bag.flush()
            except RecordingError as error:
                self.stop_recording(error)

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_message(self, name: str, data: bytes) -> None:
        log_ns = self.now_ns()
        received = time.monotonic()
        self.recent.append((received, log_ns, name, data))
        while self.recent and received - self.recent[0][0] > self.keep_before_start_s:
            self.recent.popleft()
        if self.bag is not None:
            self.write(name, data, log_ns)

    def write(self, name: str, data: bytes, log_ns: int) -> None:
        if name == self.command_topic:
            command = deserialize_message(data, JointCommand)
            self.log.on_command(log_ns * 1e-9, command.source, command.policy_version, Time.from_msg(command.header.stamp).nanoseconds)
        try:
            self.bag.write(name, log_ns, data)
        except RecordingError as error:
            self.stop_recording(error)

    def stop_recording(self, error: RecordingError) -> None:
        self.get_logger().error(f"recording stopped: {error}; the robot is unaffected, this episode's bag ends here")
        self.bag, self.log = None, None

    def on_episode(self, event: EpisodeEvent) -> None:
        if event.kind == EpisodeEvent.START:
            if self.bag is not None:
                self.finish("truncated", "a new episode started before this one ended")
            self.start(event)
        elif self.bag is not None and event.episode_id == self.log.start["episode_id"]:
            self.write(self.episode_topic, serialize_message(event), self.now_ns())
            if self.bag is not None:
                self.finish(OUTCOME_NAMES[event.kind], event.reason, Time.from_msg(event.header.stamp).nanoseconds)

    def start(self, event: EpisodeEvent) -> None:
        path = self.out_dir / event.episode_id
        try:
            self.bag = EpisodeBag(path, self.types, self.typestore, self.flush_every_s)
        except RecordingError as error:
            self.get_logger().error(f"not recording episode {event.episode_id}: {error}")
            return
        fields = ("episode_id", "task", "instruction", "seed", "variant")
        self.log = EpisodeLog({name: getattr(event, name) for name in fields})
        self.write(self.episode_topic, serialize_message(event), self.now_ns())
        # What arrived before the START but belongs to the episode (stamped since it began).
        start_ns = Time.from_msg(event.header.stamp).nanoseconds
        kept, self.recent = self.recent, deque()
        early = [(log_ns, name, data) for _, log_ns, name, data in kept if start_ns > 0 and header_stamp_ns(data) >= start_ns]
        for log_ns, name, data in early:
            if self.bag is not None:
                self.write(name, data, log_ns)
        self.get_logger().info(
            f"recording {event.episode_id} ({event.task}) to {path}" + (f", {len(early)} messages from before its START" if early else "")
        )

    def finish(self, outcome: str, reason: str, end_stamp_ns: int = 0) -> None:
        bag, log = self.bag, self.log
        self.bag, self.log = None, None
        try:
            bag.close(log.metadata(outcome, reason, self.now_ns() * 1e-9, end_stamp_ns))
        except RecordingError as error:
            self.get_logger().error(f"recording stopped: {error}")
            return
        written = sum(bag.counts.values())
        self.get_logger().info(f"{log.start['episode_id']}: {outcome}, {written} messages in {bag.path}")

    def on_stop(self) -> None:
        """`spin` calls this first when the node stops, before the middleware's teardown, which
        may hang or be cut off: the episode under way is closed as truncated, with its metadata."""
        if self.bag is not None:
            self.finish("truncated", "the recorder stopped during the episode")

    def destroy_node(self):
        self.on_stop()
        super().destroy_node()


def main():
    sys.exit(run(Recorder))


if __name__ == "__main__":
    main()
