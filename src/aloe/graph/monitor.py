"""Watches a running aloe graph from inside `aloe bringup`: who is there and what flows.

Subscriptions are raw (serialized bytes), so counting camera images costs no decoding.
"""
import threading
import time
from collections import Counter

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from aloe.graph.topics import CONTRACT, resolve

# Services every rclpy node offers; the summary lists only the graph's own.
STANDARD_SERVICES = (
    "describe_parameters",
    "get_parameter_types",
    "get_parameters",
    "get_type_description",
    "list_parameters",
    "set_parameters",
    "set_parameters_atomically",
)


class GraphMonitor:
    def __init__(self, namespace: str):
        self.namespace = "/" + namespace.strip("/")
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("aloe_bringup_monitor", namespace="/_aloe_bringup", context=self.context)
        self.counts = Counter()
        self.first_seen, self.last_seen = {}, {}
        for topic in CONTRACT:
            name = resolve(self.namespace, topic.name)
            self.node.create_subscription(
                topic.msg_type, name, lambda _msg, n=name: self._count(n), topic.qos, raw=True
            )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self._spin, daemon=True)
        self.spinner.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # the context shut down under us: we are done
                if self.context.ok():
                    raise
                return

    def _count(self, name: str) -> None:
        now = time.monotonic()
        self.counts[name] += 1
        self.first_seen.setdefault(name, now)
        self.last_seen[name] = now

    def nodes_in_namespace(self, settle_s: float = 5.0) -> list:
        """Names of nodes already in our namespace: the first found within `settle_s` of
        discovery, or none after it. With both CPU cores busy, 1.5 s once missed a node
        that was there (CI beside a training run), and 3 s did on a machine of half the
        speed (CI, 2026-12-01)."""
        deadline = time.monotonic() + settle_s
        while True:
            found = sorted(name for name, ns in self.node.get_node_names_and_namespaces() if ns == self.namespace)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.1)

    def snapshot(self, expected_services=(), timeout_s: float = 5.0) -> dict:
        """Topics with a publisher in the namespace, and the services offered there.

        Endpoint discovery can lag a node's start by a moment, so this waits up to
        `timeout_s` for the services the running nodes are known to offer.
        """
        wanted = {f"{self.namespace}/{name}" for name in expected_services}
        deadline = time.monotonic() + timeout_s
        seen = self._graph()
        while not wanted <= set(seen["services"]) and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = self._graph()
        return seen

    def _graph(self) -> dict:
        prefix = self.namespace + "/"
        global_names = {topic.name for topic in CONTRACT if topic.name.startswith("/")}
        topics = {}
        for name, types in self.node.get_topic_names_and_types():
            if (name.startswith(prefix) or name in global_names) and self.node.count_publishers(name) > 0:
                topics[name] = types[0]
        services = sorted(
            name
            for name, _ in self.node.get_service_names_and_types()
            if name.startswith(prefix) and name.rsplit("/", 1)[-1] not in STANDARD_SERVICES
            and self.node.count_services(name) > 0  # offered, not merely called by a client
        )
        return {"topics": topics, "services": services}

    def rate(self, name: str) -> float:
        count = self.counts[name]
        if count < 2:
            return 0.0
        return (count - 1) / max(self.last_seen[name] - self.first_seen[name], 1e-9)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.spinner.join(timeout=1.0)
