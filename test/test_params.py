"""Parameter files: the shipped ones load and fit their nodes; mistakes get one clear line."""
import subprocess
import sys

import pytest

from aloe.graph.bringup import check_parameters, declared_parameters, load_graph
from aloe.graph.params import ParameterFileError, check_node_parameters, load_parameter_file, parameters_for, section_matches


def test_shipped_parameter_files_load_and_every_section_names_a_node_with_known_parameters():
    graph = load_graph()
    assert graph.parameter_files
    node_names = {n.name for n in graph.nodes}
    for path in graph.parameter_files:
        sections = load_parameter_file(path)
        assert sections, path
        for pattern in sections:
            assert any(section_matches(pattern, "/aloe", name) for name in node_names), pattern
    check_parameters(graph, graph.namespace, graph.parameter_files)  # raises on any unknown name
    mux = parameters_for(graph.parameter_files, "/aloe", "command_mux")
    assert mux["rate_hz"] == 50.0


@pytest.mark.parametrize(
    "pattern, namespace, node, matches",
    [
        ("/**/command_mux", "/aloe", "command_mux", True),
        ("/**/command_mux", "/", "command_mux", True),
        ("/**/command_mux", "/robot2/aloe", "command_mux", True),
        ("/**/command_mux", "/aloe", "episode_manager", False),
        ("/aloe/*", "/aloe", "command_mux", True),
        ("/*/command_mux", "/a/b", "command_mux", False),
        ("/other/command_mux", "/aloe", "command_mux", False),
        ("command_mux", "/aloe", "command_mux", True),
        ("/**", "/aloe", "anything", True),
    ],
)
def test_section_wildcards_follow_rcl(pattern, namespace, node, matches):
    assert section_matches(pattern, namespace, node) is matches


def test_later_files_win_and_nested_names_are_dotted(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("/**/n:\n  ros__parameters:\n    x: 1\n    group: {y: 2}\n")
    second.write_text("n:\n  ros__parameters:\n    x: 3\n")
    assert parameters_for([first, second], "/aloe", "n") == {"x": 3, "group.y": 2}


@pytest.mark.parametrize(
    "text, message",
    [
        ("foo: [\n", "is not valid YAML at line 2"),
        ("- 1\n- 2\n", "expected a mapping of node names"),
        ("/**/n:\n  parameters: {x: 1}\n", "exactly one key, 'ros__parameters'"),
        ("/**/n:\n  ros__parameters: [1, 2]\n", "must be a mapping"),
    ],
)
def test_malformed_files_are_named_with_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ParameterFileError, match=message) as error:
        load_parameter_file(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_unknown_parameter_names_are_refused_but_builtins_pass(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("/**/command_mux:\n  ros__parameters:\n    rate_hzz: 5.0\n    use_sim_time: true\n")
    declared = declared_parameters("command_mux")
    with pytest.raises(ParameterFileError, match="unknown parameter 'rate_hzz' for node 'command_mux'"):
        check_node_parameters([path], "/aloe", "command_mux", declared)
    path.write_text("/**/command_mux:\n  ros__parameters:\n    rate_hz: 5.0\n    use_sim_time: true\n")
    assert check_node_parameters([path], "/aloe", "command_mux", declared)["rate_hz"] == 5.0


def test_a_node_started_by_hand_refuses_an_unknown_parameter(tmp_path, ros_domain):
    """`ros2 run aloe command_mux --ros-args --params-file f` must not silently ignore a typo."""
    path = tmp_path / "p.yaml"
    path.write_text("/**/command_mux:\n  ros__parameters:\n    sourec_timeout_s: 1.0\n")
    result = subprocess.run(
        [sys.executable, "-m", "aloe.nodes.command_mux", "--ros-args", "--params-file", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "unknown parameter 'sourec_timeout_s' for node 'command_mux'" in result.stderr
    assert "Traceback" not in result.stderr
