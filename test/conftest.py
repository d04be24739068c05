"""Every DDS graph a test starts stays on this machine and in a domain of its own."""
import itertools
import os

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Spread parallel or leftover test runs over domains 10..89; each test then takes the next.
_domains = itertools.count(10 + (os.getpid() * 7) % 60)


@pytest.fixture
def ros_domain(monkeypatch):
    """A fresh ROS_DOMAIN_ID for this test and the processes it starts."""
    domain = str(next(_domains) % 80 + 10)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    return domain


@pytest.fixture
def rclpy_context(ros_domain):
    """An initialised rclpy context in this test's domain, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)
