"""How every node spins and stops (aloe.nodes.entry), in a process of its own."""
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
