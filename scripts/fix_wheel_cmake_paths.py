"""Point the ROS 2 wheels' CMake configs at this machine's Python and numpy headers.

The ros-kilted-* message wheels were built in a manylinux image; their exported CMake
targets name that image's include directories (a Python under /opt/python/cp311-cp311 and
its numpy), and CMake refuses a target whose include directory does not exist. Building
our own interfaces against them needs those names to resolve here. Idempotent.
"""
import re
import sys
import sysconfig
from pathlib import Path

import numpy

# The build image's Python prefix followed by one of the two include directories used.
BUILD_INCLUDE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+"
    r"(?P<dir>/lib/python3\.\d+/site-packages/numpy/_core/include|/include/python3\.\d+)"
)


def main(venv: Path) -> int:
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()

    def local_dir(match: re.Match) -> str:
        return numpy_include if "numpy" in match["dir"] else python_include

    fixed = 0
    for cmake_file in (venv / "share").glob("*/cmake/*.cmake"):
        text = cmake_file.read_text()
        new_text = BUILD_INCLUDE.sub(local_dir, text)
        if new_text != text:
            cmake_file.write_text(new_text)
            fixed += 1
    if fixed:
        print(f"[setup] pointed {fixed} wheel CMake configs at {python_include} and {numpy_include}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
