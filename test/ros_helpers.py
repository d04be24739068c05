"""Small helpers for tests that talk over real DDS."""
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor


def spin_until(context, nodes, predicate, timeout_s=10.0):
    """Spin `nodes` until `predicate()` holds; returns whether it did."""
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if predicate():
                return True
            executor.spin_once(timeout_sec=0.05)
        return predicate()
    finally:
        executor.shutdown()


def call_service(context, node, client, request, timeout_s=10.0):
    """Call a service over DDS and return the response (or None on timeout)."""
    if not client.wait_for_service(timeout_sec=timeout_s):
        return None
    future = client.call_async(request)
    spin_until(context, [node], future.done, timeout_s)
    return future.result() if future.done() else None


def node(context, name, namespace="/"):
    return rclpy.create_node(name, namespace=namespace, context=context)
