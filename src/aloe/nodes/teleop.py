"""Teleop: the operator's keyboard (in a terminal), gamepad (`joy`, sensor_msgs/Joy) or
leader arm (`leader/joint_states`) as `operator/command`, tagged OPERATOR.

One key (space), one button (Joy button 0) or the `teleop/toggle` service takes over and
hands back; taking over starts from the measured pose, handing back tells the mux at once
(a message with source HOLD). A critic's takeover request rings the terminal bell and is
logged. `s` / `f` end the episode as success / failure.

    ros2 run aloe teleop --ros-args -r __ns:=/aloe -p input:=keyboard     # in a terminal
    .venv/bin/teleop --ros-args -r __ns:=/aloe -p input:=keyboard
"""
import sys
import termios
import threading
import tty

from aloe_msgs.msg import EpisodeEvent, JointCommand, TakeoverRequest
from aloe_msgs.srv import EndEpisode
from rclpy.node import Node
from sensor_msgs.msg import Joy, JointState
from std_srvs.srv import Trigger

from aloe.control.teleop import KEY_HELP, Teleop
from aloe.graph.topics import topic
from aloe.nodes.entry import NodeConfigError, declare_checked, run

INPUTS = ("keyboard", "joy", "leader")
PARAMETERS = {
    "input": "keyboard",
    "rate_hz": 50.0,
    "joy_topic": "joy",
    "leader_topic": "leader/joint_states",
    "key_step": 0.05,  # rad (or gripper units) per key press
    "joy_speed": 1.0,  # rad/s at full deflection
}


class TeleopNode(Node):
    def __init__(self):
        super().__init__("teleop")
        declare_checked(self, PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.input = value("input")
        if self.input not in INPUTS:
            raise NodeConfigError(f"teleop: input must be one of {', '.join(INPUTS)}, got '{self.input}'")
        if self.input == "keyboard" and not sys.stdin.isatty():
            raise NodeConfigError("teleop: keyboard input needs a terminal; run `.venv/bin/teleop --ros-args -r __ns:=/aloe` in one "
                                  "(or use input:=joy / input:=leader)")
        self.rate_hz = value("rate_hz")
        self.teleop = Teleop(value("key_step"), value("joy_speed"))
        self.lock = threading.Lock()
        self.sent_since_tick = False
        self.output = self.create_publisher(JointCommand, topic("operator/command").name, topic("operator/command").writer_qos)
        self.create_subscription(JointState, topic("joint_states").name, self.on_joint_state, topic("joint_states").qos)
        request = topic("critic/takeover_request")
        self.create_subscription(TakeoverRequest, request.name, self.on_request, request.qos)
        self.create_subscription(EpisodeEvent, topic("episode").name, self.on_episode, topic("episode").qos)
        if self.input == "joy":
            self.create_subscription(Joy, value("joy_topic"), self.on_joy, topic("joint_states").qos)
        if self.input == "leader":
            self.create_subscription(JointState, value("leader_topic"), self.on_leader, topic("joint_states").qos)
        self.create_service(Trigger, "teleop/toggle", self.on_toggle)
        self.end_episode = self.create_client(EndEpisode, "end_episode")
        self.create_timer(1.0 / self.rate_hz, self.tick)
        if self.input == "keyboard":
            threading.Thread(target=self.read_keys, daemon=True).start()
            self.get_logger().info(KEY_HELP)

    def on_joint_state(self, msg: JointState) -> None:
        with self.lock:
            self.teleop.observe(msg.position)

    def on_request(self, msg: TakeoverRequest) -> None:
        if not self.teleop.engaged:
            print("\a", end="", flush=True)  # the terminal bell: look at the robot
            self.get_logger().warning(f"the critic asks you to take over: {msg.reason}")

    def on_episode(self, event: EpisodeEvent) -> None:
        if event.kind != EpisodeEvent.START and self.teleop.engaged:
            self.say(self.toggle())  # the episode is over: hand back

    def on_joy(self, msg: Joy) -> None:
        with self.lock:
            said = self.teleop.joy(msg.axes, msg.buttons, 1.0 / self.rate_hz)
        if said:
            self.say(said)
        self.send()

    def on_leader(self, msg: JointState) -> None:
        with self.lock:
            self.teleop.leader(msg.position)
        self.send()  # at once: the input's own rate, no wait for the next tick

    def on_toggle(self, request, response):
        response.message = self.toggle()
        response.success = not response.message.startswith("cannot")
        self.say(response.message)
        return response

    def toggle(self) -> str:
        with self.lock:
            was_engaged, said = self.teleop.engaged, self.teleop.toggle()
        if was_engaged and not self.teleop.engaged:
            self.output.publish(JointCommand(source=JointCommand.SOURCE_HOLD))  # hand back now, not after a timeout
        return said

    def read_keys(self) -> None:
        settings = termios.tcgetattr(sys.stdin)
        try:
            tty.setcbreak(sys.stdin.fileno())
            while True:
                key = sys.stdin.read(1)
                if key == " ":
                    self.say(self.toggle())
                    continue
                with self.lock:
                    said = self.teleop.key(key)
                if said in ("success", "failure"):
                    outcome = EpisodeEvent.SUCCESS if said == "success" else EpisodeEvent.FAILURE
                    self.end_episode.call_async(EndEpisode.Request(outcome=outcome, reason="operator key"))
                    said = f"ending the episode as {said}"
                if said:
                    self.say(said)
        finally:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, settings)

    def say(self, line: str) -> None:
        self.get_logger().info(line)

    def tick(self) -> None:
        """Keeps the stream at `rate_hz` when the input is quieter (keyboard, a still gamepad)."""
        if not self.sent_since_tick:
            self.send()
        self.sent_since_tick = False

    def send(self) -> None:
        with self.lock:
            target = self.teleop.command()
        if target is not None:
            msg = JointCommand(positions=target.tolist(), source=JointCommand.SOURCE_OPERATOR)
            msg.header.stamp = self.get_clock().now().to_msg()
            self.output.publish(msg)
            self.sent_since_tick = True


def main():
    sys.exit(run(TeleopNode))


if __name__ == "__main__":
    main()
