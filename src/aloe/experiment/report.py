"""The results folder of an experiment: every number as CSV, a markdown report with the
tables, and PNG plots (success per round per algorithm, robustness curves, critic
calibration, Q along recorded trajectories with the interventions shaded).

The report covers the steps finished so far: written at the end of a run, or by
`aloe experiment --report` while a long one is still going or after it was stopped."""
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from aloe.experiment.evaluation import calibration, read_episode_results, summarize, write_csv
from aloe.sim.env import CONTROL_DT


def collect(experiment, finished: set) -> list:
    """(round, algo, EpisodeResult) for every episode of the `finished` evaluations (round 0:
    the pre-trained BC policy)."""
    rows = []
    for task in experiment.config.tasks:
        for r in range(0, experiment.config.rounds + 1):
            for algo in experiment.config.algorithms:
                if f"{task}: round {r} {algo} evaluation" in finished:
                    path = experiment.evaluation_dir(task, r, algo) / "episodes.csv"
                    rows += [(r, algo, result) for result in read_episode_results(path)]
    return rows


def newest_round(experiment, finished: set, task: str, step: str):
    """The last round whose `step` ("aloe training", "aloe evaluation") is `finished`, or None."""
    done = [r for r in range(1, experiment.config.rounds + 1) if f"{task}: round {r} {step}" in finished]
    return max(done) if done else None


def strength(condition: str, kind: str):
    """The strength of disturbance `kind` in a train condition (0 for clean), else None."""
    variant, _, disturbances = condition.partition("+")
    if variant != "train":
        return None
    if not disturbances:
        return 0.0
    parts = dict(item.split(":") for item in disturbances.split(","))
    return float(parts[kind]) if list(parts) == [kind] else None


