"""Ready for an episode: a node that must be connected before an episode starts offers
`<node>/ready` (std_srvs/Trigger) once it is, and the episode runner waits for those
services before its first episode (its `await_ready`).

DDS matches endpoints pair by pair, and under load that took seconds after every node had
started: beside a CPU hog, the scripted operator's commands reached the mux 2 s into a fresh
graph's first episode (the sim ticked on meanwhile, the bag got ~100 extra steps), or the
recorder saw the episode's START 1.7 s late. Only a node knows what it has matched, so the
node says when it is connected.
"""
from typing import Callable, Iterable

from rclpy.clock import Clock, ClockType
from std_srvs.srv import Trigger

READY_SERVICE = "ready"
CHECK_PERIOD_S = 0.1
REPORT_AFTER_S = 5.0  # a node still waiting this long says what for, once


def unmatched(node, topics: Iterable[str], required: Iterable[str] = ()) -> list:
    """Those of `topics` (relative names) where `node`'s endpoints have not yet matched every
    peer that its view of the graph shows, or, for `required`, have matched none."""
    required = {node.resolve_topic_name(name) for name in required}
    wanted = {node.resolve_topic_name(name) for name in topics}
    counts = [(p.topic_name, p.get_subscription_count(), node.count_subscribers(p.topic_name))
              for p in node.publishers if p.topic_name in wanted]
    counts += [(s.topic_name, s.get_publisher_count(), node.count_publishers(s.topic_name))
               for s in node.subscriptions if s.topic_name in wanted]
    return sorted({name for name, matched, peers in counts if matched < max(peers, 1 if name in required else 0)})


def waiting_for_clock(node) -> list:
    """["/clock"] while a node on the simulator's clock has no time yet: what it stamps then
    reads 0 (an episode's START so stamped made the recorder drop what came before it)."""
    started = not node.get_parameter("use_sim_time").value or node.get_clock().now().nanoseconds > 0
    return [] if started else ["/clock"]


class ReadyService:
    """Offers the node's `~/ready` once `waiting_for()` (what the node still waits for, as
    short phrases) is empty. Checked on the wall clock: the sim clock may not run yet."""

    def __init__(self, node, waiting_for: Callable[[], list]):
        self.node, self.waiting_for = node, waiting_for
        self.wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.since, self.reported = self.wall.now(), False
        self.timer = node.create_timer(CHECK_PERIOD_S, self.check, clock=self.wall)

    def check(self) -> None:
        missing = self.waiting_for()
        if not missing:
            self.node.destroy_timer(self.timer)
            self.node.create_service(Trigger, f"~/{READY_SERVICE}", self.answer)
            self.node.get_logger().info("connected: ready for episodes")
        elif not self.reported and (self.wall.now() - self.since).nanoseconds * 1e-9 > REPORT_AFTER_S:
            self.reported = True
            self.node.get_logger().info(f"not yet ready for episodes: waiting for {', '.join(missing)}")

    @staticmethod
    def answer(request, response):
        response.success, response.message = True, "connected"
        return response
