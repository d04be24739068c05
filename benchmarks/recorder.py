"""Recorder figures: three 640x480 rgb8 cameras at 30 Hz plus joint states at 50 Hz into
one episode bag for 60 s; messages lost (published but not in the bag) and the recorder's
CPU use.

    .venv/bin/python benchmarks/recorder.py                # 60 s, 3 runs
    .venv/bin/python benchmarks/recorder.py --seconds 10 --runs 1

The recorder runs as its own process through `aloe bringup --only recorder`, in a ROS
domain of its own with discovery kept on this machine; this process publishes.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DOMAIN = "77"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(seconds: float, out: Path, run: int) -> dict:
    import rclpy
    from aloe_msgs.msg import EpisodeEvent
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState

    from aloe.graph.topics import CAMERAS, camera_topic, topic

    params = out / f"recorder-{run}.yaml"
    params.write_text(f"/**/recorder:\n  ros__parameters:\n    use_sim_time: false\n    out_dir: {out / f'run{run}'}\n")
    graph = subprocess.Popen(
        [sys.executable, "-m", "aloe.cli", "bringup", "--only", "recorder", "--namespace", "bench", "--params", str(params)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    pid = None
    for line in graph.stdout:
        match = re.search(r"started recorder \(pid (\d+)\)", line)
        pid = int(match.group(1)) if match else pid
        if "[recorder]" in line and "ready" in line:
            break
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_publisher", namespace="/bench", context=context)
    images = {c: node.create_publisher(Image, camera_topic(c), topic(camera_topic(c)).qos) for c in CAMERAS}
    states = node.create_publisher(JointState, "joint_states", topic("joint_states").qos)
    episode = node.create_publisher(EpisodeEvent, "episode", topic("episode").qos)
    pixels = np.random.default_rng(run).integers(0, 255, 640 * 480 * 3, dtype=np.uint8).tobytes()
    sent = {"images": 0, "joints": 0}

    def publish_images():
        for camera, publisher in images.items():
            msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=pixels)
            msg.header.stamp, msg.header.frame_id = node.get_clock().now().to_msg(), camera
            publisher.publish(msg)
            sent["images"] += 1

    def publish_joints():
        msg = JointState(position=[0.0] * 14)
        msg.header.stamp = node.get_clock().now().to_msg()
        states.publish(msg)
        sent["joints"] += 1

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    episode.publish(EpisodeEvent(episode_id="bench", kind=EpisodeEvent.START, task="bench"))
    deadline = time.monotonic() + 2.0  # the recorder opens the bag
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    node.create_timer(1 / 30, publish_images)
    node.create_timer(1 / 50, publish_joints)
    cpu_start, wall_start = cpu_seconds(pid), time.monotonic()
    while time.monotonic() < wall_start + seconds:
        executor.spin_once(timeout_sec=0.01)
    cpu = (cpu_seconds(pid) - cpu_start) / (time.monotonic() - wall_start)
    for timer in list(node.timers):
        node.destroy_timer(timer)
    deadline = time.monotonic() + 3.0  # what is in flight arrives
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    episode.publish(EpisodeEvent(episode_id="bench", kind=EpisodeEvent.SUCCESS, task="bench"))
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and not (out / f"run{run}" / "bench" / "metadata.yaml").exists():
        executor.spin_once(timeout_sec=0.05)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    graph.terminate()
    graph.wait()

    from rosbags.rosbag2 import Reader

    with Reader(out / f"run{run}" / "bench") as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    recorded_images = sum(n for t, n in counts.items() if t.endswith("image_raw"))
    return {
        "images lost": sent["images"] - recorded_images, "images sent": sent["images"],
        "joints lost": sent["joints"] - counts.get("/bench/joint_states", 0), "joints sent": sent["joints"],
        "cpu": cpu, "MB/s": recorded_images * 640 * 480 * 3 / seconds / 1e6,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=DOMAIN)
    with tempfile.TemporaryDirectory() as folder:
        results = [one_run(args.seconds, Path(folder), run) for run in range(args.runs)]
    for k, r in enumerate(results):
        print(f"run {k}: images lost {r['images lost']}/{r['images sent']}, joint states lost {r['joints lost']}/{r['joints sent']}, "
              f"recorder CPU {r['cpu']:.0%} of one core, {r['MB/s']:.0f} MB/s written")
    print(f"median: images lost {statistics.median(r['images lost'] for r in results)}, "
          f"joint states lost {statistics.median(r['joints lost'] for r in results)}, "
          f"recorder CPU {statistics.median(r['cpu'] for r in results):.0%} of one core")


if __name__ == "__main__":
    main()
