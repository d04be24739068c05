"""The base-policy ladder: behaviour cloning from in-process scripted demonstrations, judged
by rollouts on training seeds (never the evaluation seeds 100000+), one change per rung.

    .venv/bin/python benchmarks/base_policy.py --task insertion --name privileged --privileged
    .venv/bin/python benchmarks/base_policy.py --task insertion --name vision --set model.image_size=[96,128]

Each run records (or reuses) the demonstrations in runs/demos/<task>/, trains BC with the
config (config/experiment-train.yaml's model, then --config, then --set), evaluates it on
seeds 500.. in process, and appends one JSON line to runs/ladder/<task>.jsonl: success
rate with its 95 % interval, stage rates, BC minutes, and the command. The BC loss curve
goes to runs/ladder/<task>/<name>/tensorboard/; BC saves its state there every 500 steps
(resume.pt), and the same command run again goes on from it. With --checkpoint a rung's model is
evaluated again under other chunk execution (--replan-every, --temporal-ensembling).
"""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def parse_override(text: str) -> tuple:
    key, _, value = text.partition("=")
    if not key or not _:
        raise SystemExit(f"--set {text!r}: expected key.path=value")
    return key.split("."), yaml.safe_load(value)


def apply_overrides(values: dict, overrides) -> dict:
    """`values` (a config as nested dicts) with each "key.path=value" of `overrides` set in it."""
    for path, value in map(parse_override, overrides):
        node = values
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return values


def build_config(args):
    from aloe.learning.config import TrainConfig, from_dict

    values = {}
    for file in args.config:
        values.update(yaml.safe_load(Path(file).read_text()) or {})
    values.update(algo="bc", pretrain_steps=args.steps, improve_steps=0, critic_steps=0, seed=args.seed)
    return from_dict(TrainConfig, apply_overrides(values, args.set))


def demo_seeds(count: int, held_out: range) -> list:
    """The first `count` seeds from 0 up that the evaluation does not use: seeds 0..count-1
    while count stays below the evaluation's first seed (500), then on past its last."""
    seeds, seed = [], 0
    while len(seeds) < count:
        if seed not in held_out:
            seeds.append(seed)
        seed += 1
    return seeds


def task_extras(task: str) -> int:
    """How many entries `Task.extra_state` adds at the end of the task's object state."""
    from aloe.sim.env import SimRobot

    robot = SimRobot()
    try:
        robot.reset(task, 0)
        return len(robot.task.extra_state(robot.data, robot.scene))
    finally:
        robot.close()


