"""How much of an episode's outcome its start decides: the ceiling of a critic's
start-of-episode calibration. Each seed (one start state) is rolled out --repeats times
with other draws of the flow's noise (`rollout(noise_seed=...)`), in process. A critic's
Q(s0) can at best predict a seed's expected return; the rest of the outcome is the
policy's own randomness, which no value of the start can rank. It prints, as JSON:

- per-seed success rates and the share of the outcome's variance between seeds (the
  largest R^2 any function of the start reaches against single episodes);
- the ceiling of Spearman's rank correlation against single episodes: each repeat's
  returns ranked against the mean return of the seed's other repeats (an estimate of the
  seed's expected return; a little below the exact ceiling, from its own noise);
- with a critic in the checkpoint: its mean pessimistic Q at the start against the mean
  return per seed (bias, Spearman), and against single episodes, the calibration target's
  reading.

    .venv/bin/python benchmarks/outcome_ceiling.py \\
        runs/post/insertion/round1-600demos-seed1-300dep/critic.safetensors --seeds 500-549 --repeats 8

One JSON line is also appended to runs/outcome_ceiling.jsonl.
"""
import argparse
import json
import multiprocessing
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Noise seeds of a repeat: far from the scene seeds, so repeat 0 is not the evaluation's episode.
NOISE_SEED_BASE = 1_000_003


def seed_range(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def run_job(job):
    from aloe.experiment.evaluation import Condition, _worker, rollout

    task, seed, repeat = job
    result = rollout(_worker["policy"], _worker["session"], task, seed, Condition("train"),
                     noise_seed=NOISE_SEED_BASE * (repeat + 1) + seed)
    return seed, repeat, result.measured_return, result.success, result.q_start


def leave_one_out_spearman(returns: np.ndarray) -> float:
    """Mean over repeats r of Spearman(the seeds' returns in r, their mean return in the others)."""
    from aloe.experiment.evaluation import spearman

    repeats = returns.shape[1]
    values = []
    for r in range(repeats):
        others = np.delete(returns, r, axis=1).mean(axis=1)
        value = spearman(others, returns[:, r])
        if not np.isnan(value):
            values.append(value)
    return float(np.mean(values)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--task", default="insertion")
    parser.add_argument("--seeds", type=seed_range, default=seed_range("500-549"), help="FIRST-LAST training seeds (default 500-549)")
    parser.add_argument("--repeats", type=int, default=8, help="episodes per seed, each with its own noise (default 8)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not args.checkpoint.exists():
        raise SystemExit(f"no checkpoint at {args.checkpoint}")
    if args.repeats < 2:
        raise SystemExit("--repeats must be at least 2: the ceiling compares repeats of a seed")

    from aloe.experiment.evaluation import _start_worker, spearman

    seeds = list(args.seeds)
    jobs = [(args.task, seed, repeat) for repeat in range(args.repeats) for seed in seeds]
    returns = np.full((len(seeds), args.repeats), np.nan)
    success = np.zeros((len(seeds), args.repeats), bool)
    q_start = np.full((len(seeds), args.repeats), np.nan)
    began = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, _start_worker, ([str(args.checkpoint)], (240, 320))) as pool:
        for done, (seed, repeat, measured, succeeded, q) in enumerate(pool.imap_unordered(run_job, jobs), 1):
            row = seeds.index(seed)
            returns[row, repeat], success[row, repeat], q_start[row, repeat] = measured, succeeded, q
            print(f"\r[ceiling] {done}/{len(jobs)} episodes, {time.monotonic() - began:.0f} s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    rate = success.mean(axis=1)
    overall = success.mean()
    between = float(rate.var() / (overall * (1 - overall))) if 0 < overall < 1 else float("nan")
    # The between-seed share above is biased up by each rate's own sampling noise: p(1-p)/R per seed.
    noise = float((rate * (1 - rate)).mean() / (args.repeats - 1) / (overall * (1 - overall))) if 0 < overall < 1 else float("nan")
    row = {
        "checkpoint": str(args.checkpoint), "task": args.task, "seeds": f"{seeds[0]}-{seeds[-1]}", "repeats": args.repeats,
        "success": f"{int(success.sum())}/{success.size}",
        "seeds_always": int((rate == 1).sum()), "seeds_never": int((rate == 0).sum()),
        "seeds_sometimes": int(((rate > 0) & (rate < 1)).sum()),
        "variance_between_seeds": round(between - noise, 3),
        "spearman_ceiling": round(leave_one_out_spearman(returns), 3),
        "minutes": round((time.monotonic() - began) / 60, 1),
    }
    if not np.isnan(q_start).all():
        q_seed, return_seed = q_start.mean(axis=1), returns.mean(axis=1)
        row.update(
            q_start=round(float(q_start.mean()), 4), measured_return=round(float(returns.mean()), 4),
            bias=round(float(q_start.mean() - returns.mean()), 4),
            spearman_q_seed_return=round(spearman(q_seed, return_seed), 3),
            spearman_q_single_episode=round(float(np.nanmean([spearman(q_start[:, r], returns[:, r]) for r in range(args.repeats)])), 3),
        )
    row["rates"] = [round(float(r), 3) for r in rate]
    row["command"] = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(json.dumps(row))
    out = ROOT / "runs" / "outcome_ceiling.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
