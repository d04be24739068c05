"""Control-loop figures over real DDS, with the policy running inference and the three
simulated cameras on:

  * the 50 Hz `command` stream as the robot receives it: control steps of the robot's
    clock with no policy command on `command` (goal < 1 % missed; split into steps the
    policy never emitted and commands the mux did not forward), and arrival jitter (wall
    time between two arrivals against robot-clock time between their steps);
  * operator input to command latency: a leader-arm sample in, the mux's command with its
    value out (goal p99 <= 20 ms).

    .venv/bin/python benchmarks/control.py               # 5 runs of 7 s per phase
    .venv/bin/python benchmarks/control.py --seconds 5 --runs 1 --camera-rate-hz 15

The graph (sim_robot paced at real time with its three cameras at 320x240, 5 Hz unless
told, command_mux, policy with a default-size checkpoint trained for a few steps, teleop
on a leader arm) runs through `aloe bringup` in a ROS domain of its own, discovery on
this machine; this process probes.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DOMAIN = "78"


def checkpoint(folder: Path) -> Path:
    """A default-size ALOE checkpoint (the real inference cost), trained for a few steps."""
    out = folder / "model.safetensors"
    subprocess.run([sys.executable, "-m", "aloe.cli", "train", "--algo", "aloe", "--synthetic", "4", "--pretrain-steps", "2",
                    "--critic-steps", "2", "--improve-steps", "2", "--batch-size", "4", "--no-progress", "--out", str(out)],
                   check=True, capture_output=True)
    return out


def one_run(model: Path, folder: Path, seconds: float, run: int, camera_rate_hz: float) -> dict:
    import rclpy
    from aloe_msgs.msg import JointCommand
    from aloe_msgs.srv import StartEpisode
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from aloe.graph.topics import topic

    params = folder / f"control-{run}.yaml"
    params.write_text(
        f"/**/sim_robot:\n  ros__parameters:\n    scripted_operator: false\n    camera_rate_hz: {camera_rate_hz}\n"
        f"/**/policy:\n  ros__parameters:\n    checkpoint: {model}\n"
        "/**/teleop:\n  ros__parameters:\n    input: leader\n"
    )
    log = folder / f"control-{run}.log"
    with log.open("w") as graph_log:  # the child keeps its own handle
        graph = subprocess.Popen(
            [sys.executable, "-m", "aloe.cli", "bringup", "--namespace", "ctl", "--only", "sim_robot", "--only", "command_mux",
             "--only", "episode_manager", "--only", "policy", "--only", "teleop", "--params", str(params)],
            stdout=graph_log, stderr=subprocess.STDOUT,
        )
    context = Context()
    rclpy.init(context=context)
    # Outside /ctl: the runner refuses to start in a namespace that already has nodes.
    node = rclpy.create_node("control_probe", context=context)
    emitted = {}  # (chunk_id, step) -> robot-clock stamp, as the policy published it
    forwarded = {}  # (chunk_id, step) -> wall time it reached `command`
    sent, latencies = {}, []  # leader sample value -> wall time sent; operator latencies

    def stamp_of(msg):
        return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    def on_policy_command(msg):
        emitted.setdefault((msg.chunk_id, msg.step), (time.monotonic(), stamp_of(msg)))

    def on_command(msg):
        now = time.monotonic()
        if msg.source == JointCommand.SOURCE_POLICY:
            forwarded.setdefault((msg.chunk_id, msg.step), now)  # the watchdog beat repeats commands
        key = round(msg.positions[0], 6)
        if msg.source == JointCommand.SOURCE_OPERATOR and key in sent:
            latencies.append(now - sent.pop(key))

    node.create_subscription(JointCommand, "/ctl/policy/command", on_policy_command, topic("policy/command").qos)
    node.create_subscription(JointCommand, "/ctl/command", on_command, topic("command").qos)
    leader = node.create_publisher(JointState, "/ctl/leader/joint_states", topic("joint_states").qos)
    measured = []
    node.create_subscription(JointState, "/ctl/joint_states", lambda m: measured.append(list(m.position)), topic("joint_states").qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin_for(duration):
        end = time.monotonic() + duration
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)

    def call(client, request):
        if not client.wait_for_service(timeout_sec=60):
            raise RuntimeError(f"no {client.srv_name} service: the graph did not come up; its log:\n" + log.read_text())
        future = client.call_async(request)
        while not future.done():
            executor.spin_once(timeout_sec=0.05)
        return future.result()

    # The policy loads its checkpoint after the other nodes are up (seconds on a loaded
    # machine); an episode started before it is ready would have no policy in it.
    call(node.create_client(Trigger, "/ctl/policy/ready"), Trigger.Request())
    call(node.create_client(StartEpisode, "/ctl/start_episode"), StartEpisode.Request(task="insertion", instruction="pack the phone"))
    spin_for(5.0)  # the policy's first chunks
    start = time.monotonic()
    spin_for(seconds)
    window = {key: value for key, value in emitted.items() if value[0] >= start and value[0] < start + seconds}

    # Operator latency: take over with the leader arm, then move one joint by 0.1 mrad per
    # 50 Hz sample from the measured pose (inside the mux's velocity limit and, over a
    # minute, the joint's range, so every sample's value reaches `command` unchanged and
    # identifies it).
    toggle = node.create_client(Trigger, "/ctl/teleop/toggle")
    while "taking over" not in call(toggle, Trigger.Request()).message:
        spin_for(0.2)
    base = np.array(measured[-1], dtype=float)
    for k in range(int(seconds * 50)):
        positions = base.copy()
        positions[0] = round(base[0] + 0.0001 * (k + 1), 6)
        sent[positions[0]] = time.monotonic()
        leader.publish(JointState(position=positions.tolist()))
        spin_for(0.02)
    spin_for(0.5)
    operator_lost = len(sent)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    graph.terminate()
    graph.wait()

    # Per control step of the robot's clock (the sim's /clock, which the nodes run on): a
    # step is missed when no policy command for it reached `command`.
    if not window:
        raise SystemExit(f"run {run}: the policy published no command in {5 + seconds:g} s after the episode started; "
                         "the graph's log ends:\n" + "\n".join(log.read_text().splitlines()[-30:]))
    steps = np.round(np.array([stamp for _, stamp in window.values()]) / 0.02).astype(int)
    span = int(steps.max() - steps.min() + 1)
    arrived = [(forwarded[key], stamp) for key, (_, stamp) in window.items() if key in forwarded]
    wall, stamps = np.array(sorted(arrived, key=lambda pair: pair[1])).T
    # Jitter: how much the wall time between two arrivals differs from the robot-clock time
    # between their steps (a simulator a little below real time adds under 2 ms).
    deviation = np.abs(np.diff(wall) - np.diff(stamps)) * 1e3
    return {
        "steps": span, "not_emitted": span - len(np.unique(steps)), "not_forwarded": len(window) - len(arrived),
        "missed": span - len(np.unique(np.round(stamps / 0.02))), "real_time_factor": (stamps[-1] - stamps[0]) / (wall[-1] - wall[0]),
        "jitter_median_ms": float(np.median(deviation)), "jitter_p99_ms": float(np.percentile(deviation, 99)),
        "latency_median_ms": float(np.median(latencies) * 1e3) if latencies else float("nan"),
        "latency_p99_ms": float(np.percentile(latencies, 99) * 1e3) if latencies else float("nan"),
        "latency_samples": len(latencies), "operator_lost": operator_lost,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=7.0, help="per phase (policy, then operator)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--camera-rate-hz", type=float, default=5.0)
    args = parser.parse_args()
    if 5 + 2 * args.seconds > 19:
        parser.error("both phases and 5 s of warm-up must fit in the insertion episode's 20 s: --seconds at most 7")
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=DOMAIN)
    with tempfile.TemporaryDirectory() as folder:
        model = checkpoint(Path(folder))
        results = [one_run(model, Path(folder), args.seconds, run, args.camera_rate_hz) for run in range(args.runs)]
    for k, r in enumerate(results):
        print(f"run {k}: {r['steps']} control steps (real-time factor {r['real_time_factor']:.2f}): missed {r['missed']} "
              f"({r['missed'] / r['steps']:.1%}; not emitted by the policy {r['not_emitted']}, not forwarded by the mux "
              f"{r['not_forwarded']}), arrival jitter median {r['jitter_median_ms']:.2f} ms p99 {r['jitter_p99_ms']:.2f} ms; "
              f"operator -> command latency median {r['latency_median_ms']:.2f} ms p99 {r['latency_p99_ms']:.2f} ms "
              f"({r['latency_samples']} samples, {r['operator_lost']} lost)")
    print(f"median over runs: missed {statistics.median(r['missed'] / r['steps'] for r in results):.1%}, "
          f"jitter p99 {statistics.median(r['jitter_p99_ms'] for r in results):.2f} ms, "
          f"operator latency p99 {statistics.median(r['latency_p99_ms'] for r in results):.2f} ms")


if __name__ == "__main__":
    main()
