"""Control-loop figures over real DDS, with the policy running inference and the three
simulated cameras on:

  * the 50 Hz `command` stream as the robot receives it: inter-arrival jitter (median,
    p99) and missed ticks (goal < 1 %);
  * operator input to command latency: a leader-arm sample in, the mux's command with its
    value out (goal p99 <= 20 ms).

    .venv/bin/python benchmarks/control.py               # 3 runs of 20 s
    .venv/bin/python benchmarks/control.py --seconds 10 --runs 1

The graph (sim_robot paced at real time with cameras at 5 Hz, command_mux, policy with a
default-size checkpoint trained for a few steps, teleop on a leader arm) runs through
`aloe bringup` in a ROS domain of its own, discovery on this machine; this process probes.
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


def one_run(model: Path, folder: Path, seconds: float, run: int) -> dict:
    import rclpy
    from aloe_msgs.msg import JointCommand
    from aloe_msgs.srv import StartEpisode
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from aloe.topics import topic

    params = folder / f"control-{run}.yaml"
    params.write_text(
        "/**/sim_robot:\n  ros__parameters:\n    scripted_operator: false\n"
        f"/**/policy:\n  ros__parameters:\n    checkpoint: {model}\n"
        "/**/teleop:\n  ros__parameters:\n    input: leader\n"
    )
    graph = subprocess.Popen(
        [sys.executable, "-m", "aloe.cli", "bringup", "--namespace", "ctl", "--only", "sim_robot", "--only", "command_mux",
         "--only", "episode_manager", "--only", "policy", "--only", "teleop", "--params", str(params)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("control_probe", namespace="/ctl", context=context)
    arrivals, sent = [], {}  # command arrival times; leader value -> send time
    latencies = []

    def on_command(msg):
        now = time.monotonic()
        arrivals.append((now, msg.source))
        key = round(msg.positions[0], 6)
        if msg.source == JointCommand.SOURCE_OPERATOR and key in sent:
            latencies.append(now - sent.pop(key))

    node.create_subscription(JointCommand, "command", on_command, topic("command").qos)
    leader = node.create_publisher(JointState, "leader/joint_states", topic("joint_states").qos)
    measured = []
    node.create_subscription(JointState, "joint_states", lambda m: measured.append(list(m.position)), topic("joint_states").qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin_for(duration):
        end = time.monotonic() + duration
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)

    def call(client, request):
        if not client.wait_for_service(timeout_sec=60):
            raise RuntimeError(f"no {client.srv_name} service: the graph did not come up")
        future = client.call_async(request)
        while not future.done():
            executor.spin_once(timeout_sec=0.05)
        return future.result()

    call(node.create_client(StartEpisode, "start_episode"), StartEpisode.Request(task="insertion", instruction="pack the phone"))
    spin_for(5.0)  # the policy's first chunks
    start = time.monotonic()
    spin_for(seconds)
    policy_arrivals = [t for t, s in arrivals if start <= t and s == JointCommand.SOURCE_POLICY]

    # Operator latency: take over with the leader arm, then move one joint by 1 mrad per
    # 50 Hz sample from the measured pose (well inside the mux's velocity limit, so every
    # sample's value reaches `command` unchanged and identifies it).
    toggle = node.create_client(Trigger, "teleop/toggle")
    while "taking over" not in call(toggle, Trigger.Request()).message:
        spin_for(0.2)
    base = np.array(measured[-1], dtype=float)
    for k in range(int(seconds * 50)):
        positions = base.copy()
        positions[0] = round(base[0] + 0.001 * (k + 1), 6)
        sent[positions[0]] = time.monotonic()
        leader.publish(JointState(position=positions.tolist()))
        spin_for(0.02)
    spin_for(0.5)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    graph.terminate()
    graph.wait()

    gaps = np.diff(policy_arrivals)
    missed = int(np.sum(np.maximum(np.round(gaps / 0.02) - 1, 0)))
    return {
        "commands": len(policy_arrivals), "jitter_median_ms": float(np.median(np.abs(gaps - 0.02)) * 1e3),
        "jitter_p99_ms": float(np.percentile(np.abs(gaps - 0.02), 99) * 1e3), "missed": missed,
        "expected": int(round(seconds * 50)), "latency_median_ms": float(np.median(latencies) * 1e3) if latencies else float("nan"),
        "latency_p99_ms": float(np.percentile(latencies, 99) * 1e3) if latencies else float("nan"), "latency_samples": len(latencies),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=DOMAIN)
    with tempfile.TemporaryDirectory() as folder:
        model = checkpoint(Path(folder))
        results = [one_run(model, Path(folder), args.seconds, run) for run in range(args.runs)]
    for k, r in enumerate(results):
        print(f"run {k}: {r['commands']} policy commands in {r['expected'] / 50:.0f} s, missed ticks {r['missed']} "
              f"({r['missed'] / r['expected']:.1%}), jitter median {r['jitter_median_ms']:.2f} ms p99 {r['jitter_p99_ms']:.2f} ms; "
              f"operator -> command latency median {r['latency_median_ms']:.2f} ms p99 {r['latency_p99_ms']:.2f} ms "
              f"({r['latency_samples']} samples)")
    print(f"median over runs: missed {statistics.median(r['missed'] / r['expected'] for r in results):.1%}, "
          f"jitter p99 {statistics.median(r['jitter_p99_ms'] for r in results):.2f} ms, "
          f"latency p99 {statistics.median(r['latency_p99_ms'] for r in results):.2f} ms")


if __name__ == "__main__":
    main()
