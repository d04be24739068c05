"""One round of post-training in process, judged by rollouts on training seeds (never the
evaluation seeds 100000+): the round-0 policy is deployed, each algorithm is trained from it
on the demonstrations plus those deployments, and each result is evaluated; for a critic,
how its Q at an episode's start predicts the return then measured (its calibration).

    .venv/bin/python benchmarks/post_training.py --task insertion --name round1 \\
        --checkpoint runs/ladder/insertion/defaults-600demos-24k-seed1/model.safetensors --demos 600

Three steps, each resumable (run the same command again; what is done under
runs/post/<task>/<name>/ is kept):
  1. --deployments episodes of the checkpoint on seeds from --deploy-first-seed, the policy
     alone (no operator takes over in process), recorded with the cameras at the graph's
     5 Hz (deployments/);
  2. each of --algos trained from the checkpoint by `aloe.learning.train.train` on the
     demonstrations in runs/demos/<task>/ (--demos of them, as base_policy.py chose their
     seeds) and the deployments, with config/experiment-train.yaml's steps and settings
     (<algo>.safetensors). "critic" is aloe with no improvement steps: the round-0 actor
     with a critic of it, so its Q is judged against the very policy it evaluates;
  3. --episodes episodes of each on seeds from --first-seed, one JSON line each appended to
     runs/post/<task>.jsonl: success with its 95 % interval and, with a critic, the mean Q
     at the start (pessimistic and the heads' mean) against the mean measured return, their
     difference (bias) and Spearman's rank correlation over the episodes.
"""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from base_policy import apply_overrides, demo_seeds

ROOT = Path(__file__).resolve().parent.parent
ALGOS = ("critic", "aloe", "bc", "mc")


def train_config(args, algo: str, model):
    """config/experiment-train.yaml, then --set, for `algo` ("critic": aloe, no improvement)."""
    from aloe.learning.config import TrainConfig, from_dict

    values = yaml.safe_load((ROOT / "config" / "experiment-train.yaml").read_text()) or {}
    values.update(algo="aloe" if algo == "critic" else algo, seed=args.seed)
    apply_overrides(values, args.set)
    if algo == "critic":
        values["improve_steps"] = 0
    config = from_dict(TrainConfig, values)
    config.model = model  # the checkpoint's: training goes on from its weights
    return config


def deploy(args, out: Path) -> list:
    """Step 1: the deployments' files (recorded now, or kept from an earlier run)."""
    from aloe.data.demonstrations import episode_path
    from aloe.experiment.evaluation import Condition, evaluate

    folder = out / "deployments"
    seeds = range(args.deploy_first_seed, args.deploy_first_seed + args.deployments)
    recorded = {(args.task, "train", seed) for seed in seeds if episode_path(folder, args.task, seed, "train").exists()}
    start = time.monotonic()
    results = evaluate(args.checkpoint, [args.task], [Condition("train")], seeds, replan_every=args.replan_every,
                       workers=args.workers, camera_every=10, record_to=folder, skip=recorded,
                       progress=lambda n, total: print(f"\r[post] deployments {n}/{total}", end="", flush=True))
    if results:
        print(f"\n[post] {len(results)} deployments in {(time.monotonic() - start) / 60:.1f} min: "
              f"{sum(r.success for r in results)} succeeded", flush=True)
    return [episode_path(folder, args.task, seed, "train") for seed in seeds]


def train_algo(args, algo: str, init, episodes, out: Path) -> tuple:
    """Step 2 for one algorithm: its checkpoint's path and training minutes (None if kept)."""
    from aloe.learning.checkpoint import save_checkpoint
    from aloe.learning.train import train

    path = out / f"{algo}.safetensors"
    if path.exists():
        return path, None
    config = train_config(args, algo, init.config.model)
    print(f"[post] {algo}: critic {config.critic_steps if config.algo in ('aloe', 'mc') else 0} and improvement "
          f"{config.improve_steps} steps from {args.checkpoint.name}", flush=True)
    start = time.monotonic()
    checkpoint = train(config, episodes, init=init, log_dir=out / "tensorboard" / algo)
    minutes = (time.monotonic() - start) / 60
    save_checkpoint(checkpoint, path)
    return path, minutes


