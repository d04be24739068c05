"""Simulated robot: the MuJoCo ALOHA behind the same topics a real robot has, plus `/clock`.

Each 20 ms tick it executes the newest `command`, publishes `joint_states` and `/clock`,
renders the three cameras every `1 / camera_rate_hz` s, and, while an episode runs, ends
it through the episode manager when the task's detector says success or failure. With
`scripted_operator` the privileged-state expert drives through `operator/command`, so its
commands pass the command mux like a human operator's. Every other node runs on the sim
clock (`use_sim_time`), so a graph that renders slower than real time stays consistent.

At `real_time_factor` 0, while the scripted operator drives, the sim runs in lockstep with
it: after a tick it waits for the operator's command to come back through the mux (stamped
with the tick it answers) before the next, so the operator acts as promptly as in process
however loaded the machine is. Free-running, the sim ticked on while the command crossed
the graph: drawer's demonstrations lagged a step more, paused when the mux timed the
operator out, and ran ~40 % longer than in process. A wait that gets no command within
`lockstep_timeout_s` (wall) lets the sim run free until the mux forwards an operator's
command again, so a graph without a mux, or with the mux stopped, still runs (after one
wait).
"""
import sys
import time

import numpy as np
from aloe_msgs.msg import EpisodeEvent, JointCommand, TakeoverRequest, TaskStages
from aloe_msgs.srv import EndEpisode, ResetSim
from rclpy.node import Node
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from aloe.control.command_arbiter import RESYNC_TOLERANCE, STAMP_TOLERANCE_NS
from aloe.data.images import rgb8_fields
from aloe.graph.readiness import ReadyService, unmatched
from aloe.graph.topics import CAMERAS, NEWEST_ONLY_QOS, camera_topic, topic
from aloe.nodes.entry import NodeConfigError, declare_checked, publish_sample, run
from aloe.sim.disturbances import DisturbanceError
from aloe.sim.env import CONTROL_DT, SimError
from aloe.sim.scene import JOINT_NAMES
from aloe.sim.session import SimSession

# A command that has not come back within this (wall) is sent again. Fast DDS loses the
# odd small sample while the cameras' images fill its shared memory, and repairs it only
# at the next heartbeat (3 s); a newer sample makes the reader ask for it at once.
LOCKSTEP_RESEND_S = 0.02

PARAMETERS = {
    "task": "insertion",  # scene loaded at start; `sim/reset` loads others
    "seed": 0,
    "variant": "train",
    "disturbances": "",  # e.g. "push:0.5,drop:0.2"
    "image_height": 240,
    "image_width": 320,
    "camera_rate_hz": 5.0,  # rendering costs ~11 ms per camera here: render what the policy uses
    "real_time_factor": 1.0,  # sim seconds per wall second at most; 0 runs as fast as it can
    "scripted_operator": True,  # the expert drives through operator/command
    "operator_mode": "demonstrate",  # or "takeover": only after a critic's request or takeover_after_s
    "takeover_after_s": 0.0,  # episode time after which the operator takes over (0: never)
    "lockstep_timeout_s": 1.0,  # at real_time_factor 0: wall seconds a tick waits for the operator's command
}


