"""How every node spins and stops (aloe.nodes.entry), in a process of its own."""
import signal
import subprocess
import sys

# A Ctrl-C lands while spinning is being set up: rclpy's signal handling shuts the context
# down just after something registered for its shutdown (as rclpy's global executor does the
# moment it is made; a launcher's SIGINT right after the ready line hits this window). The
# node must stop cleanly, with exit 0, not with "'NoneType' object has no attribute 'add_node'".
SIGINT_WHILE_SETTING_UP = """
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from aloe.nodes.entry import spin

register = Context.on_shutdown

def register_then_interrupted(self, callback):
    register(self, callback)
    self.try_shutdown()

rclpy.init()
node = Node("early_stop")
Context.on_shutdown = register_then_interrupted
spin(node, on_start=lambda: print("ready"))
print("stopped cleanly")
"""


def test_a_ctrl_c_while_spinning_is_set_up_ends_the_node_cleanly(ros_domain):
    result = subprocess.run([sys.executable, "-c", SIGINT_WHILE_SETTING_UP], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "stopped cleanly" in result.stdout, result.stderr


# A node whose teardown never returns after a Ctrl-C, as Fast DDS's writer deletion once hung
# the sim in CI: it must end itself after the limit, saying why and where it hung, instead
# of waiting for the runner's SIGKILL.
TEARDOWN_HANGS = """
import threading
import rclpy
from rclpy.node import Node
from aloe.nodes.entry import spin

class HangsInTeardown(Node):
    def on_stop(self):
        print("on_stop ran", flush=True)

    def destroy_node(self):
        threading.Event().wait()  # never returns

rclpy.init()
node = HangsInTeardown("hangs_in_teardown")
spin(node, on_start=lambda: print("ready", flush=True), teardown_limit_s=1.0)
print("not reached")
"""


def interrupted_after_ready(script: str) -> tuple:
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def test_a_node_whose_teardown_hangs_exits_by_itself_and_says_where(ros_domain):
    code, stdout, stderr = interrupted_after_ready(TEARDOWN_HANGS)
    assert code == 0, stderr
    assert "not reached" not in stdout
    assert "[hangs_in_teardown] shutdown has not returned after 1 s" in stderr
    assert "in destroy_node" in stderr, stderr  # the stacks name where it hung
    assert "on_stop ran" in stdout  # the node's own files were closed before the hang


def test_a_node_whose_teardown_returns_says_nothing_of_it(ros_domain):
    code, stdout, stderr = interrupted_after_ready(TEARDOWN_HANGS.replace("threading.Event().wait()  # never returns",
                                                                          "super().destroy_node()"))
    assert code == 0 and "not reached" in stdout, stderr
    assert "shutdown has not returned" not in stderr


# A Ctrl-C that lands while rclpy deserialises a message comes out of pybind11 as a TypeError
# caused by the KeyboardInterrupt (the recorder exited 1 so in CI). With the context down it
# is the interrupt: exit 0. The same TypeError with the context still up is a real failure.
INTERRUPT_IN_DESERIALISATION = """
import rclpy
from rclpy.node import Node
from aloe.nodes.entry import spin

SHUT_DOWN = {shut_down}

class Deserialising(Node):
    def __init__(self):
        super().__init__("deserialising")
        self.create_timer(0.01, self.on_message)

    def on_message(self):
        if SHUT_DOWN:
            self.context.try_shutdown()
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise TypeError("Unable to convert function return value to a Python type!") from interrupt

rclpy.init()
spin(Deserialising())
print("stopped cleanly")
"""


def test_a_ctrl_c_inside_deserialisation_ends_the_node_cleanly(ros_domain):
    result = subprocess.run([sys.executable, "-c", INTERRUPT_IN_DESERIALISATION.format(shut_down=True)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "stopped cleanly" in result.stdout, result.stderr


def test_a_type_error_with_the_context_up_is_a_failure(ros_domain):
    result = subprocess.run([sys.executable, "-c", INTERRUPT_IN_DESERIALISATION.format(shut_down=False)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "stopped cleanly" not in result.stdout
    assert "TypeError: Unable to convert" in result.stderr
