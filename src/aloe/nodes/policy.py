"""Policy: runs the actor on the newest synchronised observation and streams its action
chunks as 50 Hz commands on `policy/command`.

Inference runs in a worker thread, so the command loop never waits for it: the running
chunk keeps streaming until the next one arrives (its first steps, already past by then,
are skipped). Every `replan_every` steps a new observation is taken. With a critic in the
checkpoint, each executed chunk's Q goes out on `critic/q_value`. `load_checkpoint` loads
a checkpoint beside the running one and swaps it in at the next chunk boundary; every
command carries the version of the checkpoint that produced it. The policy drives only
while an episode runs (the instruction comes with the episode's START).

The node spins on one thread; inference and checkpoint loading have threads of their own
(rclpy's MultiThreadedExecutor busy-polls while a callback group is occupied: it took 93 %
of a core here and starved the 50 Hz loop).
"""
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from aloe_msgs.msg import ActionChunk, EpisodeEvent, JointCommand, QValue, TakeoverRequest
from aloe_msgs.srv import LoadCheckpoint
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from aloe.control.chunking import Chunk, ChunkExecutor, ObservationSync
from aloe.control.takeover import TakeoverMonitor
from aloe.data.images import ImageEncodingError, rgb_array
from aloe.graph.readiness import ReadyService, unmatched
from aloe.graph.topics import CAMERAS, NEWEST_ONLY_QOS, camera_topic, topic
from aloe.nodes.entry import NodeConfigError, declare_checked, run, stamp_seconds

