"""Episode manager: `start_episode` / `end_episode` services, events on `episode`.

On the simulator's clock it starts no episode before the clock has a time (events stamped 0
would place the START before everything), and offers `episode_manager/ready` from then on.
"""
import sys
import time

from aloe_msgs.msg import EpisodeEvent
from aloe_msgs.srv import EndEpisode, StartEpisode
from rclpy.node import Node
from rclpy.time import Time

from aloe.control.episodes import EpisodeBook, EpisodeError, KIND_NAMES, START
from aloe.graph.readiness import ReadyService, waiting_for_clock
from aloe.graph.topics import topic
from aloe.nodes.entry import declare_checked, run

PARAMETERS = {
    "robot_name": "sim",  # prefix of episode ids
    "time_limit_s": 0.0,  # an episode running longer ends as FAILURE; 0 disables
}


class EpisodeManager(Node):
    def __init__(self):
        super().__init__("episode_manager")
        declare_checked(self, PARAMETERS)
        self.book = EpisodeBook(
            robot=self.get_parameter("robot_name").value,
            time_limit_s=self.get_parameter("time_limit_s").value,
        )
        episode = topic("episode")
        self.events = self.create_publisher(EpisodeEvent, episode.name, episode.writer_qos)
        self.create_service(StartEpisode, "start_episode", self.on_start)
        self.create_service(EndEpisode, "end_episode", self.on_end)
        self.create_timer(0.1, self.check_time_limit)
        self.ready = ReadyService(self, lambda: waiting_for_clock(self))

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def publish(self, episode, kind: int, reason: str = "", stamp=None) -> None:
        """`stamp`: the event's header stamp (a builtin_interfaces Time); None: now."""
        event = EpisodeEvent(
            episode_id=episode.episode_id,
            kind=kind,
            task=episode.task,
            instruction=episode.instruction,
            seed=episode.seed,
            variant=episode.variant,
            reason=reason,
        )
        event.header.stamp = self.get_clock().now().to_msg() if stamp is None else stamp
        self.events.publish(event)
        self.get_logger().info(f"{KIND_NAMES[kind]} {episode.episode_id} ({episode.task}) {reason}".rstrip())

    def on_start(self, request, response):
        if waiting_for_clock(self):
            response.success = False
            response.message = "episode_manager: no /clock yet (use_sim_time is true): is the simulator running?"
            return response
        try:
            episode = self.book.start(request.task, request.instruction, request.seed, request.variant, self.now(), time.time())
        except EpisodeError as error:
            response.success, response.message = False, str(error)
            return response
        self.publish(episode, START)
        response.success, response.episode_id = True, episode.episode_id
        return response

    def on_end(self, request, response):
        # The end is stamped when the outcome happened, where the request says: the sim runs
        # on between its outcome tick and this call, and a bag read up to a later stamp
        # took those steps (the robot standing after its success) into the episode.
        requested_ns = Time.from_msg(request.header.stamp).nanoseconds
        now = requested_ns * 1e-9 if requested_ns > 0 else self.now()
        try:
            episode = self.book.end(request.outcome, request.reason, now)
        except EpisodeError as error:
            response.success, response.message = False, str(error)
            return response
        stamp = None
        if requested_ns > 0:
            # The request's own stamp, not one rebuilt from float seconds: since 1970 those
            # keep only ~0.4 us, and the outcome tick's joint state must not fall after it.
            clamped = episode.end_time != now  # stamped before the START reached the sender
            stamp = Time(nanoseconds=round(episode.end_time * 1e9)).to_msg() if clamped else request.header.stamp
        self.publish(episode, episode.outcome, episode.reason, stamp)
        response.success, response.episode_id = True, episode.episode_id
        return response

    def check_time_limit(self):
        episode = self.book.expire(self.now())
        if episode is not None:
            self.publish(episode, episode.outcome, episode.reason)


def main():
    sys.exit(run(EpisodeManager))


if __name__ == "__main__":
    main()
