"""Peer process for the cross-process interface tests.

    python interface_peer.py publish   # publishes every sample message on peer/<Type>, 20 Hz
    python interface_peer.py serve     # serves every service on peer/<Type>
Runs until interrupted.
"""
import sys

import rclpy

from aloe.graph.topics import STREAM_QOS
from aloe.nodes.entry import spin
from interface_samples import SERVICE_TYPES, answer, sample_messages


def main(mode):
    rclpy.init()
    node = rclpy.create_node("interface_peer")
    if mode == "publish":
        samples = sample_messages()
        publishers = {name: node.create_publisher(type(msg), f"peer/{name}", STREAM_QOS) for name, msg in samples.items()}
        node.create_timer(0.05, lambda: [publishers[n].publish(m) for n, m in samples.items()])
    else:
        for name, srv_type in SERVICE_TYPES.items():
            node.create_service(srv_type, f"peer/{name}", lambda req, resp, n=name: answer(n, req, resp))
    print("ready", flush=True)
    spin(node)


if __name__ == "__main__":
    main(sys.argv[1])
