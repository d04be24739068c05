"""The bringup description (config/bringup.yaml) that both launchers read.

`launch/bringup.launch.py` and `aloe bringup` both call `load_graph()`, so the set of nodes,
their names and their parameter files cannot drift between the two.
"""
import importlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from aloe.graph.params import ParameterFileError, check_node_parameters

PACKAGE = "aloe"
DESCRIPTION_FILE = "bringup.yaml"


class GraphError(ValueError):
    """The bringup description cannot be used; the message is one line for the user."""


def config_dir() -> Path:
    """config/ of the source checkout when running from one, else the installed share/aloe/config."""
    checkout = Path(__file__).resolve().parents[3] / "config"
    if (checkout / DESCRIPTION_FILE).is_file():
        return checkout
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / "config"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    executable: str
    ends_graph: bool = False  # its exit with code 0 ends the whole graph
    optional: bool = False  # started only when asked for (`--with NAME`, `with:=NAME`)


@dataclass(frozen=True)
class Graph:
    namespace: str
    parameter_files: tuple  # absolute paths, in order
    nodes: tuple  # NodeSpec


def node_executables() -> dict:
    """{executable: "module:function"} for every node entry point the aloe package installs."""
    scripts = metadata.entry_points(group="console_scripts")
    return {ep.name: ep.value for ep in scripts if ep.value.startswith("aloe.nodes.")}


def load_graph(path=None) -> Graph:
    path = Path(path) if path else config_dir() / DESCRIPTION_FILE
    try:
        description = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise GraphError(f"cannot read bringup description {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(description, dict) or not isinstance(description.get("nodes"), list):
        raise GraphError(f"bringup description {path} needs a 'nodes' list")
    known = node_executables()
    nodes = []
    for entry in description["nodes"]:
        if not isinstance(entry, dict) or not {"name", "executable"} <= set(entry) <= {"name", "executable", "ends_graph", "optional"}:
            raise GraphError(
                f"bringup description {path}: each node needs 'name' and 'executable' (and may set 'ends_graph' "
                f"and 'optional'), got {entry!r}"
            )
        if entry["executable"] not in known:
            raise GraphError(
                f"bringup description {path}: unknown node executable '{entry['executable']}' "
                f"(known: {', '.join(sorted(known))})"
            )
        nodes.append(NodeSpec(str(entry["name"]), str(entry["executable"]), bool(entry.get("ends_graph", False)),
                              bool(entry.get("optional", False))))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise GraphError(f"bringup description {path}: node names must be unique, got {names}")
    files = tuple(str((path.parent / f).resolve()) for f in description.get("parameters", []))
    return Graph(str(description.get("namespace", PACKAGE)), files, tuple(nodes))


def select_nodes(graph: Graph, names) -> Graph:
    """The graph restricted to `names` (for running part of it), in the description's order."""
    available = {n.name for n in graph.nodes}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise GraphError(f"unknown node name {', '.join(unknown)} (the graph has: {', '.join(sorted(available))})")
    return Graph(graph.namespace, graph.parameter_files, tuple(n for n in graph.nodes if n.name in names))


def with_optional(graph: Graph, names=()) -> Graph:
    """The graph's default nodes plus the optional ones named in `names`."""
    optional = {n.name for n in graph.nodes if n.optional}
    unknown = [n for n in names if n not in optional]
    if unknown:
        raise GraphError(f"{', '.join(unknown)} is not an optional node (optional: {', '.join(sorted(optional)) or 'none'})")
    return Graph(graph.namespace, graph.parameter_files, tuple(n for n in graph.nodes if not n.optional or n.name in names))


def declared_parameters(executable: str) -> dict:
    """The PARAMETERS a node module declares, found through its entry point."""
    module_name = node_executables()[executable].split(":")[0]
    return importlib.import_module(module_name).PARAMETERS


def check_parameters(graph: Graph, namespace: str, parameter_files) -> None:
    """Raise ParameterFileError if any file is malformed or sets a name its node does not declare."""
    for node in graph.nodes:
        check_node_parameters(parameter_files, "/" + namespace.strip("/"), node.name, declared_parameters(node.executable))

