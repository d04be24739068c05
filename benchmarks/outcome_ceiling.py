"""How much of an episode's outcome its state at a step decides: the ceiling of a critic's
calibration there. Each seed (one start state) runs with one draw of the flow's noise up to a
branch step, then --repeats times on from there with other draws (the episode up to the
branch replays exactly: the same seeds give the same chunks and MuJoCo is deterministic).
A critic's Q at that step can at best predict the branch point's expected return; the rest
of the outcome is the policy's own later randomness, which no value of that state can rank.
Per branch step (`--branch-steps`, multiples of the 25-step replan period; 0 is the start,
where the calibration targets of issue 22 are read) it prints, as JSON:

- the share of the outcome's variance between branch points, corrected for the sampling
  noise of R repeats (the largest R^2 any function of the state reaches against single
  episodes; its square root bounds their correlation);
- the ceiling of Spearman's rank correlation against single episodes: each repeat's return
  ranked against the mean return of the point's other repeats (slightly below the exact
  ceiling, from the noise of that mean);
- with a critic in the checkpoint: its pessimistic Q of the chunk sampled at the branch
  (mean over the repeats) against the mean return from there (bias, Spearman), against
  single episodes, as the calibration target reads it, and within each point (the repeats'
  first chunks against their outcomes, averaged over the points whose outcomes differ):
  the ranking of chunks that an advantage needs.
With `--later-draws L` every repeat's first chunk is followed L times, each with other
noise from the next chunk on, which splits the outcome's variance within a point into what
the first chunk decides (the most an advantage of it can explain) and the later noise; the
figures then add that share, the ceiling of ranking a point's chunks against single
episodes, and the critic's ranking of the chunks against their mean outcomes. The figures
above are then read from each repeat's first draw.
Episodes that ended before a branch step are left out of that step's figures (counted).

    .venv/bin/python benchmarks/outcome_ceiling.py \\
        runs/post/insertion/round1-600demos-seed1-300dep/critic.safetensors --seeds 500-549 --repeats 10
    .venv/bin/python benchmarks/outcome_ceiling.py CKPT --repeats 6 --later-draws 3 --branch-steps 100

One JSON line per branch step is also appended to runs/outcome_ceiling.jsonl.
"""
import argparse
import json
import multiprocessing
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from critic_calibration import seed_range

ROOT = Path(__file__).resolve().parent.parent
REPLAN_EVERY = 25  # the policy node's default, which `rollout` uses
# Noise seeds: far from the scene seeds, so no run is an evaluation's episode.
BASE_NOISE = 1_000_003
BRANCH_NOISE = 2_000_003
LATER_NOISE = 3_000_017


class BranchingPolicy:
    """The worker's policy, with its noise reseeded at the chunk that starts the branch step,
    where it also asks the critic (if any) for Q of that chunk, and with `later_seed` again at
    the chunk after it."""

    def __init__(self, policy, branch_call: int, branch_seed: int, later_seed=None):
        self.policy, self.branch_call, self.branch_seed, self.later_seed = policy, branch_call, branch_seed, later_seed
        self.calls, self.q = 0, float("nan")
        self.config, self.version, self.has_critic = policy.config, policy.version, False

    def act(self, joints, images, instruction, generator=None, noise_scale=1.0):
        branching = self.calls == self.branch_call
        if branching:
            generator.manual_seed(self.branch_seed)
        elif self.calls == self.branch_call + 1 and self.later_seed is not None:
            generator.manual_seed(self.later_seed)
        self.calls += 1
        chunk = self.policy.act(joints, images, instruction, generator, noise_scale)
        if branching and self.policy.has_critic:
            self.q = self.policy.q_values(joints, images, instruction, chunk)["pessimistic"]
        return chunk


