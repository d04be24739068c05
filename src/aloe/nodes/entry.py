"""What every aloe node shares: checked parameter declaration and a clean `main()`."""
import faulthandler
import os
import sys
import threading
import time
from typing import Optional

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from aloe.graph.params import ParameterFileError, unknown_parameters
from aloe.graph.runner import STACK_DUMP_SIGNAL
from aloe.graph.transport import use_aloe_transport


class NodeConfigError(ValueError):
    """A node cannot start with its configuration; the message is one line for the user."""


class WorkDone(Exception):
    """Raised in a node's callback to end its spin, as a Ctrl-C would: the node is then torn
    down by `spin`, under its time limit (a context shut down from a callback would tear it
    down inside the callback, with no limit)."""


def declare_checked(node: Node, defaults: dict) -> None:
    """Declare `defaults` on `node` and refuse parameters it was given but does not know.

    rclpy would silently ignore them, so a typo in a parameter file would run with defaults.
    """
    for name, default in defaults.items():
        node.declare_parameter(name, default)
    given = node._parameter_overrides  # values from --params-file and -p, already matched to this node
    unknown = unknown_parameters(given, defaults)
    if unknown:
        raise ParameterFileError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)} "
            f"for node '{node.get_name()}' (known: {', '.join(sorted(defaults))})"
        )


def dump_stacks_on_request() -> None:
    """Print every thread's stack to stderr on STACK_DUMP_SIGNAL: what the runner sends a
    node that ignored SIGINT and SIGTERM, before killing it (the policy node once hung so)."""
    faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True)


def run(node_class) -> int:
    """Spin one node until Ctrl-C or shutdown; configuration errors are one line, exit 2."""
    dump_stacks_on_request()
    use_aloe_transport()
    rclpy.init(args=sys.argv)
    try:
        node = node_class()
    except (ParameterFileError, NodeConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    # The ready line is logged inside spin's Ctrl-C handling: a SIGINT that comes the moment
    # the line is out (a launcher stopping the node at once; seen in CI) ends it cleanly too.
    spin(node, on_start=lambda: node.get_logger().info("ready"))
    return 0


def stamp_seconds(header) -> Optional[float]:
    """A message header's stamp in seconds on the node's clock; None when it was left unset (0)."""
    stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
    return stamp if stamp > 0 else None


def publish_sample(node: Node, publisher, msg) -> None:
    """Publish one sample of a stream. When a reliable reader falls far behind, Fast DDS
    refuses the write once its resource limits are hit (rmw "cannot publish data") instead
    of blocking on; one stream sample is then lost, with a throttled warning, rather than
    the node (seen on the sim running as fast as it can, 77 episodes in)."""
    try:
        publisher.publish(msg)
    except RCLError as error:
        if not rclpy.ok():
            raise
        reason = str(error).splitlines()[0].split(", at ")[0]
        node.get_logger().warning(f"{publisher.topic_name}: a sample was lost ({reason})", throttle_duration_sec=1.0)


def _shut_down_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while rclpy.ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# A node whose middleware teardown has not returned after this long exits without it. Fast
# DDS can hang deleting a writer (eProsima/Fast-DDS #6193, #4076; once in CI the sim hung in
# destroy_publisher after its episodes, and was SIGKILLed 10 s later). Every node's own
# cleanup (a bag's close) takes well under a second; the runner and `ros2 launch` send
# SIGTERM after 5 s and SIGKILL after 10 s, so the node ends itself between the two.
TEARDOWN_LIMIT_S = 8.0


def _exit_if_teardown_hangs(finished: threading.Event, name: str, limit_s: float) -> None:
    if finished.wait(limit_s):
        return
    print(f"[{name}] shutdown has not returned after {limit_s:g} s (the middleware's teardown hangs, "
          "threads' stacks follow): exiting without it; peers drop this node's endpoints when its lease ends",
          file=sys.stderr, flush=True)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(0)


def spin(node: Node, executor=None, on_start=None, teardown_limit_s: float = TEARDOWN_LIMIT_S) -> None:
    """Spin until Ctrl-C or an external shutdown, then destroy the node and shut rclpy down.
    `on_start` runs first, under the same Ctrl-C handling. A node's `on_stop()`, if it has
    one, runs before any middleware teardown and outside its time limit: files a node must
    leave whole (the recorder's bag) are closed even when the teardown then hangs, or is cut
    short, on a loaded machine."""
    name = node.get_name()  # now: a context shut down takes the node's handle with it
    # An executor of our own, made before `on_start`: rclpy's global one, created on a context
    # that a Ctrl-C right after the ready line has already shut down, comes back as None
    # (seen in CI as "'NoneType' object has no attribute 'add_node'").
    executor = executor or SingleThreadedExecutor()
    try:
        if on_start is not None:
            on_start()
        rclpy.spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException, WorkDone):
        pass
    except (RuntimeError, TypeError):
        # Ctrl-C shuts the context down, then raises KeyboardInterrupt. Landing in a
        # finaliser (which swallows it), it leaves the next wait an RCLError on the dead
        # context; landing inside rclpy's C++ message conversion, pybind11 reports it as a
        # RuntimeError, or as a TypeError caused by the interrupt when it lands while a
        # message is deserialised (the recorder, seen in CI). Each is the interrupt, not a
        # failure, once the context is down; rclpy's signal handling may shut it down a
        # moment after the error (seen in CI).
        if not _shut_down_within(1.0):
            raise
    finally:
        if hasattr(node, "on_stop"):
            node.on_stop()
        finished = threading.Event()
        watchdog = threading.Thread(target=_exit_if_teardown_hangs, args=(finished, name, teardown_limit_s), daemon=True)
        watchdog.start()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        finished.set()
