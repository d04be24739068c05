"""The embedded runner's stop, on real processes: a node that ignores SIGINT and SIGTERM."""
import io
import signal
import sys
import time

from aloe.graph.runner import ProcessSpec, Runner

STUCK_NODE = """
import signal, time
from aloe.nodes.entry import dump_stacks_on_request
dump_stacks_on_request()
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)

def joins_a_thread_that_never_ends():
    print("ready", flush=True)
    while True:
        time.sleep(0.05)

joins_a_thread_that_never_ends()
"""


def test_a_node_that_ignores_sigint_and_sigterm_prints_its_stacks_then_is_killed():
    out = io.StringIO()
    runner = Runner([ProcessSpec("stuck", (sys.executable, "-c", STUCK_NODE))], out=out, stop_timeout_s=0.5)
    runner.start()
    deadline = time.monotonic() + 30
    while "ready" not in runner.tails["stuck"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ready" in runner.tails["stuck"], out.getvalue()
    codes = runner.stop()
    assert codes == {"stuck": -signal.SIGKILL}
    log = out.getvalue()
    assert "did not stop: the stacks of its threads follow" in log
    # faulthandler's dump names the function the node was stuck in, before the kill.
    assert "in joins_a_thread_that_never_ends" in log, log
    assert log.index("in joins_a_thread_that_never_ends") < log.index("sending SIGKILL")
