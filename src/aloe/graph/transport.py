"""The middleware profile every aloe process loads before it joins the graph.

Fast DDS's default shared-memory segment (512 KB per process) holds two of the sim's
320x240 RGB images, and the cameras send three at once. While the segment was full, the
sim's other samples were dropped too and repaired only when a later one got through: joint
states reached the mux, the recorder and the policy up to 200 ms late, in bursts of ~10.
With an 8 MB segment they come one by one again (`benchmarks/joint_state_delivery.py`,
figures in docs/results.md). Every aloe process loads it, not only the image publishers:
the sim alone under it, beside processes under the defaults, stalled the lockstep
recordings (3 of 5 runs of its test failed; 0 of 6 with all under it, 0 of 3 with all
under the defaults). The segment lives in /dev/shm (RAM) while the process runs: ~8 MB a
process, ~80 MB a graph.

A profile the user chose (`FASTDDS_DEFAULT_PROFILES_FILE`, its old name, or
`FASTDDS_BUILTIN_TRANSPORTS`) is kept. Other middlewares ignore the variable.
"""
import os
from pathlib import Path

FASTDDS_PROFILE = Path(__file__).with_name("fastdds.xml")
USER_CHOICES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS")


def use_aloe_transport(environ=os.environ) -> None:
    """Point Fast DDS at aloe's profile unless the user chose one; call before rclpy.init
    (Fast DDS reads it when the process's first participant is made). Child processes
    inherit it."""
    if not any(environ.get(name) for name in USER_CHOICES):
        environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
