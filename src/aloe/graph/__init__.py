"""The ROS graph as data and as processes: the topic and service contract with its QoS
(`topics`), node parameters and their checks (`params`), the bringup description
(`bringup`, read by `aloe bringup` and launch/bringup.launch.py alike), the process runner
(`runner`) and the graph monitor (`monitor`). Imports no other aloe layer."""
