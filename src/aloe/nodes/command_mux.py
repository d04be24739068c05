"""Command mux: arbitrates policy and operator commands into the safe 50 Hz `command` stream.

A command from the source in control is forwarded at once; the 50 Hz timer is the watchdog
beat. A message with source HOLD on a source's topic means that source hands back now.

A forwarded command keeps its source's stamp (when the source computed it); a HOLD is
stamped when the mux decided it. The simulator's lockstep waits for its scripted
operator's command to come back stamped with the tick it answers.
"""
import sys

from aloe_msgs.msg import JointCommand
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from aloe.control.command_arbiter import (ARM_LOWER, ARM_MAX_VELOCITY, ARM_UPPER, SOURCE_NAMES, Command,
                                          CommandArbiter, JointLimits)
from aloe.graph.topics import topic
from aloe.nodes.entry import NodeConfigError, declare_checked, publish_sample, run, stamp_seconds

PARAMETERS = {
    "rate_hz": 50.0,
    "source_timeout_s": 0.2,  # a source silent for longer stops driving the robot (HOLD)
    "max_command_age_s": 0.5,  # stamped commands older than this are dropped (0: no check)
    "position_lower": ARM_LOWER * 2,
    "position_upper": ARM_UPPER * 2,
    "max_velocity": ARM_MAX_VELOCITY * 2,
}


class CommandMux(Node):
    def __init__(self):
        super().__init__("command_mux")
        declare_checked(self, PARAMETERS)
        self.rate_hz = self.get_parameter("rate_hz").value
        try:
            limits = JointLimits(
                lower=self.get_parameter("position_lower").value,
                upper=self.get_parameter("position_upper").value,
                max_velocity=self.get_parameter("max_velocity").value,
            )
        except ValueError as error:
            raise NodeConfigError(f"command_mux: {error}") from None
        if self.rate_hz <= 0:
            raise NodeConfigError(f"command_mux: rate_hz must be positive, got {self.rate_hz}")
        self.arbiter = CommandArbiter(limits, self.get_parameter("source_timeout_s").value, self.get_parameter("max_command_age_s").value)
        self.last_reason = None
        self.published_since_tick = False

        command = topic("command")
        self.output = self.create_publisher(JointCommand, command.name, command.writer_qos)
        for name, source in (("policy/command", JointCommand.SOURCE_POLICY), ("operator/command", JointCommand.SOURCE_OPERATOR)):
            contract = topic(name)
            self.create_subscription(
                JointCommand, contract.name, lambda msg, s=source: self.on_command(msg, s), contract.qos
            )
        joint_states = topic("joint_states")
        self.create_subscription(JointState, joint_states.name, self.on_joint_state, joint_states.qos)
        self.create_service(Trigger, "emergency_stop", self.on_emergency_stop)
        self.create_service(Trigger, "release", self.on_release)
        self.create_timer(1.0 / self.rate_hz, self.tick)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_command(self, msg: JointCommand, source: int) -> None:
        if msg.source == JointCommand.SOURCE_HOLD:
            # The source hands back: the next one in line drives from this very message on.
            self.arbiter.withdraw(source)
            self.get_logger().info(f"{SOURCE_NAMES[source]} handed back")
            self.publish(self.arbiter.decide(self.now(), 1.0 / self.rate_hz))
            return
        command = Command(list(msg.positions), source, msg.policy_version, msg.chunk_id, msg.step, stamp_seconds(msg.header))
        rejection = self.arbiter.offer(command, self.now())
        if rejection is not None:
            # Two call sites: rclpy throttles per site, and a burst of late commands must not
            # hide an invalid one.
            if rejection.stale:
                self.get_logger().warning(f"rejected {SOURCE_NAMES[source]} command: {rejection.reason}", throttle_duration_sec=1.0)
            else:
                self.get_logger().warning(f"rejected {SOURCE_NAMES[source]} command: {rejection.reason}; holding", throttle_duration_sec=1.0)
            return
        # Forward the source in control at once: waiting for the next tick would add up to
        # a tick of latency and, as the two clocks drift, skip or repeat its commands.
        if self.arbiter.in_control(self.now()) == source:
            self.publish(self.arbiter.decide(self.now(), 1.0 / self.rate_hz))

    def on_joint_state(self, msg: JointState) -> None:
        note = self.arbiter.observe(list(msg.position), stamp_seconds(msg.header))
        if note is not None:
            self.get_logger().info(note)
        if self.arbiter.awaiting_pose:  # a source waits for this pose to take control from
            self.publish(self.arbiter.decide(self.now(), 1.0 / self.rate_hz))

    def on_emergency_stop(self, request, response):
        self.arbiter.emergency_stop()
        self.get_logger().warning("emergency stop: holding until `release`")
        response.success, response.message = True, "holding"
        return response

    def on_release(self, request, response):
        self.arbiter.release()
        self.get_logger().info("emergency stop released")
        response.success, response.message = True, "released"
        return response

    def tick(self) -> None:
        """The watchdog beat: a tick with nothing forwarded since the last one decides anew,
        so a silent source turns into HOLD and the robot always gets a command."""
        if not self.published_since_tick:
            self.publish(self.arbiter.decide(self.now(), 1.0 / self.rate_hz))
        self.published_since_tick = False

    def publish(self, decision) -> None:
        if decision is None:
            return  # nothing commanded and no joint_states yet: nothing safe to hold
        if decision.reason != self.last_reason:
            self.get_logger().info(f"in control: {SOURCE_NAMES[decision.command.source]} ({decision.reason})")
            self.last_reason = decision.reason
        c = decision.command
        msg = JointCommand(
            positions=c.positions.tolist(), source=c.source, policy_version=c.policy_version, chunk_id=c.chunk_id, step=c.step
        )
        msg.header.stamp = self.get_clock().now().to_msg() if c.stamp is None else Time(nanoseconds=round(c.stamp * 1e9)).to_msg()
        publish_sample(self, self.output, msg)
        self.published_since_tick = True


def main():
    sys.exit(run(CommandMux))


if __name__ == "__main__":
    main()