def train_rung(args) -> tuple:
    """Demonstrations, then BC; the checkpoint's path, BC minutes and demonstrations used."""
    import torch

    from aloe.data import demonstrations
    from aloe.learning.checkpoint import save_checkpoint
    from aloe.learning.config import to_dict
    from aloe.learning.data import fingerprint
    from aloe.learning.resume import ResumeFile
    from aloe.learning.train import train

    config = build_config(args)
    if args.privileged:  # the object state instead of the images
        config.model.use_images = False
    out = ROOT / "runs" / "ladder" / args.task / args.name
    out.mkdir(parents=True, exist_ok=True)
    seeds = demo_seeds(args.demos, held_out=range(args.first_seed, args.first_seed + args.episodes))
    demo_paths = demonstrations.record(args.task, seeds, ROOT / "runs" / "demos" / args.task, workers=args.workers)
    image_size = tuple(config.model.image_size) if config.model.use_images else None
    episodes = demonstrations.load(demo_paths, image_size, privileged=args.privileged, successes_only=not args.keep_failures,
                                   head_crop=tuple(config.model.head_crop))
    if args.privileged and args.without_task_extras:  # e.g. sorting's bins, then known only from the instruction
        kept = episodes[0].joints.shape[1] - task_extras(args.task)
        for episode in episodes:
            episode.joints = episode.joints[:, :kept]
    if args.privileged:
        state = episodes[0].joints.shape[1] - 14
        config.model.joint_dim, config.model.privileged_state_dim = 14 + state, state
    print(f"[ladder] {args.task}/{args.name}: {len(episodes)} of {args.demos} demonstrations, "
          f"{sum(len(e) for e in episodes)} steps", flush=True)
    # Beside other work use one thread: two threads sharing one free core wait on each other
    # at every parallel region (BC beside an evaluation here: 3.5 steps/s, against 9 with one).
    torch.set_num_threads(args.threads)
    # A run cut off (a killed job, a session's end) goes on from its last 500 steps.
    identity = {"config": to_dict(config), "data": fingerprint(episodes)}
    resume = ResumeFile.for_rank(out / "resume.pt", 500, identity, rank=0, world_size=1)
    start = time.monotonic()
    checkpoint = train(config, episodes, log_dir=out / "tensorboard", resume=resume)
    minutes = (time.monotonic() - start) / 60
    path = save_checkpoint(checkpoint, out / "model.safetensors")
    resume.remove()
    print(f"[ladder] BC {config.pretrain_steps} steps in {minutes:.1f} min", flush=True)
    return path, minutes, len(episodes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=("insertion", "drawer", "sorting"))
    parser.add_argument("--name", required=True, help="the rung's name (its folder under runs/ladder/<task>/)")
    parser.add_argument("--demos", type=int, default=100, help="demonstrations: seeds 0..N-1, skipping the evaluation's seeds (default 100)")
    parser.add_argument("--keep-failures", action="store_true", help="train on failed demonstrations too")
    parser.add_argument("--privileged", action="store_true", help="condition on the simulator's object state (diagnostic)")
    parser.add_argument("--without-task-extras", action="store_true",
                        help="with --privileged: leave out what the task adds to the object state (the lid's opening, "
                        "sorting's target bins, which the policy must then read from the image or the instruction)")
    parser.add_argument("--steps", type=int, default=8000, help="BC steps (default 8000)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--config", action="append", default=[], help="training config YAML (repeatable, later wins)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. model.horizon=25")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes, seeds 500.. (default 50)")
    parser.add_argument("--first-seed", type=int, default=500)
    parser.add_argument("--replan-every", type=int, default=25)
    parser.add_argument("--temporal-ensembling", action="store_true", help="every chunk covering a step votes (ACT)")
    parser.add_argument("--noise-scale", type=float, default=1.0, help="the flow's starting noise times this (0: its mean chunk)")
    parser.add_argument("--camera-every", type=int, default=0,
                        help="the policy sees the newest image of cameras shooting every N steps, as in the graph (0: rendered when it looks)")
    parser.add_argument("--workers", type=int, default=2, help="evaluation processes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in BC (1 when other work shares the machine)")
    parser.add_argument("--checkpoint", metavar="CKPT", action="append", help="evaluate this checkpoint instead of training one "
                        "(e.g. another --replan-every for a rung's model); given several times, the checkpoints act as one "
                        "ensemble (their flows' velocities averaged)")
    args = parser.parse_args()
    if args.first_seed >= 100000:
        raise SystemExit("the ladder chooses settings: use training seeds, not the evaluation seeds 100000+")

    from aloe.experiment.evaluation import Condition, evaluate, stage_rates, wilson_interval

    if args.checkpoint:
        path, minutes, used = [Path(c) for c in args.checkpoint], None, None
    else:
        path, minutes, used = train_rung(args)

    seeds = range(args.first_seed, args.first_seed + args.episodes)
    results = evaluate(path, [args.task], [Condition("train")], seeds, replan_every=args.replan_every, workers=args.workers,
                       temporal_ensembling=args.temporal_ensembling, noise_scale=args.noise_scale, camera_every=args.camera_every)
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, len(results))
    row = {
        "task": args.task, "name": args.name, "success": f"{successes}/{len(results)}", "low": round(low, 3), "high": round(high, 3),
        "stages": stage_rates(results), "bc_minutes": None if minutes is None else round(minutes, 1), "demos_used": used,
        "seeds": f"{seeds.start}-{seeds.stop - 1}", "replan_every": args.replan_every,
        "temporal_ensembling": args.temporal_ensembling, "noise_scale": args.noise_scale, "camera_every": args.camera_every,
        # Which scenes fail, to tell hard scenes (the same seeds fail across checkpoints) from
        # a policy's own variance.
        "failed_seeds": [r.seed for r in results if not r.success],
        "command": "python benchmarks/base_policy.py " + shlex.join(sys.argv[1:]),
    }
    print(json.dumps(row), flush=True)
    results = ROOT / "runs" / "ladder" / f"{args.task}.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)  # a --checkpoint run may be the first here
    with results.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