PARAMETERS = {
    "checkpoint": "",  # safetensors file; empty: wait for `load_checkpoint`
    "device": "cpu",  # where the model runs: cpu, cuda or cuda:N
    "rate_hz": 50.0,
    "replan_every": 25,  # control steps between observations (half a 50-step chunk)
    "temporal_ensembling": False,
    "ensemble_decay": 0.01,
    "max_skew_s": 0.05,  # images of one observation lie within this of each other
    "max_age_s": 0.5,  # older images or joint states are stale: no new chunk from them
    # Critic-triggered takeover requests (need a critic): Q below this, or a drop by more
    # than takeover_drop within takeover_window chunks. Off by default.
    "takeover_below": -1.0e9,
    "takeover_drop": 0.0,
    "takeover_window": 5,
}


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy")
        # destroy_node shuts them down, also after a refused configuration
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-loader")
        declare_checked(self, PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.device = value("device")
        try:
            if self.device != "cpu":  # the check imports torch: a start without a checkpoint needs none
                from aloe.learning.policy import inference_device

                inference_device(self.device)
            self.executor_logic = ChunkExecutor(value("replan_every"), value("temporal_ensembling"), value("ensemble_decay"))
        except ValueError as error:
            raise NodeConfigError(f"policy: {error}") from None
        self.sync = ObservationSync(CAMERAS, value("max_skew_s"), value("max_age_s"))
        try:
            self.takeover = TakeoverMonitor(value("takeover_below"), value("takeover_drop"), value("takeover_window"))
        except ValueError as error:
            raise NodeConfigError(f"policy: {error}") from None
        self.driving = False  # the robot executes our commands (seen on `command`)
        self.lock = threading.Lock()
        self.policy, self.pending = None, None
        self.episode, self.instruction = None, ""
        if value("checkpoint"):
            try:
                self.policy = self.load(value("checkpoint"))
            except ValueError as error:
                raise NodeConfigError(f"policy: {error}") from None
            self.worker.submit(self.warm_up, self.policy, None, "").result()
            self.get_logger().info(f"loaded {value('checkpoint')} (version {self.policy.version}) on {self.device}")
        else:
            self.get_logger().info("no checkpoint: idle until load_checkpoint is called")
        self.inference = None  # the Future of the chunk being computed
        self.next_chunk_id = 1
        self.last_problem = None

        self.commands = self.create_publisher(JointCommand, topic("policy/command").name, topic("policy/command").writer_qos)
        self.chunks = self.create_publisher(ActionChunk, topic("policy/action_chunk").name, topic("policy/action_chunk").writer_qos)
        self.q_values = self.create_publisher(QValue, topic("critic/q_value").name, topic("critic/q_value").writer_qos)
        request = topic("critic/takeover_request")
        self.takeover_requests = self.create_publisher(TakeoverRequest, request.name, request.writer_qos)
        self.create_subscription(JointCommand, topic("command").name, self.on_executed, NEWEST_ONLY_QOS)
        for camera in CAMERAS:
            name = camera_topic(camera)
            self.create_subscription(Image, name, lambda msg, c=camera: self.on_image(c, msg), topic(name).qos)
        self.create_subscription(JointState, topic("joint_states").name, self.on_joint_state, topic("joint_states").qos)
        self.create_subscription(EpisodeEvent, topic("episode").name, self.on_episode, topic("episode").qos)
        # Its own callback group: while the service awaits the loader, the command loop's
        # callbacks (in the default group) keep running.
        self.create_service(LoadCheckpoint, "load_checkpoint", self.on_load, callback_group=MutuallyExclusiveCallbackGroup())
        self.period = 1.0 / value("rate_hz")
        if self.get_parameter("use_sim_time").value:
            # On the simulator's clock a timer fires once when two /clock ticks are taken
            # in one go (5 % of steps had no command in benchmarks/control.py); stepping on
            # the clock messages themselves gives every control step its command.
            self.next_step_due = None
            self.create_subscription(Clock, "/clock", self.on_clock, topic("/clock").qos)
        else:
            self.create_timer(self.period, self.tick)
        # Ready for episodes once loaded and matched with a robot's sensors, an episode
        # manager and a mux reading its commands: a chunk from a half-connected policy waits.
        sensors = ["joint_states", "episode", *(camera_topic(camera) for camera in CAMERAS)]
        self.ready = ReadyService(self, lambda: (["a checkpoint"] if self.policy is None and self.pending is None else [])
                                  + unmatched(self, [*sensors, "command", "policy/command"], required=[*sensors, "policy/command"]))

    def load(self, path: str):
        from aloe.learning.checkpoint import CheckpointError
        from aloe.learning.policy import Policy

        try:
            policy = Policy.load(Path(path).expanduser(), self.device)
        except CheckpointError as error:
            raise ValueError(str(error)) from None
        if policy.config.model.privileged_state_dim:
            raise ValueError(f"{path}: a diagnostic checkpoint conditioned on the simulator's object state; "
                             "no robot has that state, so it cannot drive one")
        if policy.config.model.action_dim != 14 or policy.config.model.cameras != len(CAMERAS):
            raise ValueError(f"{path}: the model drives {policy.config.model.action_dim} joints from "
                             f"{policy.config.model.cameras} cameras; this robot has 14 and {len(CAMERAS)}")
        return policy

    def on_clock(self, msg: Clock) -> None:
        """Steps due by this clock time; /clock keeps only the newest message, so one
        message can stand for two steps: each gets its own command and stamp."""
        now = msg.clock.sec * 10**9 + msg.clock.nanosec
        period = round(self.period * 1e9)
        if self.next_step_due is None or not self.next_step_due - 2 * period <= now <= self.next_step_due + 5 * period:
            self.next_step_due = now  # first, a clock that restarted, or a stall: no burst of stale steps
        while now >= self.next_step_due:
            self.tick(Time(nanoseconds=self.next_step_due).to_msg())
            self.next_step_due += period

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_image(self, camera: str, msg: Image) -> None:
        try:
            pixels = rgb_array(msg)
        except ImageEncodingError as error:
            self.get_logger().warning(f"camera {camera}: {error}; image ignored", throttle_duration_sec=5.0)
            return
        self.sync.add_image(camera, stamp_seconds(msg.header) or 0.0, pixels)

    def on_joint_state(self, msg: JointState) -> None:
        self.sync.add_joints(stamp_seconds(msg.header) or self.now(), msg.position)

    def on_executed(self, msg: JointCommand) -> None:
        driving = msg.source == JointCommand.SOURCE_POLICY
        if driving and not self.driving:
            self.takeover.reset()  # handed back (or first drive): a new phase to watch
        self.driving = driving

    def on_episode(self, event: EpisodeEvent) -> None:
        if event.kind == EpisodeEvent.START:
            self.episode, self.instruction = event.episode_id, event.instruction
            self.executor_logic.reset()
            self.inference = None  # a chunk still in flight was planned for the last episode
            self.takeover.reset()
        elif event.episode_id == self.episode:
            self.episode = None  # the mux holds the robot between episodes

    async def on_load(self, request, response):
        """Loads and warms up off the executor (a coroutine: the command loop keeps running
        while it waits), then hands the model over for the next chunk boundary."""
        loaded = Future(executor=self.executor)
        observation, _ = self.sync.latest(self.now())  # read here: the sync is not thread-safe
        self.loader.submit(self.load_and_warm_up, request.path, observation, self.instruction, loaded, self.executor.wake)
        policy, error = await loaded
        if policy is None:
            with self.lock:
                current = self.pending or self.policy
            response.success, response.message = False, error
            response.policy_version = current.version if current else ""
            self.get_logger().error(f"load_checkpoint: {error}; keeping the running policy")
            return response
        with self.lock:
            self.pending = policy
        self.get_logger().info(f"loaded {request.path} (version {policy.version}); it takes over at the next chunk boundary")
        response.success, response.message, response.policy_version = True, "swaps in at the next chunk boundary", policy.version
        return response

    def load_and_warm_up(self, path, observation, instruction, loaded: Future, wake) -> None:
        try:
            policy = self.load(path)
            # Warm up in the inference thread itself: that is where the model will run.
            self.worker.submit(self.warm_up, policy, observation, instruction).result()
            loaded.set_result((policy, None))
        except ValueError as error:
            loaded.set_result((None, str(error)))
        except Exception as error:  # a broken file must not leave the caller waiting forever
            loaded.set_result((None, f"{type(error).__name__}: {error}"))
        wake()  # the executor resumes `on_load` now, not at its next callback

    @staticmethod
    def warm_up(policy, observation, instruction) -> None:
        """One inference before the model drives, in the inference thread: the first call
        there builds what is made lazily (the instruction encoder, per-thread kernels);
        done on the first real chunk instead, it stalled the stream for up to 0.5 s."""
        if observation is None:
            height, width = policy.config.model.image_size
            joints, images = np.zeros(14, np.float32), np.zeros((len(CAMERAS), height, width, 3), np.uint8)
        else:
            joints, images = observation.joints, observation.images
        policy.act(joints, images, instruction)

    def tick(self, stamp=None) -> None:
        """One control step; `stamp`: its time on the simulator's clock (else the node's)."""
        if self.episode is None:
            return
        self.collect_chunk()
        command = self.executor_logic.tick()
        if command is not None:
            msg = JointCommand(positions=command.positions.tolist(), source=JointCommand.SOURCE_POLICY,
                               policy_version=command.version, chunk_id=command.chunk_id, step=command.step)
            msg.header.stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
            self.commands.publish(msg)
        if self.inference is None and self.executor_logic.wants_observation():
            self.start_inference()

    def start_inference(self) -> None:
        with self.lock:
            if self.pending is not None:  # a chunk boundary: the new checkpoint takes over here
                self.policy, self.pending = self.pending, None
        if self.policy is None:
            return  # said at start-up: idle until load_checkpoint
        observation, problem = self.sync.latest(self.now())
        if observation is None:
            self.report(problem)
            return
        self.report(None)
        chunk_id, self.next_chunk_id = self.next_chunk_id, self.next_chunk_id + 1
        self.inference = self.worker.submit(
            self.infer, self.policy, observation, self.instruction, chunk_id, self.executor_logic.step
        )

    @staticmethod
    def infer(policy, observation, instruction, chunk_id, start_step):
        actions = policy.act(observation.joints, observation.images, instruction)
        q = policy.q_values(observation.joints, observation.images, instruction, actions) if policy.has_critic else None
        return Chunk(actions, chunk_id, policy.version, start_step), q

    def collect_chunk(self) -> None:
        if self.inference is None or not self.inference.done():
            return
        future, self.inference = self.inference, None
        try:
            chunk, q = future.result()
        except Exception as error:  # a model that fails on this input must not stop the robot's stream
            self.get_logger().error(f"inference failed: {type(error).__name__}: {error}")
            return
        dropped = self.executor_logic.add(chunk)
        if dropped:
            self.get_logger().warning(dropped, throttle_duration_sec=1.0)
            return
        stamp = self.get_clock().now().to_msg()
        horizon, action_dim = chunk.actions.shape
        msg = ActionChunk(horizon=horizon, action_dim=action_dim, actions=chunk.actions.ravel().tolist(),
                          chunk_id=chunk.chunk_id, policy_version=chunk.version)
        msg.header.stamp = stamp
        self.chunks.publish(msg)
        if q is not None:
            value = QValue(chunk_id=chunk.chunk_id, pessimistic=q["pessimistic"], mean=q["mean"], std=q["std"],
                           members=[float(m) for m in q["members"]], policy_version=chunk.version)
            value.header.stamp = stamp
            self.q_values.publish(value)
            reason = self.takeover.observe(q["pessimistic"])
            if reason is not None:
                request = TakeoverRequest(chunk_id=chunk.chunk_id, q=q["pessimistic"], reason=reason, policy_version=chunk.version)
                request.header.stamp = stamp
                self.takeover_requests.publish(request)
                self.get_logger().warning(f"takeover requested: {reason}")

    def report(self, problem) -> None:
        if problem is not None and problem != self.last_problem:
            self.get_logger().warning(f"no new chunk: {problem}")
        self.last_problem = problem

    def destroy_node(self):
        self.loader.shutdown(wait=False, cancel_futures=True)
        self.worker.shutdown(wait=False, cancel_futures=True)
        super().destroy_node()


def main():
    sys.exit(run(PolicyNode))


if __name__ == "__main__":
    main()
