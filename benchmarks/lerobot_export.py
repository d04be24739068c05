"""Export speed: episode bags to a LeRobotDataset v3, against the pace they were recorded at.

    .venv/bin/python benchmarks/lerobot_export.py                  # records 6 scripted episodes first
    .venv/bin/python benchmarks/lerobot_export.py BAGS_DIR --runs 3

Without a folder it records 6 episodes (2 per task) with `aloe record` at the default three
320x240 cameras (5 Hz) in a ROS domain of its own, discovery kept on this machine. It then
exports the folder `--runs` times and prints the median over the runs of episodes per
minute, MB of bags read per second, and how many times faster than real time the episodes
(at 50 Hz) are exported: above 1, the export keeps up with recording. Last, the round trip
of the first episode: its images read back from the dataset against the bag's.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from aloe.data.bag_dataset import bag_metadata, read_episode
from aloe.data.lerobot import FPS, episode_bags, export_bags, read_dataset
from aloe.data.recording import aloe_typestore

ROOT = Path(__file__).resolve().parents[1]


def record(folder: Path) -> None:
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "78"}
    for task in ("insertion", "drawer", "sorting"):
        subprocess.run([str(ROOT / ".venv" / "bin" / "aloe"), "record", "--task", task, "--episodes", "2", "--out", str(folder)],
                       check=True, env=env)


def image_error(bags: Path, dataset: Path) -> dict:
    """Mean and 99th percentile of |image read back - image in the bag| of the first
    episode, at the cameras' size and as the encoder sees them (96x128, head crop)."""
    first = read_dataset(dataset, None)[0]
    bag = next(b for b in episode_bags([bags]) if bag_metadata(b).get("episode_id", b.name) == first.episode_id)
    errors = {}
    for view, size, crop in (("camera size", None, ()), ("encoder view", (96, 128), (0.3, 0.3, 0.4, 0.4))):
        back = read_dataset(dataset, size, crop)[0].images.astype(int) if size else first.images.astype(int)
        error = np.abs(back - read_episode(bag, aloe_typestore(), size, crop).images.astype(int))
        errors[view] = (error.mean(), np.percentile(error, 99))
    return errors


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
            if run == 0:
                round_trip = image_error(bags, Path(scratch) / "dataset-0")
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
    for view, (mean, p99) in round_trip.items():
        print(f"round trip, {view}: images {mean:.2f} levels of 255 off on average (99th percentile {p99:.0f})")
    print(f"faster than real time: {median(r.frames / FPS / r.seconds for r in runs):.1f}x (above 1: keeps up with recording)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
