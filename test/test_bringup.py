"""`aloe bringup` starts the graph over real DDS, stops it cleanly, and reports failures."""
import os
import re
import signal
import time

import pytest
from aloe_msgs.msg import EpisodeEvent
from aloe_msgs.srv import EndEpisode, ResetSim, StartEpisode
from builtin_interfaces.msg import Time
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.task import Future
from rosgraph_msgs.msg import Clock
from std_srvs.srv import Trigger

from aloe.graph.topics import topic
from bringup_process import Bringup
from ros_helpers import call_service, node, spin_until


@pytest.fixture
def bringup(ros_domain, tmp_path):
    started = []

    def start(*args, file_size_limit=None, command="bringup"):
        process = Bringup(*args, cwd=tmp_path, file_size_limit=file_size_limit, command=command)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def test_graph_serves_episodes_and_stops_cleanly_on_ctrl_c(bringup, rclpy_context):
    graph = bringup("--namespace", "itest", "--only", "episode_manager", "--only", "command_mux")
    assert graph.wait_for(r"started command_mux"), graph.output()
    client_node = node(rclpy_context, "tester", namespace="/itest")
    events = []
    episode = topic("episode")
    client_node.create_subscription(EpisodeEvent, episode.name, events.append, episode.qos)
    client = client_node.create_client(StartEpisode, "start_episode")
    request = StartEpisode.Request(task="insertion", instruction="pack the phone")
    # On the simulator's clock (the default) and no simulator: no time, so no episode.
    response = call_service(rclpy_context, client_node, client, request, timeout_s=30)
    assert response is not None and not response.success and "no /clock yet" in response.message, graph.output()
    ready = client_node.create_client(Trigger, "episode_manager/ready")
    assert not spin_until(rclpy_context, [client_node], ready.service_is_ready, timeout_s=2.0) and not events
    clock = client_node.create_publisher(Clock, "/clock", topic("/clock").writer_qos)
    client_node.create_timer(0.02, lambda: clock.publish(Clock(clock=Time(sec=1234, nanosec=5))))
    assert spin_until(rclpy_context, [client_node], ready.service_is_ready, timeout_s=30), graph.output()
    response = call_service(rclpy_context, client_node, client, request, timeout_s=30)
    assert response is not None and response.success, graph.output()
    assert spin_until(rclpy_context, [client_node], lambda: events)
    assert events[0].kind == EpisodeEvent.START and events[0].episode_id == response.episode_id
    assert events[0].instruction == "pack the phone"
    assert (events[0].header.stamp.sec, events[0].header.stamp.nanosec) == (1234, 5)  # the clock's time, not 0
    # An end stamped by its sender (the sim: the tick that found the outcome) keeps that stamp.
    end = EndEpisode.Request(outcome=EpisodeEvent.SUCCESS, reason="detector")
    end.header.stamp = Time(sec=1_796_276_939, nanosec=787_984_129)  # a float of seconds would lose the last ns
    response = call_service(rclpy_context, client_node, client_node.create_client(EndEpisode, "end_episode"), end, timeout_s=30)
    assert response is not None and response.success, graph.output()
    assert spin_until(rclpy_context, [client_node], lambda: len(events) == 2)
    assert events[1].kind == EpisodeEvent.SUCCESS and (events[1].header.stamp.sec, events[1].header.stamp.nanosec) == (1_796_276_939, 787_984_129)

    graph.interrupt()
    assert graph.finish() == 0, graph.output()
    out = graph.output()
    assert "episode_manager exited with code 0" in out and "command_mux exited with code 0" in out
    assert "/itest/start_episode" in out  # the summary lists what the graph offered


