"""Open a dataset with LeRobot's own reader and print what it sees, as JSON on stdout.

Runs in the separate environment of scripts/lerobot_reader.sh (lerobot-dataset and its
torch), not in aloe's: test_lerobot_export.py compares this with the bags.
    .venv-lerobot/bin/python test/lerobot_reader.py DATASET FRAME [FRAME ...]
"""
import json
import sys

import torch
from ledataset.datasets.lerobot_dataset import LeRobotDataset


def main(root: str, frames: list) -> None:
    dataset = LeRobotDataset("aloe/export", root=root)
    episodes = dataset.meta.episodes
    seen = {
        "fps": dataset.fps,
        "episodes": dataset.num_episodes,
        "frames": dataset.num_frames,
        "video_keys": dataset.meta.video_keys,
        "boundaries": [[row["dataset_from_index"], row["dataset_to_index"]] for row in episodes],
        "items": {},
    }
    for index in frames:
        item = dataset[index]
        seen["items"][index] = {
            "episode_index": int(item["episode_index"]),
            "frame_index": int(item["frame_index"]),
            "timestamp": float(item["timestamp"]),
            "task": item["task"],
            "action": item["action"].tolist(),
            "state": item["observation.state"].tolist(),
            "intervention": float(item["complementary_info.is_intervention"]),
            "reward": float(item["next.reward"]),
            "done": bool(item["next.done"]),
            # channels-first floats in [0, 1], as LeRobot's trainers get them
            "images": {key: (item[key] * 255).round().to(torch.uint8).permute(1, 2, 0).tolist() for key in dataset.meta.video_keys},
        }
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], [int(frame) for frame in sys.argv[2:]])
