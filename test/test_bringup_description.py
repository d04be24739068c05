"""Both launchers start the same graph: the launch file's nodes equal the runner's processes.

The `launch` and `launch_ros` packages are not installable from PyPI, so the launch file
runs here against small recording stand-ins for the five launch classes it uses; every
aloe function it calls is the real one.
"""
import importlib.util
import sys
import types
from pathlib import Path

import pytest

from aloe.graph.bringup import GraphError, load_graph, node_executables, select_nodes, with_optional
from aloe.graph.runner import node_processes, ros_arguments

LAUNCH_FILE = Path(__file__).parents[1] / "launch" / "bringup.launch.py"


class LaunchContext:
    def __init__(self, arguments):
        self.arguments = arguments


def stand_in_launch_modules():
    launch, actions, substitutions = (types.ModuleType(n) for n in ("launch", "launch.actions", "launch.substitutions"))
    launch_ros, ros_actions = types.ModuleType("launch_ros"), types.ModuleType("launch_ros.actions")

    class LaunchDescription(list):
        pass

    class DeclareLaunchArgument:
        def __init__(self, name, default_value="", description=""):
            self.name, self.default_value = name, default_value

    class OpaqueFunction:
        def __init__(self, function):
            self.function = function

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context.arguments[self.name]

    class Shutdown:
        def __init__(self, reason=""):
            self.reason = reason

    class Node:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument, actions.OpaqueFunction, actions.Shutdown = DeclareLaunchArgument, OpaqueFunction, Shutdown
    substitutions.LaunchConfiguration = LaunchConfiguration
    ros_actions.Node = Node
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": substitutions, "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


def launched_nodes(monkeypatch, **overrides):
    """The Node actions the launch file produces, with its declared defaults plus `overrides`."""
    for name, module in stand_in_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("bringup_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    arguments = {a.name: a.default_value for a in description if hasattr(a, "default_value")}
    arguments.update(overrides)
    opaque = [a for a in description if hasattr(a, "function")]
    return [n.kwargs for action in opaque for n in action.function(LaunchContext(arguments))], arguments


def launch_ros_arguments(kwargs):
    """The --ros-args launch_ros gives a Node: name and namespace remaps, then parameter files."""
    return ros_arguments(kwargs["name"], kwargs["namespace"], kwargs["parameters"])


@pytest.mark.parametrize("overrides", [{}, {"namespace": "robot2"}, {"with": "trainer"}])
def test_launch_file_and_runner_start_the_same_nodes_with_the_same_arguments(monkeypatch, tmp_path, overrides):
    wanted = [name for name in overrides.get("with", "").split(",") if name]
    graph = with_optional(load_graph(), wanted)
    assert ("trainer" in {n.name for n in graph.nodes}) == bool(wanted)  # optional: only when asked for
    extra = []
    if "namespace" in overrides:
        extra_file = tmp_path / "extra.yaml"
        extra_file.write_text("/**/command_mux:\n  ros__parameters:\n    rate_hz: 25.0\n")
        extra = [str(extra_file)]
        overrides["params_file"] = str(extra_file)
    nodes, arguments = launched_nodes(monkeypatch, **overrides)
    namespace = arguments["namespace"]
    assert namespace == overrides.get("namespace", graph.namespace)

    processes = node_processes(graph, namespace, [*graph.parameter_files, *extra])
    targets = node_executables()
    from_launch = {(n["name"], targets[n["executable"]].split(":")[0], tuple(launch_ros_arguments(n))) for n in nodes}
    from_runner = {(p.name, p.argv[2], tuple(p.argv[3:])) for p in processes}
    assert from_launch == from_runner
    assert {n["package"] for n in nodes} == {"aloe"}
    assert len(from_runner) == len(graph.nodes) >= 2
    # The node whose exit ends a bounded `aloe bringup` ends the launch too.
    ends_launch = {n["name"] for n in nodes if n["on_exit"] is not None}
    assert ends_launch == {p.name for p in processes if p.ends_graph} == {"episode_runner"}


def test_launch_file_rejects_an_unknown_parameter_before_starting(monkeypatch, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/episode_manager:\n  ros__parameters:\n    robot_nam: x\n")
    with pytest.raises(ValueError, match="unknown parameter 'robot_nam'"):
        launched_nodes(monkeypatch, params_file=str(bad))


def test_every_node_executable_is_a_module_with_main_and_parameters():
    import importlib

    for executable, target in node_executables().items():
        module_name, function = target.split(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, function)), executable
        assert isinstance(module.PARAMETERS, dict) and module.PARAMETERS, executable


def test_description_errors_name_the_problem(tmp_path):
    path = tmp_path / "bringup.yaml"
    path.write_text("nodes:\n  - name: a\n    executable: no_such_node\n")
    with pytest.raises(GraphError, match="unknown node executable 'no_such_node' \\(known: .*command_mux"):
        load_graph(path)
    path.write_text("nodes:\n  - name: a\n    executable: command_mux\n  - name: a\n    executable: episode_manager\n")
    with pytest.raises(GraphError, match="must be unique"):
        load_graph(path)
    with pytest.raises(GraphError, match="unknown node name nope"):
        select_nodes(load_graph(), ["nope"])