def test_episode_runner_asks_again_when_an_answer_is_lost(bringup, rclpy_context, tmp_path):
    """A lost service answer (Fast DDS drops one when the server has not yet matched the
    client's response reader) must not stall the graph: the runner asks again, and takes
    an episode whose START it saw as started."""
    # A stand-in for the simulator and the episode manager (outside the runner's namespace,
    # which bringup wants empty): the first reset and every start go unanswered.
    standin = node(rclpy_context, "standin")
    episode = topic("episode")
    events = standin.create_publisher(EpisodeEvent, "/lost/" + episode.name, episode.qos)
    resets, starts, never = [], [], Future()

    async def on_reset(request, response):
        resets.append(request.seed)
        if len(resets) == 1:
            await never
        response.success, response.instruction = True, "open the drawer"
        return response

    async def on_start(request, response):
        starts.append(request.instruction)
        events.publish(EpisodeEvent(episode_id="sim-1", kind=EpisodeEvent.START, task=request.task, seed=request.seed))
        await never

    group = ReentrantCallbackGroup()  # an unanswered call must not hold up the next
    standin.create_service(ResetSim, "/lost/sim/reset", on_reset, callback_group=group)
    standin.create_service(StartEpisode, "/lost/start_episode", on_start, callback_group=group)
    params = tmp_path / "runner.yaml"
    params.write_text("/**/episode_runner:\n  ros__parameters:\n    tasks: [drawer]\n    first_seed: 7\n    answer_timeout_s: 1.0\n"
                      "    await_ready: ''\n")
    graph = bringup("--namespace", "lost", "--only", "episode_runner", "--params", str(params))

    started = lambda: graph.wait_for(r"episode 1/1: drawer seed 7 \(sim-1\)", timeout_s=0.05)  # noqa: E731
    assert spin_until(rclpy_context, [standin], started, timeout_s=60), graph.output()
    events.publish(EpisodeEvent(episode_id="sim-1", kind=EpisodeEvent.SUCCESS, task="drawer", seed=7, reason="detector"))
    assert spin_until(rclpy_context, [standin], lambda: graph.process.poll() is not None, timeout_s=30), graph.output()
    assert graph.finish() == 0, graph.output()
    assert resets == [7, 7] and starts == ["open the drawer"]
    assert graph.wait_for(r"drawer seed 7: no answer from sim/reset in 1 s; asking again"), graph.output()
    assert graph.wait_for(r"done: 1/1 episodes succeeded: drawer/7 SUCCESS"), graph.output()


def test_episode_runner_waits_for_the_nodes_it_awaits_and_names_those_never_ready(bringup, rclpy_context, tmp_path):
    """The first episode waits for `<node>/ready` of each node in `await_ready`; one that is
    not ready within `await_ready_timeout_s` is named, and the episodes start without it."""
    standin = node(rclpy_context, "standin")
    resets = []

    def on_reset(request, response):
        resets.append(time.monotonic())
        response.success, response.message = False, "no scene here"
        return response

    standin.create_service(ResetSim, "/slow/sim/reset", on_reset)
    standin.create_service(StartEpisode, "/slow/start_episode", lambda request, response: response)
    params = tmp_path / "runner.yaml"
    params.write_text("/**/episode_runner:\n  ros__parameters:\n    tasks: [drawer]\n"
                      "    await_ready: 'late, never'\n    await_ready_timeout_s: 8.0\n")
    graph = bringup("--namespace", "slow", "--only", "episode_runner", "--params", str(params))
    assert graph.wait_for(r"\[episode_runner\].*ready"), graph.output()
    started = time.monotonic()
    spin_until(rclpy_context, [standin], lambda: False, timeout_s=1.0)
    standin.create_service(Trigger, "/slow/late/ready", lambda request, response: response)
    assert spin_until(rclpy_context, [standin], lambda: resets, timeout_s=30), graph.output()
    assert resets[0] - started > 4.0, "the first reset came before the wait for 'never' ran out"
    assert graph.wait_for(r"not ready within await_ready_timeout_s \(8 s\): never \(their logs"), graph.output()
    assert graph.wait_for(r"drawer seed 0: error \(no scene here\)"), graph.output()
    assert graph.finish(timeout_s=30) == 0, graph.output()


def test_bounded_run_ends_by_itself_and_reports(bringup):
    graph = bringup("--duration", "2", "--namespace", "bounded", "--only", "episode_manager", "--only", "command_mux")
    assert graph.finish(timeout_s=60) == 0, graph.output()
    assert graph.wait_for(r"ran \d+\.\d s; nodes: episode_manager exited with code 0, command_mux exited with code 0")


