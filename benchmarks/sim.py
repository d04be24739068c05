"""Simulator figures: physics and render speed, the sim node's real-time factor over DDS,
and the scripted operator's success rate from clean starts, from takeovers, and with its
commands delayed and bunched as they are in a loaded graph.

    .venv/bin/python benchmarks/sim.py            # 50 seeds per task and variant (~10 min on 2 cores)
    .venv/bin/python benchmarks/sim.py --seeds 10  # a quicker look

Speeds are medians over several runs (these machines are shared and noisy). The sim node
runs in its own ROS domain with discovery kept on this machine.
"""
import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool

import numpy as np

from aloe.sim.env import SimRobot
from aloe.sim.operator import make_operator
from aloe.sim.scene import HOME
from aloe.sim.tasks import TASKS

DEFAULT_IMAGE = (240, 320)


def physics_rate(runs: int = 5, steps: int = 1000) -> tuple:
    """Control steps/s (each is 10 physics steps of 2 ms) holding the home pose."""
    robot = SimRobot(DEFAULT_IMAGE)
    rates = []
    for run in range(runs):
        robot.reset("sorting", run)
        start = time.perf_counter()
        for _ in range(steps):
            robot.step(HOME)
        rates.append(steps / (time.perf_counter() - start))
    robot.close()
    return statistics.median(rates), min(rates), max(rates)


def render_rate(runs: int = 5, sets: int = 20) -> tuple:
    """Three-camera image sets per second at the default image size."""
    robot = SimRobot(DEFAULT_IMAGE)
    robot.reset("sorting", 0)
    robot.render()  # the first render creates the GL context
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(sets):
            robot.render()
        rates.append(sets / (time.perf_counter() - start))
    robot.close()
    return statistics.median(rates), min(rates), max(rates)


def node_real_time_factor(camera_rate_hz: float, real_time_factor: float, seconds: float = 12.0, domain: str = "71") -> float:
    """Sim seconds per wall second of the sim_robot node (cameras on), seen through /clock."""
    import rclpy
    from rclpy.context import Context
    from rosgraph_msgs.msg import Clock

    from aloe.graph.topics import topic

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=domain)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as params:
        params.write(
            f"/**/sim_robot:\n  ros__parameters:\n    camera_rate_hz: {camera_rate_hz}\n"
            f"    real_time_factor: {real_time_factor}\n    scripted_operator: false\n"
        )
    graph = subprocess.Popen(
        [sys.executable, "-m", "aloe.cli", "bringup", "--only", "sim_robot", "--namespace", "bench", "--params", params.name,
         "--duration", str(seconds + 15)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=domain)
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("rtf_probe", context=context)
    samples = []  # (wall, sim)
    node.create_subscription(Clock, "/clock", lambda m: samples.append((time.monotonic(), m.clock.sec + m.clock.nanosec * 1e-9)), topic("/clock").qos)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = time.monotonic() + 30
    while not samples and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    warmup = time.monotonic() + 2.0  # past start-up and the first renders
    while time.monotonic() < warmup + seconds:
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    graph.terminate()
    graph.wait()
    os.unlink(params.name)
    window = [s for s in samples if s[0] >= warmup]
    if len(window) < 2:
        raise RuntimeError("the sim node published no /clock")
    return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])


def run_to_end(robot, act) -> bool:
    while True:
        robot.step(act())
        status = robot.status()
        if status.success or status.failure:
            return status.success


def clean_episode(job) -> bool:
    task, variant, seed = job
    robot = SimRobot((48, 64))
    robot.reset(task, seed, variant)
    success = run_to_end(robot, make_operator(robot).act)
    robot.close()
    return success


