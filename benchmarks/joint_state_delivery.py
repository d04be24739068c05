"""How promptly the sim's joint states reach another process while its cameras stream,
under aloe's Fast DDS profile (aloe.graph.transport) and under Fast DDS's defaults.

    .venv/bin/python benchmarks/joint_state_delivery.py            # 3 runs of 12 s each, 2 CPU hogs
    .venv/bin/python benchmarks/joint_state_delivery.py --runs 1 --seconds 8 --hogs 0

Per run: sim_robot at real time (three 320x240 cameras at 5 Hz, no scripted operator), a
process reading the three cameras (as the recorder and the policy do), and a process
reading `joint_states` that notes when each arrives. Printed: the share of joint states
that arrive less than 1 ms after the one before (a burst: they were held back and
delivered together; 0 when each comes on its own tick) and the longest gap between two,
median over the runs, beside `--hogs` busy processes (`yes`): on an idle machine both
transports deliver one by one; the bursts come when readers are slow to take their
samples, as on a loaded robot computer or a laptop training beside the graph. In a domain
of its own, discovery on this machine.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from aloe.graph.transport import FASTDDS_PROFILE, USER_CHOICES

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "79"
NAMESPACE = "/delivery"

READ_CAMERAS = """
import sys, time, rclpy
from sensor_msgs.msg import Image
from aloe.graph.topics import CAMERAS, camera_topic, topic
rclpy.init()
node = rclpy.create_node("camera_reader", namespace=sys.argv[1])
for camera in CAMERAS:
    node.create_subscription(Image, camera_topic(camera), lambda msg: None, topic(camera_topic(camera)).qos)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
"""

READ_JOINT_STATES = """
import sys, time, rclpy
from sensor_msgs.msg import JointState
from aloe.graph.topics import topic
rclpy.init()
node = rclpy.create_node("joint_state_reader", namespace=sys.argv[1])
arrivals = []
node.create_subscription(JointState, "joint_states", lambda msg: arrivals.append(time.monotonic()), topic("joint_states").qos)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
print(" ".join(f"{t:.6f}" for t in arrivals))
"""


def one_run(env: dict, seconds: float) -> tuple:
    sim = subprocess.Popen(
        [sys.executable, "-m", "aloe.nodes.sim_robot", "--ros-args", "-r", f"__ns:={NAMESPACE}",
         "-p", "scripted_operator:=false", "-p", "real_time_factor:=1.0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(4)  # the sim's scene loads
        cameras = subprocess.Popen([sys.executable, "-c", READ_CAMERAS, NAMESPACE, str(seconds + 2)], env=env)
        states = subprocess.run([sys.executable, "-c", READ_JOINT_STATES, NAMESPACE, str(seconds)], env=env,
                                capture_output=True, text=True, timeout=seconds + 60)
        cameras.wait(timeout=60)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    arrivals = [float(t) for t in states.stdout.split()]
    if len(arrivals) < 10:
        raise SystemExit(f"only {len(arrivals)} joint states arrived: {states.stderr[-1000:]}")
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    return sum(g < 0.001 for g in gaps) / len(gaps), max(gaps) * 1e3, len(arrivals) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--hogs", type=int, default=2, help="busy processes beside the graph")
    args = parser.parse_args()
    base = dict(os.environ, ROS_DOMAIN_ID=DOMAIN, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                PYTHONPATH=f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}")
    for name in USER_CHOICES:
        base.pop(name, None)
    # Every process of a setup under the same transports, as in an aloe graph (the readers
    # here are plain rclpy: they are told; a user's choice of the defaults is kept by the sim).
    setups = {"aloe profile": dict(base, FASTDDS_DEFAULT_PROFILES_FILE=str(FASTDDS_PROFILE)),
              "Fast DDS defaults": dict(base, FASTDDS_BUILTIN_TRANSPORTS="DEFAULT")}
    print(f"{'transport':<20} {'in bursts':>10} {'longest gap':>12} {'states/s':>9}   "
          f"({args.runs} runs of {args.seconds:g} s, median, {args.hogs} CPU hogs)")
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(args.hogs)]
    try:
        for name, env in setups.items():
            runs = [one_run(env, args.seconds) for _ in range(args.runs)]
            share, gap, rate = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{name:<20} {share:>9.0%} {gap:>9.0f} ms {rate:>9.1f}", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