def test_a_node_that_dies_is_named_and_the_rest_are_stopped(bringup):
    graph = bringup("--namespace", "crash")
    victim = graph.pid_of("command_mux")
    assert graph.wait_for(r"\[command_mux\].*ready") and graph.wait_for(r"\[episode_manager\].*ready")
    os.kill(victim, signal.SIGKILL)
    assert graph.finish() == 1
    assert graph.wait_for(r"node 'command_mux' killed by SIGKILL: .*; stopping the others"), graph.output()
    assert "episode_manager exited with code 0" in graph.output()


@pytest.mark.parametrize("node, setting, reason", [
    ("command_mux", "position_lower: [0.0, 0.0, 0.0]", "joint limit arrays differ in length"),
    ("policy", "device: gpu", "device 'gpu' is not a torch device: use cpu, cuda or cuda:N"),
    ("sim_robot", "real_time_factor: -1.0", "real_time_factor must be >= 0, got -1.0"),
    ("recorder", "flush_every_s: 0.0", "flush_every_s must be positive, got 0.0"),
    ("recorder", "keep_before_start_s: -1.0", "keep_before_start_s must be at least 0, got -1.0"),
    ("trainer", "min_new_episodes: 0", "min_new_episodes must be >= 1, got 0"),
    ("episode_runner", "answer_timeout_s: 0.0", "answer_timeout_s must be positive, got 0.0"),
])
def test_a_node_that_refuses_its_configuration_is_reported_with_its_reason(bringup, tmp_path, node, setting, reason):
    # The refusal is one line and exit 2, not a traceback from shutting down a half-built node.
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"/**/{node}:\n  ros__parameters:\n    {setting}\n")
    graph = bringup("--namespace", f"bad{node}", "--only", node, "--params", str(bad))
    assert graph.finish() == 1
    assert graph.wait_for(rf"node '{node}' exited with code 2: error: {node}: {re.escape(reason)}"), graph.output()


def test_second_bringup_on_the_same_namespace_is_refused(bringup):
    first = bringup("--namespace", "twice")
    for name in ("sim_robot", "episode_manager", "command_mux", "recorder", "policy", "episode_runner"):
        assert first.wait_for(rf"\[{name}\].*ready", timeout_s=60), first.output()  # Ctrl-C below stops a running graph
    second = bringup("--namespace", "twice", "--duration", "1")
    assert second.finish() == 2
    assert "another aloe bringup" in second.output() and "Traceback" not in second.output()
    first.interrupt()
    assert first.finish() == 0, first.output()


def test_bringup_refuses_a_namespace_that_already_has_nodes(bringup, rclpy_context):
    """Another machine's (or a hand-started) graph in the namespace is found through DDS."""
    squatter = node(rclpy_context, "command_mux", namespace="/taken")
    graph = bringup("--namespace", "taken", "--duration", "1")
    spin_until(rclpy_context, [squatter], lambda: graph.process.poll() is not None, timeout_s=30)
    assert graph.finish() == 2
    assert "namespace /taken on ROS_DOMAIN_ID" in graph.output() and "command_mux" in graph.output()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "nope"], "unknown node name nope"),
        (["--params", "/nonexistent/p.yaml"], "parameter file /nonexistent/p.yaml does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(bringup, args, message):
    graph = bringup(*args, "--duration", "1")
    assert graph.finish() == 2
    assert graph.output().strip() == f"aloe: error: {message}" or message in graph.output()
    assert len(graph.output().strip().splitlines()) == 1


def test_nodes_do_not_outlive_a_killed_runner(bringup):
    graph = bringup("--namespace", "orphan", "--only", "episode_manager")
    manager = graph.pid_of("episode_manager")
    assert graph.wait_for(r"\[episode_manager\].*ready"), graph.output()
    graph.process.kill()  # SIGKILL: the runner cannot stop its nodes itself
    graph.process.wait()

    def running(pid):
        try:
            return open(f"/proc/{pid}/stat").read().split()[2] != "Z"  # a zombie has exited
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 15
    while running(manager) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(manager)
