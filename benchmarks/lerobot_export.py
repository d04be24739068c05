"""Export speed: episode bags to a LeRobotDataset v3, against the pace they were recorded at.

    .venv/bin/python benchmarks/lerobot_export.py                  # records 6 scripted episodes first
    .venv/bin/python benchmarks/lerobot_export.py BAGS_DIR --runs 3

Without a folder it records 6 episodes (2 per task) with `aloe record` at the default three
320x240 cameras (5 Hz) in a ROS domain of its own, discovery kept on this machine. It then
exports the folder `--runs` times and prints the median over the runs of episodes per
minute, MB of bags read per second, and how many times faster than real time the episodes
(at 50 Hz) are exported: above 1, the export keeps up with recording.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from aloe.data.lerobot import FPS, export_bags

ROOT = Path(__file__).resolve().parents[1]


def record(folder: Path) -> None:
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "78"}
    for task in ("insertion", "drawer", "sorting"):
        subprocess.run([str(ROOT / ".venv" / "bin" / "aloe"), "record", "--task", task, "--episodes", "2", "--out", str(folder)],
                       check=True, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bags", nargs="?", type=Path, help="a folder of episode bags (default: record 6)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        bags = args.bags
        if bags is None:
            bags = Path(scratch) / "bags"
            record(bags)
        runs = []
        for run in range(args.runs):
            report = export_bags([bags], Path(scratch) / f"dataset-{run}")
            runs.append(report)
            print(f"run {run + 1}: {report.episodes} episodes, {report.frames} frames in {report.seconds:.1f} s", file=sys.stderr)
    median = statistics.median
    seconds = median(r.seconds for r in runs)
    report = runs[0]
    print(f"episodes:              {report.episodes} ({report.frames} frames, {report.frames / FPS:.0f} s at {FPS} Hz)"
          + (f", {len(report.skipped)} skipped" if report.skipped else ""))
    print(f"export time:           {seconds:.1f} s (median of {len(runs)})")
    print(f"episodes per minute:   {median(r.episodes / r.seconds * 60 for r in runs):.1f}")
    print(f"bags read:             {median(r.bag_bytes / 2**20 / r.seconds for r in runs):.1f} MB/s "
          f"({report.bag_bytes / 2**20 / report.episodes:.1f} MB of bag per episode)")
    print(f"dataset written:       {report.dataset_bytes / 2**20 / report.episodes:.2f} MB per episode "
          f"({report.bag_bytes / report.dataset_bytes:.0f}x smaller than the bags)")
    print(f"faster than real time: {median(r.frames / FPS / r.seconds for r in runs):.1f}x (above 1: keeps up with recording)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