def takeover_episode(job):
    """A noisy policy (the expert's commands plus a drifting error and random gripper flips)
    acts for 1-6 s; then a fresh operator takes over from whatever state it left.

    Returns None when the noisy policy already made the task impossible (an object fell off
    the table) or succeeded by itself, else whether the takeover succeeded."""
    task, seed = job
    rng = np.random.default_rng([seed, 99])
    robot = SimRobot((48, 64))
    robot.reset(task, seed, "train")
    expert = make_operator(robot)
    drift = np.zeros(14)
    for _ in range(int(rng.uniform(1.0, 6.0) / 0.02)):
        drift = np.clip(drift + rng.normal(0, 0.03, 14), -0.5, 0.5)
        command = expert.act() + drift
        if rng.random() < 0.02:
            command[[6, 13]] = 1.0 - command[[6, 13]]
        robot.step(command)
        status = robot.status()
        if status.failure or status.success:
            robot.close()
            return None
    success = run_to_end(robot, make_operator(robot).act)
    robot.close()
    return success


def delayed_episode(job) -> bool:
    """The expert with its commands delayed as in a loaded graph: each arrives 0-1 ticks
    late, in order, and with probability 0.5 % per tick the stream stalls for 3-15 ticks;
    each tick the robot executes the newest command that has arrived."""
    task, seed = job
    rng = np.random.default_rng([seed, 7])
    robot = SimRobot((48, 64))
    robot.reset(task, seed, "train")
    operator = make_operator(robot)
    in_flight, last_arrival, stalled_until, command = [], 0, 0, robot.last_command
    for tick in itertools.count():
        if rng.random() < 0.005:
            stalled_until = max(stalled_until, tick + int(rng.integers(3, 16)))
        last_arrival = max(tick + int(rng.integers(0, 2)), stalled_until, last_arrival)
        in_flight.append((last_arrival, operator.act()))
        arrived = [c for t, c in in_flight if t <= tick]
        if arrived:
            command = arrived[-1]
            in_flight = [(t, c) for t, c in in_flight if t > tick]
        robot.step(command)
        status = robot.status()
        if status.success or status.failure:
            robot.close()
            return status.success


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50, help="episodes per task and variant (default 50)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes for the operator episodes")
    args = parser.parse_args()

    rate, low, high = physics_rate()
    print(f"physics: {rate:,.0f} control steps/s = {rate * 10:,.0f} physics steps/s (2 ms), range {low * 10:,.0f}-{high * 10:,.0f}")
    rate, low, high = render_rate()
    print(f"render: {rate:.1f} three-camera sets/s at {DEFAULT_IMAGE[1]}x{DEFAULT_IMAGE[0]} (range {low:.1f}-{high:.1f})")
    for camera_rate, factor in ((5.0, 0.0), (15.0, 0.0), (5.0, 1.0)):
        rtfs = [node_real_time_factor(camera_rate, factor, domain=str(71 + k)) for k in range(3)]
        pace = "as fast as it can" if factor == 0 else f"paced at {factor:g}x"
        print(f"sim node, cameras at {camera_rate:g} Hz, {pace}: real-time factor {statistics.median(rtfs):.2f} (runs {', '.join(f'{r:.2f}' for r in rtfs)})")

    with Pool(args.workers) as pool:
        for task in TASKS:
            for variant in ("train", "unseen"):
                results = pool.map(clean_episode, [(task, variant, seed) for seed in range(args.seeds)])
                print(f"operator {task:9s} {variant:6s}: {sum(results)}/{len(results)} = {np.mean(results):.0%}")
        for task in TASKS:
            results = pool.map(takeover_episode, [(task, seed) for seed in range(args.seeds)])
            valid = [r for r in results if r is not None]
            print(
                f"takeover {task:9s}: {sum(valid)}/{len(valid)} = {np.mean(valid):.0%} "
                f"({len(results) - len(valid)} of {len(results)} noisy runs had already failed or succeeded)"
            )
        for task in TASKS:
            results = pool.map(delayed_episode, [(task, seed) for seed in range(args.seeds)])
            print(f"operator {task:9s} with commands delayed 0-1 ticks and stalls of 3-15: {sum(results)}/{len(results)} = {np.mean(results):.0%}")


if __name__ == "__main__":
    main()
