"""Every aloe_msgs interface round-trips over real DDS, in one process and across two."""
import subprocess
import sys
from pathlib import Path

import pytest

from aloe.graph.topics import STREAM_QOS
from interface_samples import SERVICE_TYPES, expected_response, sample_messages, sample_requests
from ros_helpers import call_service, node, spin_until

HERE = Path(__file__).parent
MESSAGES = sorted(sample_messages())
SERVICES = sorted(SERVICE_TYPES)


@pytest.mark.parametrize("name", MESSAGES)
def test_message_round_trip_in_process(rclpy_context, name):
    sent = sample_messages()[name]
    pub_node, sub_node = node(rclpy_context, "pub"), node(rclpy_context, "sub")
    received = []
    sub_node.create_subscription(type(sent), f"rt/{name}", received.append, STREAM_QOS)
    publisher = pub_node.create_publisher(type(sent), f"rt/{name}", STREAM_QOS)
    pub_node.create_timer(0.05, lambda: publisher.publish(sent))
    assert spin_until(rclpy_context, [pub_node, sub_node], lambda: received)
    assert received[0] == sent
    assert received[0] is not sent


@pytest.mark.parametrize("name", SERVICES)
def test_service_round_trip_in_process(rclpy_context, name):
    from interface_samples import answer

    server, caller = node(rclpy_context, "server"), node(rclpy_context, "caller")
    srv_type = SERVICE_TYPES[name]
    server.create_service(srv_type, f"rt/{name}", lambda req, resp: answer(name, req, resp))
    client = caller.create_client(srv_type, f"rt/{name}")
    request = sample_requests()[name]
    # Spin the server while the caller waits for its answer.
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(request)
    assert spin_until(rclpy_context, [server, caller], future.done)
    assert future.result() == expected_response(name, request)


@pytest.fixture
def peer(ros_domain, request):
    """The peer script in a second process, in this test's DDS domain."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "interface_peer.py"), request.param],
        cwd=HERE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    yield process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a loaded machine: SIGTERM's clean shutdown came late
        process.kill()
        process.wait()


@pytest.mark.parametrize("peer", ["publish"], indirect=True)
def test_messages_cross_process(peer, rclpy_context):
    samples = sample_messages()
    listener = node(rclpy_context, "listener")
    received = {}
    for name, msg in samples.items():
        listener.create_subscription(type(msg), f"peer/{name}", lambda m, n=name: received.setdefault(n, m), STREAM_QOS)
    assert spin_until(rclpy_context, [listener], lambda: len(received) == len(samples), timeout_s=20)
    assert received == samples


@pytest.mark.parametrize("peer", ["serve"], indirect=True)
def test_services_cross_process(peer, rclpy_context):
    caller = node(rclpy_context, "caller")
    for name, request in sample_requests().items():
        client = caller.create_client(SERVICE_TYPES[name], f"peer/{name}")
        response = call_service(rclpy_context, caller, client, request, timeout_s=20)
        assert response == expected_response(name, request), name
