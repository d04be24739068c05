"""Episode runner: works through a list of simulated episodes and ends when they are done.

For each (task, seed) it resets the simulator (`sim/reset`, which answers with the scene's
instruction), starts the episode (`start_episode`) and waits for its end on `episode`,
which the simulator's detector or its time limit triggers. It logs each outcome and a
summary. This is what `aloe bringup` runs by default, with the scripted operator driving.

A request left unanswered for `answer_timeout_s` is made again, from the reset on: Fast DDS
drops a service's response when the server has not yet matched the client's response
reader (it waits 100 ms, then logs "failed to send response (timeout)"), which a loaded
machine can hit right after discovery; the graph would otherwise wait forever. An episode
whose START event arrives while its answer is lost is taken as started.

Before the first episode it waits until the nodes of `await_ready` offer `<node>/ready`
(`aloe.graph.readiness`): on a loaded machine DDS took seconds to connect a fresh graph,
and an episode started meanwhile was recorded late or ran without the operator. A node
not ready within `await_ready_timeout_s` is named, and the episodes start without it.
"""
import sys
import time
from dataclasses import dataclass

from aloe_msgs.msg import EpisodeEvent
from aloe_msgs.srv import ResetSim, StartEpisode
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_srvs.srv import Trigger

from aloe.control.episodes import KIND_NAMES
from aloe.graph.readiness import READY_SERVICE
from aloe.graph.topics import topic
from aloe.nodes.entry import NodeConfigError, WorkDone, declare_checked, run
from aloe.sim import TASK_NAMES

PARAMETERS = {
    "tasks": list(TASK_NAMES),
    "episodes_per_task": 1,
    "first_seed": 0,
    "variant": "train",
    "disturbances": "",
    "skip": "",  # "task/seed,...": episodes already recorded (a resumed `aloe record`)
    "exit_when_done": True,  # end the node (and a bounded bringup) after the last episode
    "answer_timeout_s": 5.0,  # wall time to wait for sim/reset or start_episode before asking again
    "await_ready": "sim_robot,recorder,episode_manager",  # nodes whose `<node>/ready` the first episode waits for ("": none)
    "await_ready_timeout_s": 30.0,  # wall time to wait for them before starting without
}


@dataclass
class Planned:
    task: str
    seed: int
    outcome: str = ""
    reason: str = ""
    seconds: float = 0.0


def episode_plan(tasks, episodes_per_task: int, first_seed: int, skip: str = "") -> list:
    """The episodes to run, in order, less the "task/seed" entries of `skip`."""
    skipped = {entry.strip() for entry in skip.split(",") if entry.strip()}
    return [Planned(task, first_seed + i) for task in tasks for i in range(episodes_per_task)
            if f"{task}/{first_seed + i}" not in skipped]