def calibration_row(results) -> dict:
    """A critic's start-of-episode Q against the returns measured (nothing without a critic)."""
    from aloe.experiment.evaluation import spearman

    q = np.array([r.q_start for r in results])
    if np.isnan(q).all():
        return {}
    q_mean = np.array([r.q_start_mean for r in results])
    returns = np.array([r.measured_return for r in results])
    return {
        "q_start": round(float(q.mean()), 4), "q_start_mean": round(float(q_mean.mean()), 4),
        "measured_return": round(float(returns.mean()), 4),
        "bias": round(float(q.mean() - returns.mean()), 4), "bias_mean": round(float(q_mean.mean() - returns.mean()), 4),
        "spearman": round(spearman(q, returns), 3), "spearman_mean": round(spearman(q_mean, returns), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=("insertion", "drawer", "sorting"))
    parser.add_argument("--name", required=True, help="the run's folder under runs/post/<task>/")
    parser.add_argument("--checkpoint", required=True, type=Path, help="the round-0 policy (e.g. a base_policy.py rung's model)")
    parser.add_argument("--demos", type=int, default=300, help="demonstrations the checkpoint learnt from (default 300)")
    parser.add_argument("--deployments", type=int, default=100, help="deployed episodes (default 100)")
    parser.add_argument("--deploy-first-seed", type=int, default=1000)
    parser.add_argument("--algos", default=",".join(ALGOS), help=f"comma-separated, of {', '.join(ALGOS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. improve.beta=1.0")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per algorithm (default 50)")
    parser.add_argument("--first-seed", type=int, default=500)
    parser.add_argument("--replan-every", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2, help="rollout processes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in training")
    args = parser.parse_args()
    algos = [a for a in args.algos.split(",") if a]
    unknown = sorted(set(algos) - set(ALGOS))
    if unknown:
        raise SystemExit(f"--algos: unknown {', '.join(unknown)} (choose from {', '.join(ALGOS)})")
    evaluation = range(args.first_seed, args.first_seed + args.episodes)
    deployed = range(args.deploy_first_seed, args.deploy_first_seed + args.deployments)
    if args.first_seed >= 100000 or deployed.stop > 100000:
        raise SystemExit("post-training is tuned here: use training seeds, not the evaluation seeds 100000+")
    demos = demo_seeds(args.demos, held_out=range(500, 550))  # as base_policy.py chose them, around its default evaluation
    if set(evaluation) & (set(deployed) | set(demos)):
        raise SystemExit("the evaluation's seeds overlap the deployments' or the demonstrations'")
    if not args.checkpoint.exists():
        raise SystemExit(f"--checkpoint {args.checkpoint} does not exist")

    import torch

    from aloe.data.demonstrations import episode_path, load
    from aloe.experiment.evaluation import Condition, evaluate, stage_rates, wilson_interval
    from aloe.learning.checkpoint import load_checkpoint

    out = ROOT / "runs" / "post" / args.task / args.name
    out.mkdir(parents=True, exist_ok=True)
    demo_paths = [episode_path(ROOT / "runs" / "demos" / args.task, args.task, seed, "train") for seed in demos]
    missing = [p for p in demo_paths if not p.exists()]
    if missing:
        raise SystemExit(f"{len(missing)} of the {args.demos} demonstrations are not recorded (first: {missing[0]}); "
                         f"benchmarks/base_policy.py --demos {args.demos} records them")
    deployments = deploy(args, out)
    torch.set_num_threads(args.threads)
    init = load_checkpoint(args.checkpoint)
    model = init.config.model
    episodes = None
    for algo in algos:
        if not (out / f"{algo}.safetensors").exists() and episodes is None:
            episodes = load(demo_paths + deployments, tuple(model.image_size), head_crop=tuple(model.head_crop))
            deployed_ok = sum(e.outcome == "success" for e in episodes[len(demo_paths):])
            print(f"[post] training data: {len(demo_paths)} demonstrations and {len(deployments)} deployments "
                  f"({deployed_ok} succeeded)", flush=True)
        path, minutes = train_algo(args, algo, init, episodes, out)
        results = evaluate(path, [args.task], [Condition("train")], evaluation, replan_every=args.replan_every,
                           workers=args.workers)
        successes = sum(r.success for r in results)
        low, high = wilson_interval(successes, len(results))
        row = {
            "task": args.task, "name": args.name, "algo": algo, "success": f"{successes}/{len(results)}",
            "low": round(low, 3), "high": round(high, 3), "stages": stage_rates(results),
            "train_minutes": None if minutes is None else round(minutes, 1), "seeds": f"{evaluation.start}-{evaluation.stop - 1}",
            **calibration_row(results),
            "failed_seeds": [r.seed for r in results if not r.success],
            "command": "python benchmarks/post_training.py " + shlex.join(sys.argv[1:]),
        }
        print(json.dumps(row), flush=True)
        with (ROOT / "runs" / "post" / f"{args.task}.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
