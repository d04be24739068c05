"""Demonstrations through the graph against the same seeds in process: are they the same data?

    .venv/bin/python benchmarks/demo_fidelity.py runs/round0-lockstep/drawer/bags/demonstrations --sample 30

Reads every episode bag in the folder (the scripted operator's demonstrations, as `aloe
record` or `aloe experiment` wrote them) and prints one JSON line: how many succeeded, the
median length of the successful ones, the median number of steps after a command at which
the arm's joints follow it best ("lag"), and the share of steps no source drove (HOLD).
With `--sample N` it also replays the first N seeds in process (`aloe.data.demonstrations`,
no graph, no cameras) and gives the same figures for them, the median length
difference per seed, and how many of the bag's actions are not what the operator did in
process at the same arm pose ("action_mismatch": the share of in-process steps whose
pose the bag reaches within 0.01 rad and whose action there differs by more than 0.05).
The bags' seeds come from their metadata.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from aloe.data.bag_dataset import bag_metadata, read_episode
from aloe.data.demonstrations import action_mismatch, command_lag, demonstrate
from aloe.data.recording import aloe_typestore
from aloe.learning.data import DataError


def median(values):
    return statistics.median(values) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bags", type=Path, help="folder of episode bags")
    parser.add_argument("--sample", type=int, default=0, help="also replay this many of the bags' seeds in process")
    args = parser.parse_args(argv)
    bags = sorted(p for p in args.bags.iterdir() if (p / "metadata.yaml").is_file()) if args.bags.is_dir() else []
    if not bags:
        print(f"demo_fidelity: no episode bags in {args.bags}", file=sys.stderr)
        return 2
    typestore = aloe_typestore()
    graph = []
    for k, bag in enumerate(bags):
        try:
            meta = bag_metadata(bag)
            episode = read_episode(bag, typestore, image_size=(24, 32))
        except DataError as error:
            print(f"demo_fidelity: skipped {error}", file=sys.stderr)
            continue
        graph.append({"seed": int(meta["seed"]), "task": meta["task"], "variant": meta.get("variant", "train"),
                      "success": episode.outcome == "success", "steps": len(episode.actions),
                      "lag": command_lag(episode.joints, episode.actions), "hold": float(np.mean(~episode.operator)),
                      "joints": episode.joints, "actions": episode.actions})
        print(f"\r[demo_fidelity] read {k + 1}/{len(bags)} bags", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    succeeded = [g for g in graph if g["success"]]
    result = {
        "bags": len(graph), "succeeded": len(succeeded),
        "median_steps_successful": median([g["steps"] for g in succeeded]),
        "median_lag": median([g["lag"] for g in graph]), "hold_share": float(np.mean([g["hold"] for g in graph])),
    }
    if args.sample:
        sample = sorted(graph, key=lambda g: g["seed"])[: args.sample]
        replays = []
        for k, g in enumerate(sample):
            demo = demonstrate(g["task"], g["seed"], g["variant"], camera_every=0)
            replays.append({"success": demo["outcome"] == "success", "steps": len(demo["actions"]),
                            "lag": command_lag(demo["joints"], demo["actions"]),
                            "mismatch": action_mismatch(g["joints"], g["actions"], demo["joints"], demo["actions"])})
            print(f"\r[demo_fidelity] in process {k + 1}/{len(sample)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        both = [(g, r) for g, r in zip(sample, replays) if g["success"] and r["success"]]
        result["sample"] = {
            "seeds": len(sample), "graph_succeeded": sum(g["success"] for g in sample),
            "in_process_succeeded": sum(r["success"] for r in replays),
            "in_process_median_steps_successful": median([r["steps"] for r in replays if r["success"]]),
            "in_process_median_lag": median([r["lag"] for r in replays]),
            "median_step_difference_both_successful": median([g["steps"] - r["steps"] for g, r in both]),
            "action_mismatch": [None if r["mismatch"][0] is None else round(r["mismatch"][0], 3) for r in replays],
            "steps_matched": [r["mismatch"][1] for r in replays],
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
