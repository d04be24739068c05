"""ROS 2 parameter files: loading, matching sections to nodes, and rejecting mistakes.

rclpy silently ignores a parameter in a file that the node never declares, so a typo in a
YAML file would quietly run with the default. Both launchers and every node check the
files here first and fail with one line naming the file, the node and the bad name.
"""
import re
from pathlib import Path

import yaml

# Declared by rclpy itself on every node, or consumed by rcl: allowed in any section.
BUILTIN_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})
BUILTIN_PREFIXES = ("qos_overrides.",)


class ParameterFileError(ValueError):
    """A parameter file that cannot be used; the message is one line for the user."""


def load_parameter_file(path) -> dict:
    """Return {node pattern: {parameter: value}} from a ROS 2 parameter YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ParameterFileError(f"parameter file {path} does not exist")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ParameterFileError(f"parameter file {path} is not valid YAML{where}: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ParameterFileError(f"parameter file {path}: expected a mapping of node names to sections")
    sections = {}
    for node_key, section in document.items():
        if not isinstance(section, dict) or set(section) != {"ros__parameters"}:
            raise ParameterFileError(
                f"parameter file {path}: section '{node_key}' must hold exactly one key, 'ros__parameters'"
            )
        values = section["ros__parameters"] or {}
        if not isinstance(values, dict):
            raise ParameterFileError(f"parameter file {path}: '{node_key}.ros__parameters' must be a mapping")
        sections[str(node_key)] = _flatten(values)
    return sections


def _flatten(values: dict, prefix: str = "") -> dict:
    """Nested YAML mappings are dotted parameter names in ROS 2."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def section_matches(pattern: str, namespace: str, node_name: str) -> bool:
    """Whether a section key like `/**/command_mux`, `/aloe/command_mux` or `command_mux` applies."""
    if not pattern.startswith("/"):
        return pattern == node_name
    full_name = f"{namespace.rstrip('/')}/{node_name}"
    return re.fullmatch(_wildcard_regex(pattern), full_name) is not None


def _wildcard_regex(pattern: str) -> str:
    """rcl's wildcards: `**` spans any number of namespace levels (zero included), `*` one token."""
    regex = ""
    for token in re.split(r"(/\*\*/|\*\*|\*)", pattern):
        if token == "/**/":
            regex += "(?:/.*)?/"
        elif token == "**":
            regex += ".*"
        elif token == "*":
            regex += "[^/]*"
        else:
            regex += re.escape(token)
    return regex


def parameters_for(files, namespace: str, node_name: str) -> dict:
    """The parameter values the given files set for one node; later files win."""
    values = {}
    for path in files:
        for pattern, section in load_parameter_file(path).items():
            if section_matches(pattern, namespace, node_name):
                values.update(section)
    return values


def unknown_parameters(values, declared) -> list:
    return sorted(
        name
        for name in values
        if name not in declared and name not in BUILTIN_PARAMETERS and not name.startswith(BUILTIN_PREFIXES)
    )


def check_node_parameters(files, namespace: str, node_name: str, declared) -> dict:
    """Values for one node from `files`; raises ParameterFileError on a name it does not declare."""
    values = parameters_for(files, namespace, node_name)
    unknown = unknown_parameters(values, declared)
    if unknown:
        raise ParameterFileError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)} "
            f"for node '{node_name}' in {', '.join(str(f) for f in files)} "
            f"(known: {', '.join(sorted(declared))})"
        )
    return values