def run_job(job):
    from aloe.experiment.evaluation import Condition, _worker, rollout
    from aloe.sim.env import CONTROL_DT

    task, seed, branch_step, repeat, draw, draws = job
    later_seed = LATER_NOISE * (draw + 1) + 104729 * repeat + 7919 * branch_step + seed if draws > 1 else None
    policy = BranchingPolicy(_worker["policy"], branch_step // REPLAN_EVERY, BRANCH_NOISE * (repeat + 1) + 7919 * branch_step + seed, later_seed)
    result = rollout(policy, _worker["session"], task, seed, Condition("train"), REPLAN_EVERY, noise_seed=BASE_NOISE + seed)
    steps = round(result.sim_seconds / CONTROL_DT)
    if steps <= branch_step:  # ended before the branch: nothing was left to decide
        return seed, branch_step, repeat, draw, None, result.success, policy.q
    data = policy.config.data
    rewards = np.full(steps - branch_step, -data.time_cost)
    rewards[-1] += data.success_reward if result.success else 0.0
    measured = float(np.sum(rewards * data.gamma ** np.arange(len(rewards))))
    return seed, branch_step, repeat, draw, measured, result.success, policy.q


def summarize(returns: np.ndarray, success: np.ndarray, q: np.ndarray) -> dict:
    """One branch step's figures over the points (rows) that had not ended, R repeats each."""
    from aloe.experiment.evaluation import decided_share, ranking_ceiling, spearman

    repeats = returns.shape[1]
    rate = success.mean(axis=1)
    row = {"points": len(rate), "success": f"{int(success.sum())}/{success.size}",
           "points_always": int((rate == 1).sum()), "points_never": int((rate == 0).sum()),
           "variance_between_points": round(decided_share(success), 3), "spearman_ceiling": round(ranking_ceiling(returns), 3)}
    if not np.isnan(q).all():
        row.update(
            q=round(float(q.mean()), 4), measured_return=round(float(returns.mean()), 4),
            bias=round(float(q.mean() - returns.mean()), 4),
            spearman_q_point_return=round(spearman(q.mean(axis=1), returns.mean(axis=1)), 3),
            spearman_q_single_episode=round(float(np.nanmean([spearman(q[:, r], returns[:, r]) for r in range(repeats)])), 3),
            # Within a point the repeats differ only by the chunks sampled from the branch on:
            # Q of the first of them against the outcome is what an advantage has to rank.
            spearman_q_within_point=round(float(np.nanmean([spearman(q[i], returns[i]) for i in range(len(q))])), 3),
        )
    row["rates"] = [round(float(r), 2) for r in rate]
    return row


def summarize_chunks(returns: np.ndarray, success: np.ndarray, q: np.ndarray) -> dict:
    """Within the points: (points, chunks, draws) outcomes of each point's first chunks, each
    followed by other later noise; q (points, chunks) the critic's pessimistic Q of them."""
    from aloe.experiment.evaluation import chunk_decided_share, ranking_ceiling, spearman

    mixed = [i for i in range(len(success)) if 0 < success[i].mean() < 1]
    # A perfect Q of the chunk, ranked against single episodes from it, within a point.
    ceilings = [c for c in (ranking_ceiling(returns[i]) for i in mixed) if not np.isnan(c)]
    row = {"variance_decided_by_first_chunk": round(chunk_decided_share(success), 3), "points_mixed": len(mixed),
           "spearman_ceiling_within_point": round(float(np.mean(ceilings)), 3) if ceilings else float("nan")}
    if not np.isnan(q).all() and mixed:
        row["spearman_q_chunk_mean_return_within_point"] = round(float(np.nanmean([spearman(q[i], returns[i].mean(axis=1)) for i in mixed])), 3)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--task", default="insertion")
    parser.add_argument("--seeds", type=seed_range, default=seed_range("500-549"), help="FIRST-LAST training seeds (default 500-549)")
    parser.add_argument("--repeats", type=int, default=10, help="episodes from each branch point, each with its own noise (default 10)")
    parser.add_argument("--branch-steps", default="0", help=f"comma-separated steps, multiples of {REPLAN_EVERY} (default 0: the start)")
    parser.add_argument("--later-draws", type=int, default=1,
                        help="episodes after each repeat's first chunk, each with other later noise (default 1)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not args.checkpoint.exists():
        raise SystemExit(f"no checkpoint at {args.checkpoint}")
    if args.repeats < 2:
        raise SystemExit("--repeats must be at least 2: the ceiling compares repeats of a point")
    if args.later_draws < 1:
        raise SystemExit("--later-draws must be at least 1")
    try:
        branch_steps = [int(step) for step in args.branch_steps.split(",")]
    except ValueError:
        raise SystemExit(f"--branch-steps: comma-separated integers, got {args.branch_steps!r}") from None
    if any(step < 0 or step % REPLAN_EVERY for step in branch_steps):
        raise SystemExit(f"--branch-steps must be multiples of {REPLAN_EVERY} (a chunk starts there), got {args.branch_steps}")

    from aloe.experiment.evaluation import _start_worker

    seeds = list(args.seeds)
    draws = args.later_draws
    jobs = [(args.task, seed, step, repeat, draw, draws)
            for step in branch_steps for repeat in range(args.repeats) for draw in range(draws) for seed in seeds]
    shape = (len(branch_steps), len(seeds), args.repeats, draws)
    returns, q = np.full(shape, np.nan), np.full(shape, np.nan)
    success, ended = np.zeros(shape, bool), np.zeros(shape, bool)
    began = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, _start_worker, ([str(args.checkpoint)], (240, 320))) as pool:
        for done, (seed, step, repeat, draw, measured, succeeded, q_branch) in enumerate(pool.imap_unordered(run_job, jobs), 1):
            at = (branch_steps.index(step), seeds.index(seed), repeat, draw)
            success[at], q[at] = succeeded, q_branch
            if measured is None:
                ended[at] = True
            else:
                returns[at] = measured
            print(f"\r[ceiling] {done}/{len(jobs)} episodes, {time.monotonic() - began:.0f} s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    out = ROOT / "runs" / "outcome_ceiling.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for index, step in enumerate(branch_steps):
        live = ~ended[index].any(axis=(1, 2))  # the replay up to the branch is the same for every repeat
        row = {"checkpoint": str(args.checkpoint), "task": args.task, "seeds": f"{seeds[0]}-{seeds[-1]}", "repeats": args.repeats,
               "later_draws": draws, "branch_step": step, "ended_before": int((~live).sum()),
               **summarize(returns[index][live][..., 0], success[index][live][..., 0], q[index][live][..., 0])}
        if draws > 1:
            row.update(summarize_chunks(returns[index][live], success[index][live], q[index][live][..., 0]))
        row.update(minutes=round((time.monotonic() - began) / 60, 1), command=command)
        print(json.dumps(row))
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
