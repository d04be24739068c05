"""How densely the demonstrations cover the evaluation's scenes, failed scenes against the rest.

    .venv/bin/python benchmarks/demo_coverage.py --task insertion --demos 300 600 \
        --failed 500,503,504,510,515,518,519,523,532,539,540,544,546,549

A scene is the simulator's object state at reset (`SimRobot.object_state`), each dimension
divided by its spread over the demonstrations. For each evaluation seed it prints the mean
distance to its 5 nearest demonstration scenes and how many lie within 1.5 such units, for
the failed seeds and the others, with a one-sided permutation p-value (are the failed
scenes farther from the data than chance would put them?). The demonstrations are those
`benchmarks/base_policy.py` recorded in runs/demos/<task>/, the first N in its seed order.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

NEAREST = 5
RADIUS = 1.5


def evaluation_scenes(task: str, seeds) -> np.ndarray:
    from aloe.sim.env import SimRobot

    robot = SimRobot()
    try:
        scenes = []
        for seed in seeds:
            robot.reset(task, seed)
            scenes.append(robot.object_state())
        return np.stack(scenes)
    finally:
        robot.close()


def main() -> int:
    from base_policy import demo_seeds

    from aloe.data import demonstrations

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=("insertion", "drawer", "sorting"))
    parser.add_argument("--demos", type=int, nargs="+", default=[300], help="demonstration counts to compare")
    parser.add_argument("--failed", required=True, help="comma-separated evaluation seeds that failed")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=500)
    parser.add_argument("--permutations", type=int, default=20000)
    args = parser.parse_args()

    seeds = range(args.first_seed, args.first_seed + args.episodes)
    failed = np.array([seed in {int(s) for s in args.failed.split(",")} for seed in seeds])
    folder = ROOT / "runs" / "demos" / args.task
    paths = [demonstrations.episode_path(folder, args.task, seed, "train") for seed in demo_seeds(max(args.demos), held_out=seeds)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"{len(missing)} demonstrations not recorded in {folder} (e.g. {missing[0]}): "
                         "run benchmarks/base_policy.py with as many --demos first")
    starts = np.stack([np.load(p)["state"][0] for p in paths])
    scenes = evaluation_scenes(args.task, seeds)
    rng = np.random.default_rng(0)
    print(f"{args.task}: {failed.sum()} failed of {len(failed)} evaluation scenes")
    for count in args.demos:
        spread = starts[:count].std(0) + 1e-9
        distances = np.linalg.norm(scenes[:, None] / spread - starts[None, :count] / spread, axis=2)
        nearest = np.sort(distances, axis=1)[:, :NEAREST].mean(1)
        within = (distances < RADIUS).sum(1)
        observed = nearest[failed].mean() - nearest[~failed].mean()
        null = np.array([nearest[p].mean() - nearest[~p].mean() for p in (rng.permutation(failed) for _ in range(args.permutations))])
        print(f"  {count} demonstrations: distance to the {NEAREST} nearest: failed {nearest[failed].mean():.2f}, "
              f"others {nearest[~failed].mean():.2f} (permutation p {np.mean(null >= observed):.4f}); "
              f"demonstrations within {RADIUS}: failed {within[failed].mean():.1f}, others {within[~failed].mean():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