class SimRobotNode(Node):
    def __init__(self):
        super().__init__("sim_robot")
        self.session = None  # destroy_node needs it, also after a refused configuration
        declare_checked(self, PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.real_time_factor = value("real_time_factor")
        if self.real_time_factor < 0:
            raise NodeConfigError(f"sim_robot: real_time_factor must be >= 0, got {self.real_time_factor}")
        self.lockstep_timeout_s = value("lockstep_timeout_s")
        if self.lockstep_timeout_s <= 0:
            raise NodeConfigError(f"sim_robot: lockstep_timeout_s must be positive, got {self.lockstep_timeout_s}")
        try:
            self.session = SimSession(
                (value("image_height"), value("image_width")), value("camera_rate_hz"), time.time(), value("scripted_operator"),
                value("operator_mode"), value("takeover_after_s"),
            )
            scene = self.session.reset(value("task"), value("seed"), value("variant"), value("disturbances"))
        except (ValueError, SimError, DisturbanceError) as error:
            raise NodeConfigError(f"sim_robot: {error}") from None
        self.get_logger().info(f"scene {scene.task} seed {scene.seed} ({scene.variant}): {scene.instruction}")
        self.command, self.resyncing = None, False
        self.operator_driving = False
        self.episode_id = ""
        self.scripted_operator = value("scripted_operator")
        self.heard_mux = False

        joint_states = topic("joint_states")
        self.joint_states = self.create_publisher(JointState, joint_states.name, joint_states.writer_qos)
        self.cameras = {c: self.create_publisher(Image, camera_topic(c), topic(camera_topic(c)).writer_qos) for c in CAMERAS}
        clock = topic("/clock")
        self.clock = self.create_publisher(Clock, clock.name, clock.writer_qos)
        operator = topic("operator/command")
        self.operator = self.create_publisher(JointCommand, operator.name, operator.writer_qos)
        stages = topic("task/stages")
        self.stages = self.create_publisher(TaskStages, stages.name, stages.writer_qos)
        self.stages_done = None  # as last published; None: nothing yet this episode
        self.create_subscription(JointCommand, topic("command").name, self.on_command, NEWEST_ONLY_QOS)
        episode = topic("episode")
        self.create_subscription(EpisodeEvent, episode.name, self.on_episode, episode.qos)
        request = topic("critic/takeover_request")
        self.create_subscription(TakeoverRequest, request.name, self.on_takeover_request, request.qos)
        self.end_episode = self.create_client(EndEpisode, "end_episode")
        self.create_service(ResetSim, "sim/reset", self.on_reset)
        period = CONTROL_DT / self.real_time_factor if self.real_time_factor > 0 else 0.0
        self.tick_timer = self.create_timer(period, self.tick)
        # Lockstep (real_time_factor 0): a tick that sent the operator's command waits for it.
        self.lockstep = self.real_time_factor == 0
        # Expect a mux from the first tick: engaging only once it had forwarded a command let
        # the first episode of a fresh graph run free while the mux waited for the pose at the
        # operator's first command (under load, 0.24 rad off the in-process path).
        self.mux_forwards, self.waiting_since, self.tick_stamp_ns = self.lockstep, None, 0
        self.operator_message = None  # the operator's command of the tick that waits, resent until it returns
        if self.lockstep:
            self.create_timer(LOCKSTEP_RESEND_S, self.check_lockstep_wait)
        self.ready = ReadyService(self, self.not_yet_connected)

    def not_yet_connected(self) -> list:
        """What an episode still needs from the graph: the mux's commands (which it sends
        only once it has our joint states), every reader of our streams matched, and, for the
        scripted operator, the mux listening to it."""
        streams = ["joint_states", "operator/command", "command", "episode", *(camera_topic(c) for c in CAMERAS)]
        missing = unmatched(self, streams, required=("episode",))
        if not self.heard_mux:
            missing.append("a command from the mux")
        elif self.scripted_operator:
            senders = {(i.node_namespace, i.node_name) for i in self.get_publishers_info_by_topic(self.resolve_topic_name("command"))}
            listeners = {(i.node_namespace, i.node_name) for i in self.get_subscriptions_info_by_topic(self.operator.topic_name)}
            if not senders <= listeners:
                missing.append("the mux reading operator/command")
        return missing

    def on_command(self, msg: JointCommand) -> None:
        self.heard_mux = True
        self.mux_forwards = self.mux_forwards or msg.source == JointCommand.SOURCE_OPERATOR
        # The operator's answer to the last tick is stamped at it (the mux keeps its
        # source's stamp); an earlier stamp answers an earlier tick: newest, but no answer.
        stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
        answer = msg.source == JointCommand.SOURCE_OPERATOR and stamp_ns >= self.tick_stamp_ns - STAMP_TOLERANCE_NS
        if self.waiting_since is not None and answer:
            self.waiting_since = None
            self.tick_timer.reset()
        command = np.array(msg.positions)
        if self.resyncing:
            # After a reset the robot stands elsewhere: commands still in flight were meant
            # for the old pose and would whip the arm there. Wait until the command stream
            # starts from the new pose (the mux holds it once it sees the jump). The
            # scripted operator waits meanwhile: running ahead on the sim clock, it would
            # leave the arm's pose before its first command arrived, and the arm would
            # stand for the whole episode (seen at real_time_factor 0).
            if command.shape != self.session.robot.last_command.shape or np.max(np.abs(command - self.session.robot.joint_positions())) > RESYNC_TOLERANCE:
                return
            self.resyncing = False
        self.command = command

    def on_episode(self, msg: EpisodeEvent) -> None:
        if msg.kind == EpisodeEvent.START:
            self.episode_id = msg.episode_id
            self.session.begin_episode()
            self.stages_done = None  # the first judged tick publishes, whatever it finds
        elif msg.episode_id == self.episode_id:
            self.session.end_episode()

    def on_takeover_request(self, msg: TakeoverRequest) -> None:
        if self.session.take_over():
            self.get_logger().info(f"scripted operator takes over (critic: {msg.reason})")

    def on_reset(self, request, response):
        try:
            scene = self.session.reset(request.task, request.seed, request.variant or "train", request.disturbances)
        except (SimError, DisturbanceError) as error:
            response.success, response.message = False, str(error)
            return response
        self.command, self.resyncing = None, True
        if self.operator_driving:
            # A reset ends what the scripted operator drove: it hands back now, so that the
            # mux takes its next command as a new start, from the new pose, even when the
            # next episode begins before the next tick.
            self.hand_back()
        self.get_logger().info(f"reset to {scene.task} seed {scene.seed} ({scene.variant}): {scene.instruction}")
        response.success, response.instruction = True, scene.instruction
        return response

    def hand_back(self) -> None:
        msg = JointCommand(source=JointCommand.SOURCE_HOLD)
        msg.header.stamp = Time(nanoseconds=self.tick_stamp_ns).to_msg()
        publish_sample(self, self.operator, msg)
        self.operator_driving = False

    def check_lockstep_wait(self) -> None:
        if self.waiting_since is None:
            return
        waited = time.monotonic() - self.waiting_since
        if waited > LOCKSTEP_RESEND_S:
            publish_sample(self, self.operator, self.operator_message)
        if waited > self.lockstep_timeout_s:
            self.get_logger().warning(
                f"no command within lockstep_timeout_s ({self.lockstep_timeout_s:g} s): running free until the mux forwards the operator again",
                throttle_duration_sec=5.0,
            )
            self.mux_forwards, self.waiting_since = False, None
            self.tick_timer.reset()

    def tick(self) -> None:
        judging = self.session.episode_active and not self.session.reported  # this tick's stages count
        tick = self.session.tick(self.command, operator_waits=self.resyncing)
        if not tick.report.accepted:
            self.get_logger().warning(f"rejected command: {tick.report.reason}; holding", throttle_duration_sec=1.0)
        elif tick.report.clipped:
            clipped = self.session.robot.clipped_commands
            self.get_logger().warning(f"command outside the joint limits: clipped ({clipped} this episode)", throttle_duration_sec=1.0)
        self.tick_stamp_ns = round(tick.time * 1e9)
        stamp = Time(nanoseconds=self.tick_stamp_ns).to_msg()
        publish_sample(self, self.clock, Clock(clock=stamp))
        state = JointState(name=list(JOINT_NAMES), position=tick.positions.tolist(), velocity=tick.velocities.tolist())
        state.header.stamp = stamp
        publish_sample(self, self.joint_states, state)
        if tick.operator_command is not None:
            msg = JointCommand(positions=tick.operator_command.tolist(), source=JointCommand.SOURCE_OPERATOR)
            msg.header.stamp = stamp
            publish_sample(self, self.operator, msg)
            self.operator_message = msg
        elif self.operator_driving:
            # The episode is over for the scripted operator: hand back (the mux keeps a
            # silent operator in control, holding, until it does).
            self.hand_back()
        self.operator_driving = tick.operator_command is not None
        if tick.images is not None:
            for camera, pixels in tick.images.items():
                image = Image(**rgb8_fields(pixels))
                image.header.stamp, image.header.frame_id = stamp, camera
                publish_sample(self, self.cameras[camera], image)
        if judging and tick.stages_done != self.stages_done:
            names = self.session.robot.task.stage_names
            msg = TaskStages(task=self.session.robot.task.name, names=list(names), done=[n in tick.stages_done for n in names])
            msg.header.stamp = stamp
            publish_sample(self, self.stages, msg)
            self.stages_done = tick.stages_done
        if tick.outcome is not None:
            kind, reason = tick.outcome
            outcome = EpisodeEvent.SUCCESS if kind == "success" else EpisodeEvent.FAILURE
            self.get_logger().info(f"episode {self.episode_id}: {kind} ({reason})")
            request = EndEpisode.Request(outcome=outcome, reason=reason)
            request.header.stamp = stamp  # this tick's: the episode's last step
            self.end_episode.call_async(request)
        if self.lockstep and self.mux_forwards and tick.operator_command is not None:
            self.tick_timer.cancel()  # on_command (or the timeout) starts the next tick
            self.waiting_since = time.monotonic()

    def destroy_node(self):
        if self.session is not None:
            self.session.close()
        super().destroy_node()


def main():
    sys.exit(run(SimRobotNode))


if __name__ == "__main__":
    main()
