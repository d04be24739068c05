"""A critic's calibration on recorded deployments of the policy it evaluates, offline: no
new rollouts. For each deployment file (evaluate(record_to=...), e.g. post_training.py's
deployments/ that the critic did *not* train on), at steps 0, --every, ... it asks the
critic for Q of the chunk the robot then executed (the data's) and of a fresh chunk of the
checkpoint's actor (what the TD target and V(s) use), and compares both with the discounted
return that followed. It prints, as JSON:

- at the episodes' starts: mean Q against mean return (bias) and Spearman's rank
  correlation, for the data's chunk and the actor's;
- by chunks to go (hops of H steps before the episode's end) in successful episodes: mean
  Q / mean return, which shows whether a shortfall compounds with the bootstrap hops;
- over all steps: the mean gap Q(actor's chunk) - Q(data's chunk). The deployments are the
  actor's own, so a critic that generalises puts the two level; one that has memorised the
  data's chunks does not.

    .venv/bin/python benchmarks/critic_calibration.py runs/post/insertion/NAME/critic.safetensors \\
        runs/post/insertion/round1-600demos-seed1-300dep/deployments --seeds 1200-1299
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np


def seed_range(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a checkpoint with a critic (aloe)")
    parser.add_argument("deployments", type=Path, help="folder of recorded episodes of that checkpoint's actor")
    parser.add_argument("--seeds", type=seed_range, required=True, help="FIRST-LAST: the episodes to judge on")
    parser.add_argument("--every", type=int, default=50, help="steps between judged chunks (default 50)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from aloe.experiment.evaluation import spearman
    from aloe.learning.data import discounted_sums
    from aloe.learning.policy import Policy

    torch.set_num_threads(args.threads)
    policy = Policy.load(args.checkpoint)
    if not policy.has_critic:
        raise SystemExit(f"{args.checkpoint}: no critic ({policy.checkpoint.algo})")
    horizon, gamma = policy.config.model.horizon, policy.config.data.gamma
    files = sorted(p for p in args.deployments.glob("*.npz") if int(p.stem.rsplit("-", 1)[-1]) in args.seeds)
    if not files:
        raise SystemExit(f"no deployments of seeds {args.seeds.start}-{args.seeds.stop - 1} in {args.deployments}")
    generator = torch.Generator().manual_seed(0)
    starts, hops, gaps = [], {}, []
    for path in files:
        with np.load(path, allow_pickle=False) as arrays:
            joints, actions, images, image_steps = arrays["joints"], arrays["actions"], arrays["images"], arrays["image_steps"]
            success, instruction = str(arrays["outcome"]) == "success", str(arrays["instruction"])
        rewards = np.zeros(len(actions))
        rewards[-1] = float(success)
        returns = discounted_sums(rewards, gamma)
        for step in range(0, len(actions), args.every):
            frame = images[max(int(np.searchsorted(image_steps, step, side="right")) - 1, 0)]
            data_chunk = actions[np.minimum(np.arange(step, step + horizon), len(actions) - 1)]
            actor_chunk = policy.act(joints[step], frame, instruction, generator)
            q_data = policy.q_values(joints[step], frame, instruction, data_chunk)["mean"]
            q_actor = policy.q_values(joints[step], frame, instruction, actor_chunk)["mean"]
            gaps.append(q_actor - q_data)
            if step == 0:
                starts.append((q_data, q_actor, returns[0]))
            if success:
                hops.setdefault((len(actions) - 1 - step) // horizon, []).append((q_data, q_actor, returns[step]))
        print(f"\r[calibration] {len(starts)}/{len(files)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    q_data, q_actor, measured = (np.array(column) for column in zip(*starts))
    row = {
        "checkpoint": str(args.checkpoint), "episodes": len(files), "succeeded": int(sum(r > 0 for r in measured)),
        "measured_return": round(float(measured.mean()), 4),
        "q_start_actor": round(float(q_actor.mean()), 4), "bias_actor": round(float(q_actor.mean() - measured.mean()), 4),
        "spearman_actor": round(spearman(q_actor, measured), 3),
        "q_start_data": round(float(q_data.mean()), 4), "bias_data": round(float(q_data.mean() - measured.mean()), 4),
        "spearman_data": round(spearman(q_data, measured), 3),
        "gap_actor_minus_data": round(float(np.mean(gaps)), 4),
        # chunks to go -> [mean Q(data chunk), mean Q(actor chunk), mean return], successes only
        "by_chunks_to_go": {hop: [round(float(np.mean(v)), 3) for v in zip(*values)] for hop, values in sorted(hops.items())},
    }
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
