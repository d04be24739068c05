"""aloe: an ament_python package (colcon in a ROS 2 workspace) that also installs with pip."""
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "aloe"
HERE = Path(__file__).parent

# `ros2 run aloe <node>` names; the bringup graph (config/bringup.yaml) refers to these.
NODES = {
    "episode_manager": "aloe.nodes.episode_manager:main",
    "command_mux": "aloe.nodes.command_mux:main",
    "sim_robot": "aloe.nodes.sim_robot:main",
    "episode_runner": "aloe.nodes.episode_runner:main",
    "recorder": "aloe.nodes.recorder:main",
    "policy": "aloe.nodes.policy:main",
    "trainer": "aloe.nodes.trainer:main",
    "trajectory_adapter": "aloe.nodes.trajectory_adapter:main",
    "teleop": "aloe.nodes.teleop:main",
    "camera": "aloe.nodes.camera:main",
}


def share_files(folder: str):
    """data_files entries installing every file under `folder` into share/aloe/<folder>."""
    entries = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(HERE)
            entries.setdefault(f"share/{PACKAGE}/{relative.parent}", []).append(str(relative))
    return list(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    description="VLA post-training with action-level off-policy evaluation, on ROS 2",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"aloe.graph": ["fastdds.xml"]},
    python_requires=">=3.10",
    # ROS and PyPI dependencies are installed by setup.sh (requirements.txt) or rosdep
    # (package.xml); listing them here would break console scripts in a ROS workspace.
    install_requires=["setuptools"],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("launch"),
        *share_files("config"),
    ],
    entry_points={
        "console_scripts": [
            "aloe = aloe.cli:main",
            *(f"{name} = {target}" for name, target in NODES.items()),
        ],
    },
)