class EpisodeRunner(Node):
    def __init__(self):
        super().__init__("episode_runner")
        declare_checked(self, PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        if value("episodes_per_task") < 1 or not value("tasks"):
            raise NodeConfigError("episode_runner: needs at least one task and episodes_per_task >= 1")
        self.plan = episode_plan(value("tasks"), value("episodes_per_task"), value("first_seed"), value("skip"))
        if not self.plan:
            raise NodeConfigError("episode_runner: every planned episode is in 'skip'; nothing to run")
        self.variant, self.disturbances = value("variant"), value("disturbances")
        self.exit_when_done = value("exit_when_done")
        self.answer_timeout_s = value("answer_timeout_s")
        if self.answer_timeout_s <= 0:
            raise NodeConfigError(f"episode_runner: answer_timeout_s must be positive, got {self.answer_timeout_s}")
        self.await_ready_timeout_s = value("await_ready_timeout_s")
        if self.await_ready_timeout_s <= 0:
            raise NodeConfigError(f"episode_runner: await_ready_timeout_s must be positive, got {self.await_ready_timeout_s}")
        names = [name.strip() for name in value("await_ready").split(",") if name.strip()]
        self.awaiting = {name: self.create_client(Trigger, f"{name}/{READY_SERVICE}") for name in names}
        self.index, self.episode_id, self.started_at = 0, "", 0.0
        self.pending, self.asked_at, self.starting = None, 0.0, False
        self.ended_ids = set()
        self.reset_client = self.create_client(ResetSim, "sim/reset")
        self.start_client = self.create_client(StartEpisode, "start_episode")
        episode = topic("episode")
        self.create_subscription(EpisodeEvent, episode.name, self.on_episode, episode.qos)
        # Orchestration polls on the wall clock: the sim clock only runs once the sim does.
        self.create_timer(0.1, self.advance, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.created_at = time.monotonic()

    @property
    def current(self) -> Planned:
        return self.plan[self.index]

    def advance(self) -> None:
        if self.index >= len(self.plan) or self.episode_id:
            return
        if self.pending is not None:
            if time.monotonic() - self.asked_at < self.answer_timeout_s:
                return
            service = "start_episode" if self.starting else "sim/reset"
            self.get_logger().warning(
                f"{self.current.task} seed {self.current.seed}: no answer from {service} in {self.answer_timeout_s:g} s; asking again"
            )
            self.pending = None  # a late answer to it is ignored
        if not (self.reset_client.service_is_ready() and self.start_client.service_is_ready() and self.graph_ready()):
            return
        request = ResetSim.Request(task=self.current.task, seed=self.current.seed, variant=self.variant, disturbances=self.disturbances)
        self.ask(self.reset_client, request, self.on_reset, starting=False)

    def graph_ready(self) -> bool:
        """Whether the nodes of `await_ready` are ready (or were given up on)."""
        self.awaiting = {name: client for name, client in self.awaiting.items() if not client.service_is_ready()}
        if self.awaiting and time.monotonic() - self.created_at > self.await_ready_timeout_s:
            self.get_logger().warning(
                f"not ready within await_ready_timeout_s ({self.await_ready_timeout_s:g} s): {', '.join(self.awaiting)} "
                "(their logs say what they wait for); starting the episodes without"
            )
            self.awaiting = {}
        return not self.awaiting

    def ask(self, client, request, on_answer, starting: bool) -> None:
        self.pending, self.asked_at, self.starting = client.call_async(request), time.monotonic(), starting
        self.pending.add_done_callback(on_answer)

    def on_reset(self, future) -> None:
        if future is not self.pending:
            return
        response = future.result()
        if not response.success:
            self.finish_episode("error", response.message)
            return
        request = StartEpisode.Request(
            task=self.current.task, instruction=response.instruction, seed=self.current.seed, variant=self.variant
        )
        self.ask(self.start_client, request, self.on_started, starting=True)

    def on_started(self, future) -> None:
        if future is not self.pending:
            return
        response = future.result()
        if not response.success:
            self.finish_episode("error", response.message)
            return
        self.begin(response.episode_id)

    def begin(self, episode_id: str) -> None:
        self.episode_id, self.started_at, self.pending = episode_id, time.monotonic(), None
        self.get_logger().info(f"episode {self.index + 1}/{len(self.plan)}: {self.current.task} seed {self.current.seed} ({episode_id})")

    def on_episode(self, msg: EpisodeEvent) -> None:
        if msg.kind == EpisodeEvent.START:
            if self.index >= len(self.plan):
                return
            # The manager publishes START before it answers: the answer may yet be lost.
            ours = msg.task == self.current.task and msg.seed == self.current.seed and msg.episode_id not in self.ended_ids
            if self.pending is not None and self.starting and ours:
                self.begin(msg.episode_id)
        elif self.episode_id and msg.episode_id == self.episode_id:
            self.ended_ids.add(msg.episode_id)
            self.finish_episode(KIND_NAMES[msg.kind], msg.reason)

    def finish_episode(self, outcome: str, reason: str) -> None:
        planned = self.current
        planned.outcome, planned.reason = outcome, reason
        planned.seconds = time.monotonic() - self.started_at if self.episode_id else 0.0
        self.get_logger().info(f"{planned.task} seed {planned.seed}: {outcome} ({reason}), {planned.seconds:.1f} s wall")
        self.index, self.pending, self.episode_id = self.index + 1, None, ""
        if self.index == len(self.plan):
            self.summarise()

    def summarise(self) -> None:
        successes = sum(p.outcome == "SUCCESS" for p in self.plan)
        self.get_logger().info(f"done: {successes}/{len(self.plan)} episodes succeeded: " + ", ".join(f"{p.task}/{p.seed} {p.outcome}" for p in self.plan))
        if self.exit_when_done:
            raise WorkDone()


def main():
    sys.exit(run(EpisodeRunner))


if __name__ == "__main__":
    main()