def write_report(experiment) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config, out = experiment.config, experiment.out
    state = json.loads(experiment.state_file.read_text())  # read once: a running experiment may add steps
    finished = set(state["finished"])
    rows = collect(experiment, finished)
    summaries = []
    for r in range(0, config.rounds + 1):
        for algo in config.algorithms:
            for s in summarize([result for rr, a, result in rows if rr == r and a == algo]):
                summaries.append({"round": r, "algo": algo, **asdict(s)})
    write_csv(out / "episodes.csv", [result for _, _, result in rows])
    write_csv(out / "summary.csv", summaries)

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    lines = ["# aloe experiment", "", f"Config: `config.yaml`; versions: `versions.yaml`; every number: `episodes.csv`, `summary.csv`.", ""]
    steps = [step.name for step in experiment.steps()]
    left = [name for name in steps if name not in finished]
    if finished:
        lines += [f"Wall-clock time of the {len(finished)} finished steps: {sum(state['seconds'][n] for n in finished) / 60:.1f} min "
                  f"on {os.cpu_count()} CPU cores; peak memory: {max(state['peak_memory_mb'][n] for n in finished)} MB (all "
                  "processes of a step together); per step: `state.json`.", ""]
    if left:
        lines += [f"**Partial: {len(steps) - len(left)} of {len(steps)} steps finished.** Not run yet: " + "; ".join(left) + ".", ""]
    for task in config.tasks:
        lines += [f"## {task}", "", f"{config.evaluation.episodes} episodes per condition and checkpoint; success with its 95 % "
                  "(Wilson) interval, throughput in successes per minute of simulated time, the fraction of episodes "
                  "that reached each stage of the task, and the critic's pessimistic Q at the episode start against the "
                  "measured return (rank correlation).", "",
                  "| round | algorithm | condition | success | 95 % interval | successes/min | stages | Q start | return | rank r |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for s in (s for s in summaries if s["task"] == task):
            lines.append(f"| {s['round']} | {s['algo']} | {s['condition']} | {s['successes']}/{s['episodes']} | "
                         f"{s['success_low']:.0%}–{s['success_high']:.0%} | {s['throughput']:.2f} | {s['stage_rates']} | {s['q_start_mean']:.3f} | "
                         f"{s['return_mean']:.3f} | {s['q_return_spearman']:.2f} |")
        lines.append("")

        # Success per round per algorithm (clean condition).
        figure, axes = plt.subplots(figsize=(5, 3.5))
        for algo in config.algorithms:
            points = [(s["round"], s["success_rate"], s["success_low"], s["success_high"]) for s in summaries
                      if s["task"] == task and s["algo"] == algo and s["condition"] == "train"]
            if points:
                x, y, low, high = map(np.array, zip(*points))
                axes.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=algo)
        axes.set(xlabel="round", ylabel="success (train variants)", ylim=(0, 1.05), title=task)
        if axes.containers:  # no round evaluated yet: an empty plot, no legend
            axes.legend()
        figure.tight_layout()
        figure.savefig(plots / f"{task}-success-per-round.png", dpi=120)
        plt.close(figure)

        # Robustness: success against disturbance strength, one curve per kind and algorithm,
        # in the last round (the one evaluated under disturbances).
        figure, axes = plt.subplots(figsize=(5, 3.5))
        for kind in ("push", "noise", "drop", "displace"):
            for algo in config.algorithms:
                points = sorted((strength(s["condition"], kind), s["success_rate"]) for s in summaries
                                if s["task"] == task and s["algo"] == algo and s["round"] == config.rounds
                                and strength(s["condition"], kind) is not None)
                if len(points) > 1:
                    axes.plot(*zip(*points), marker="o", label=f"{algo} {kind}")
        axes.set(xlabel="disturbance strength", ylabel="success", ylim=(0, 1.05), title=f"{task}: robustness")
        if axes.lines:
            axes.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(plots / f"{task}-robustness.png", dpi=120)
        plt.close(figure)

        # Calibration of ALOE's newest evaluated critic: Q at the start against the return measured after it.
        figure, axes = plt.subplots(figsize=(4, 4))
        calibrated = newest_round(experiment, finished, task, "aloe evaluation")
        results = [result for rr, a, result in rows if rr == calibrated and a == "aloe" and result.task == task]
        if results:
            bins = calibration([r.q_start for r in results], [r.measured_return for r in results])
            axes.plot([b[0] for b in bins], [b[1] for b in bins], marker="o", label="ALOE critic")
            low = min(min(b[0] for b in bins), min(b[1] for b in bins), 0.0)
            axes.plot([low, 1], [low, 1], color="grey", linestyle="--", label="calibrated")
        axes.set(xlabel="pessimistic Q at episode start", ylabel="measured return", title=f"{task}: calibration" + (f", round {calibrated}" if calibrated else ""))
        if results:
            axes.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(plots / f"{task}-calibration.png", dpi=120)
        plt.close(figure)

        for outcome, path in q_trajectory_plots(experiment, finished, task, plt).items():
            lines.append(f"Q along a recorded {outcome} episode: ![]({path.relative_to(out)})")
        lines += ["", f"![]({(plots / f'{task}-success-per-round.png').relative_to(out)}) "
                  f"![]({(plots / f'{task}-robustness.png').relative_to(out)}) "
                  f"![]({(plots / f'{task}-calibration.png').relative_to(out)})", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def q_trajectory_plots(experiment, finished: set, task: str, plt) -> dict:
    """For one success and one failure among the deployment bags of the newest round ALOE
    trained on: that critic's pessimistic Q along the 50 Hz episode with the ensemble band,
    operator control shaded."""
    from aloe.data.bag_dataset import bag_metadata
    from aloe.data.recording import aloe_typestore
    from aloe.data.replay import q_trajectory
    from aloe.learning.data import DataError

    round_ = newest_round(experiment, finished, task, "aloe training")
    if round_ is None:
        return {}
    critic = experiment.checkpoint(task, round_, "aloe")
    folder = experiment.bag_folders(task, round_)[-1]
    chosen = {}
    for bag in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            outcome = bag_metadata(bag).get("outcome")
        except DataError:
            continue
        if outcome in ("success", "failure") and outcome not in chosen:
            chosen[outcome] = bag
    store, written = aloe_typestore(), {}
    for outcome, bag in chosen.items():
        values, _, episode = q_trajectory(bag, critic, store, every=10)
        steps = np.array([step for step, _, _ in values])
        members = np.array([q["members"] for _, _, q in values])
        figure, axes = plt.subplots(figsize=(6, 3))
        seconds = steps * CONTROL_DT
        axes.fill_between(seconds, members.min(1), members.max(1), alpha=0.3, label="ensemble range")
        axes.plot(seconds, [q["pessimistic"] for _, _, q in values], label="pessimistic Q")
        operator = episode.operator
        starts = np.flatnonzero(np.diff(np.concatenate([[0], operator.astype(int)])) == 1)
        ends = np.flatnonzero(np.diff(np.concatenate([operator.astype(int), [0]])) == -1)
        for k, (start, end) in enumerate(zip(starts, ends)):
            axes.axvspan(start * CONTROL_DT, (end + 1) * CONTROL_DT, color="orange", alpha=0.2, label="operator" if k == 0 else None)
        axes.set(xlabel="episode time (s)", ylabel="Q", title=f"{task}: {bag.name} ({outcome}), round {round_} critic")
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = experiment.out / "plots" / f"{task}-q-trajectory-{outcome}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written[outcome] = path
    return written
