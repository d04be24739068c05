"""The ROS 2 workspace path: the repository built by colcon (aloe_msgs and aloe) into an
install base of its own, as a ROS 2 user builds it, then used the way `ros2 run` and
`ros2 launch` use it: executables in lib/aloe/, launch and parameter files in share/aloe/,
the package found through the ament index. (`launch` and `ros2cli` cannot be installed from
PyPI, so a node is started from lib/aloe/ with the arguments launch_ros gives it.)"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """`colcon build` of a workspace whose src/aloe is this repository's files."""
    ws = tmp_path_factory.mktemp("ws")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (ws / "src" / "aloe" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, ws / "src" / "aloe" / name)
    env = dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}", AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    # The README's workspace command: msgs/ is a package inside the aloe package, so colcon
    # is told both paths (it does not look for packages inside a package).
    build = subprocess.run(
        [str(VENV / "bin" / "colcon"), "--log-base", "log", "build", "--base-paths", "src/aloe", "src/aloe/msgs",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return ws / "install"


def installed_env(install: Path) -> dict:
    """What sourcing install/setup.bash gives a shell, for these two packages."""
    site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    return dict(
        os.environ,
        AMENT_PREFIX_PATH=f"{install / 'aloe'}:{install / 'aloe_msgs'}:{VENV}",
        PYTHONPATH=f"{install / 'aloe' / site}:{install / 'aloe_msgs' / site}",
        LD_LIBRARY_PATH=f"{install / 'aloe_msgs' / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}",
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID="83",
    )


def test_every_node_of_the_graph_has_an_executable_where_ros2_run_looks(workspace):
    description = yaml.safe_load((ROOT / "config" / "bringup.yaml").read_text())
    executables = {node["executable"] for node in description["nodes"]}  # optional ones included
    libexec = workspace / "aloe" / "lib" / "aloe"
    missing = sorted(name for name in executables if not os.access(libexec / name, os.X_OK))
    assert not missing, f"not executable in {libexec}: {missing}"


def test_launch_and_parameter_files_are_installed_in_share(workspace):
    share = workspace / "aloe" / "share" / "aloe"
    assert (share / "launch" / "bringup.launch.py").is_file() and (share / "package.xml").is_file()
    for name in ("bringup.yaml", "aloe.yaml"):
        assert (share / "config" / name).is_file()


def test_the_ament_index_finds_the_installed_package_and_its_graph(workspace):
    probe = ("import aloe, aloe.graph.bringup\n"
             "from ament_index_python.packages import get_package_prefix, get_package_share_directory\n"
             "print(get_package_prefix('aloe')); print(get_package_share_directory('aloe')); print(aloe.__file__)\n"
             "print(len(aloe.graph.bringup.load_graph().nodes))")
    result = subprocess.run([sys.executable, "-c", probe], env=installed_env(workspace), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    prefix, share, module, nodes = result.stdout.split()
    assert Path(prefix) == workspace / "aloe" and Path(share) == workspace / "aloe" / "share" / "aloe"
    assert Path(module).is_relative_to(workspace)  # the installed copy, not this checkout
    assert (Path(module).parent / "graph" / "fastdds.xml").is_file()  # the middleware profile its nodes load
    assert int(nodes) == len(yaml.safe_load((ROOT / "config" / "bringup.yaml").read_text())["nodes"])


def test_a_node_started_from_lib_aloe_comes_up_and_stops_on_sigint(workspace):
    share = workspace / "aloe" / "share" / "aloe"
    node = subprocess.Popen(
        [str(workspace / "aloe" / "lib" / "aloe" / "episode_manager"), "--ros-args", "-r", "__node:=episode_manager",
         "-r", "__ns:=/wstest", "--params-file", str(share / "config" / "aloe.yaml")],
        env=installed_env(workspace), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            line = node.stdout.readline()
            if not line:
                break
            output.append(line)
            if "ready" in line:
                break
        assert any("ready" in line for line in output), "".join(output)
        assert "wstest.episode_manager" in "".join(output)  # the namespace and name launch_ros gives
        node.send_signal(signal.SIGINT)
        assert node.wait(timeout=60) == 0, "".join(output) + node.stdout.read()
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
