"""Bring up the aloe graph with a ROS 2 distribution: `ros2 launch aloe bringup.launch.py`.

The nodes and parameter files come from config/bringup.yaml, the same description that
`aloe bringup` (the launcher for pip installs) reads, so the two start the same graph.

Arguments:
  namespace:=aloe          robot namespace
  params_file:=FILE        an extra ROS 2 parameter file, applied after config/aloe.yaml
  with:=trainer            optional nodes to start too (comma-separated)
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from aloe.graph.bringup import check_parameters, load_graph, with_optional


def nodes_for(context):
    wanted = [name for name in LaunchConfiguration("with").perform(context).split(",") if name]
    graph = with_optional(load_graph(), wanted)
    namespace = LaunchConfiguration("namespace").perform(context)
    extra = LaunchConfiguration("params_file").perform(context)
    parameter_files = [*graph.parameter_files, *([extra] if extra else [])]
    # Fail before starting anything on a malformed file or a misspelt parameter name.
    check_parameters(graph, namespace, parameter_files)
    return [
        Node(
            package="aloe",
            executable=node.executable,
            name=node.name,
            namespace=namespace,
            parameters=parameter_files,
            output="screen",
            emulate_tty=True,
            # A node marked `ends_graph` (the episode runner) ends the launch when done.
            on_exit=Shutdown(reason=f"{node.name} finished") if node.ends_graph else None,
        )
        for node in graph.nodes
    ]


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value=load_graph().namespace, description="robot namespace"),
            DeclareLaunchArgument("params_file", default_value="", description="extra ROS 2 parameter file"),
            DeclareLaunchArgument("with", default_value="", description="optional nodes to start too, e.g. trainer"),
            OpaqueFunction(function=nodes_for),
        ]
    )
