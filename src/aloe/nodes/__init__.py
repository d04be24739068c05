"""The ROS 2 nodes (`ros2 run aloe <node>`), one thin class per file over the layers below;
`entry` holds what they share (checked parameters, spinning, shutdown).
May import aloe.control, aloe.graph, aloe.sim, aloe.learning and aloe.data."""
