"""aloe: post-train a VLA policy on your own robot with action-level off-policy evaluation.

Layers, bottom first; each imports only the layers on the lines above its own, and the four
on the first line import none of each other (test/test_layers.py checks this):
  aloe.control, aloe.graph, aloe.sim, aloe.learning   pure layers, none imports another
  aloe.data                                          bags, images, replay, demonstrations
  aloe.experiment                                    evaluation, protocol, report
  aloe.nodes                                         the ROS 2 nodes
  aloe.cli                                           the `aloe` command line, on top
"""

__version__ = "0.1.0"
