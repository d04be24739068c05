"""`aloe play BAG`: republish a recorded episode on its original topics, since `ros2 bag
play` is not there for pip installs; with `--critic CKPT`, also the critic's Q of every
executed chunk, so the Q trajectory of a replayed episode shows live.

Messages go out as they were recorded (raw CDR, no decoding), paced by their log times
divided by `--rate` (0: as fast as possible), with `/clock` following the log time. The
executed chunk at step t is the H commands from t on, as the robot executed them; its Q
goes out on `critic/q_value` when the replay reaches step t, one every `--q-every` steps.
"""
import time
from pathlib import Path

import numpy as np

from aloe.learning.data import DataError


def q_trajectory(bag: Path, checkpoint: Path, typestore, every: int = 10):
    """[(step, log time ns, q dict)] of the executed chunks of a recorded episode, the
    critic's version, and the episode as decoded for it."""
    from aloe.data.bag_dataset import read_episode
    from aloe.learning.policy import Policy

    policy = Policy.load(checkpoint)
    if not policy.has_critic:
        raise DataError(f"{checkpoint} ({policy.checkpoint.algo}) has no critic to evaluate chunks with")
    episode = read_episode(bag, typestore, tuple(policy.config.model.image_size), tuple(policy.config.model.head_crop))
    horizon = policy.config.model.horizon
    times = state_times(bag, typestore)
    values = []
    for step in range(0, len(episode), every):
        chunk = episode.actions[np.minimum(np.arange(step, step + horizon), len(episode) - 1)]
        images = episode.images[episode.image_index(step)] if episode.images is not None else None
        q = policy.q_values(episode.joints[step], images, episode.instruction, chunk)
        values.append((step, times[min(step + len(times) - len(episode), len(times) - 1)], q))
    return values, policy.version, episode


def state_times(bag: Path, typestore) -> list:
    """Log times of the recorded joint states (one per control step)."""
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic.endswith("/joint_states")]
        return [log_time for _, log_time, _ in reader.messages(connections=connections)]


def wait_for_subscribers(node, publishers, delay_s: float, timeout_s: float = 5.0) -> None:
    """`delay_s` for discovery to announce who is there, then until every subscriber the
    graph knows of has matched our publishers (or timeout), so that the first messages of
    the episode are not lost to discovery."""
    import rclpy

    from aloe.graph.readiness import unmatched

    time.sleep(delay_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not unmatched(node, [p.topic_name for p in publishers]):
            return
        rclpy.spin_once(node, timeout_sec=0.05)


def play(bag: Path, rate: float = 1.0, critic=None, q_every: int = 10, delay_s: float = 1.0, say=print) -> int:
    """Republish `bag`; returns the number of messages sent."""
    import rclpy
    from aloe_msgs.msg import QValue
    from rclpy.duration import Duration
    from rclpy.node import Node
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError
    from rosgraph_msgs.msg import Clock

    from aloe.data.bag_dataset import bag_metadata
    from aloe.data.recording import aloe_typestore
    from aloe.graph.topics import BY_NAME, message_class, topic

    bag = Path(bag)
    meta = bag_metadata(bag)
    store = aloe_typestore()
    q_values, version = ([], "")
    if critic:
        q_values, version, _ = q_trajectory(bag, Path(critic), store, q_every)
    rclpy.init()
    node = Node("aloe_play")
    try:
        with Reader(bag) as reader:
            publishers = {}
            for connection in reader.connections:
                # The contract's QoS for the topic it was recorded from (/<namespace>/<name>).
                contract = next((t for name, t in BY_NAME.items() if connection.topic.endswith("/" + name.lstrip("/"))), None)
                qos = contract.writer_qos if contract else topic("joint_states").writer_qos
                publishers[connection.id] = node.create_publisher(message_class(connection.msgtype), connection.topic, qos)
            clock = node.create_publisher(Clock, "/clock", topic("/clock").writer_qos)
            q_topic = next((c.topic.rsplit("/", 1)[0] for c in reader.connections if c.topic.endswith("/joint_states")), "/aloe")
            q_publisher = node.create_publisher(QValue, f"{q_topic}/critic/q_value", topic("critic/q_value").writer_qos) if critic else None
            say(f"playing {bag.name} ({meta.get('task', '?')}, {meta.get('outcome', '?')}): {reader.message_count} messages"
                + (f", Q of {len(q_values)} chunks from {version}" if critic else ""))
            wait_for_subscribers(node, [*publishers.values(), clock, *([q_publisher] if q_publisher else [])], delay_s)
            start_wall, start_log, sent, pending_q = time.monotonic(), None, 0, list(q_values)
            for connection, log_time, raw in reader.messages():
                start_log = log_time if start_log is None else start_log
                if rate > 0:
                    delay = (log_time - start_log) / 1e9 / rate - (time.monotonic() - start_wall)
                    if delay > 0:
                        time.sleep(delay)
                while pending_q and pending_q[0][1] <= log_time:
                    step, stamp, q = pending_q.pop(0)
                    msg = QValue(chunk_id=step, pessimistic=q["pessimistic"], mean=q["mean"], std=q["std"],
                                 members=[float(m) for m in q["members"]], policy_version=version)
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                    q_publisher.publish(msg)
                clock_msg = Clock()
                clock_msg.clock.sec, clock_msg.clock.nanosec = divmod(log_time, 1_000_000_000)
                clock.publish(clock_msg)
                publishers[connection.id].publish(bytes(raw))
                sent += 1
            # Reliable subscribers get the tail of the episode before we go.
            for publisher in [*publishers.values(), *([q_publisher] if q_publisher else [])]:
                publisher.wait_for_all_acked(Duration(seconds=2))
    except ReaderError as error:
        raise DataError(f"{bag}: cannot read ({error})") from None
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    say(f"played {sent} messages")
    return sent
