"""Evaluating checkpoints on the simulated tasks: success with a 95 % interval, throughput,
robustness to disturbances, generalisation to unseen objects, and how well the critic's Q
at an episode's start predicts the return the policy then gets (off-policy evaluation).

A checkpoint drives the simulator in this process, through the same chunk execution as the
policy node (`ChunkExecutor`, a new chunk every `replan_every` steps) and the same safety
layer as the command mux (`CommandArbiter` with its default joint and velocity limits:
without it a policy's jump whips the arm, and the simulator flings the objects off the
table in a second, which no graph run does). Inference is taken as instantaneous: on the robot it runs beside the 50 Hz stream (benchmarks/control.py
shows the stream keeps every step), so what is measured here is the policy itself.
Thousands of episodes then fit in an experiment; the deployment rounds, where timing and
takeovers matter, run through the real graph (`aloe record`).

Conditions are written `variant` or `variant+disturbances`: "train", "unseen",
"train+push:0.5", "train+noise:1.0,drop:0.2".
"""
import csv
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

import numpy as np

from aloe.control.chunking import Chunk, ChunkExecutor
from aloe.control.command_arbiter import ARM_LOWER, ARM_MAX_VELOCITY, ARM_UPPER, POLICY, Command, CommandArbiter, JointLimits
from aloe.sim.env import CONTROL_DT
from aloe.sim.scene import CAMERAS
from aloe.sim.tasks import TASKS, VARIANTS


class EvaluationError(ValueError):
    """Bad evaluation input (a condition, a checkpoint); the message says what is wrong."""


@dataclass(frozen=True)
class Condition:
    variant: str
    disturbances: str = ""

    @property
    def name(self) -> str:
        return self.variant + (f"+{self.disturbances}" if self.disturbances else "")


def parse_condition(text: str) -> Condition:
    from aloe.sim.disturbances import DisturbanceError, parse_disturbances

    variant, _, disturbances = text.strip().partition("+")
    if variant not in VARIANTS:
        raise EvaluationError(f"condition '{text}': the variant must be one of {', '.join(VARIANTS)} (then +disturbances)")
    try:
        parse_disturbances(disturbances)
    except DisturbanceError as error:
        raise EvaluationError(f"condition '{text}': {error}") from None
    return Condition(variant, disturbances)


@dataclass
class EpisodeResult:
    checkpoint: str  # version
    task: str
    condition: str
    seed: int
    success: bool
    sim_seconds: float
    measured_return: float  # discounted, with the rewards the critic was trained on
    q_start: float  # pessimistic Q of the first chunk (nan without a critic)
    q_start_mean: float
    q_start_std: float
    # The task's stages reached at some step, in order, "+"-joined ("grasped"): partial
    # progress that tells policies apart while whole successes are rare.
    stages_reached: str = ""


def rollout(policy, session, task: str, seed: int, condition: Condition, replan_every: int = 25,
            temporal_ensembling: bool = False, noise_scale: float = 1.0, camera_every: int = 0,
            recording=None, noise_seed: Optional[int] = None) -> EpisodeResult:
    """One episode of `policy` in `session` (a SimSession without scripted operator) until
    the task's detector ends it (success, failure or its time limit). The chunks are
    sampled and executed as the policy node's parameters of the same names say. The policy
    sees images rendered when it looks, or with `camera_every` N the newest of a camera
    that shoots every N steps, as the graph's cameras do (up to N-1 steps old). With
    `recording` (an `EpisodeRecording`) every step goes there too, images as rendered. The
    flow's noise is drawn from `noise_seed` (default: the scene's `seed`), so an episode is
    reproducible, and another noise seed replays the same start with other draws."""
    import torch

    scene = session.reset(task, seed, condition.variant, condition.disturbances)
    session.begin_episode()
    executor = ChunkExecutor(replan_every, temporal_ensembling)
    mux = CommandArbiter(JointLimits(ARM_LOWER * 2, ARM_UPPER * 2, ARM_MAX_VELOCITY * 2), timeout_s=0.2)
    generator = torch.Generator().manual_seed(seed if noise_seed is None else noise_seed)
    q_start, chunk_id, steps, outcome = None, 0, 0, None
    stage_names = session.robot.task.stage_names
    model = policy.config.model
    reached, images = set(), None
    while outcome is None:
        now = steps * CONTROL_DT
        measured = session.robot.joint_positions()
        mux.observe(measured, now)
        looks = executor.wants_observation()
        shot = model.use_images and (steps % camera_every == 0 if camera_every else looks)
        if shot:
            rendered = session.robot.render()
            images = np.stack([rendered[camera] for camera in CAMERAS])
        if recording is not None:
            recording.before_step(session.robot, images if shot else None)
        if looks:
            joints = measured.astype(np.float32)
            if model.privileged_state_dim:  # the sim-only diagnostic: object state beside the joints
                # (its first privileged_state_dim entries: a rung may leave out the task's extras at the end)
                joints = np.concatenate([joints, session.robot.object_state()[:model.privileged_state_dim]])
            actions = policy.act(joints, images, scene.instruction, generator, noise_scale)
            if policy.has_critic and q_start is None:  # the critic's estimate of the episode, before it runs
                q_start = policy.q_values(joints, images, scene.instruction, actions)
            chunk_id += 1
            executor.add(Chunk(actions, chunk_id, policy.version, executor.step))
        command = executor.tick()
        if command is not None:
            mux.offer(Command(command.positions, POLICY), now)
        tick = session.tick(mux.decide(now, CONTROL_DT).command.positions)
        outcome = tick.outcome
        reached.update(tick.stages_done)
        if recording is not None:
            recording.after_step(session.robot, [name in tick.stages_done for name in stage_names])
        steps += 1
    session.end_episode()
    success = outcome[0] == "success"
    data = policy.config.data
    # The return the critic estimates: -time_cost per step, success_reward on the last one.
    rewards = np.full(steps, -data.time_cost)
    rewards[-1] += data.success_reward if success else 0.0
    measured = float(np.sum(rewards * data.gamma ** np.arange(steps)))
    nan = float("nan")
    return EpisodeResult(
        policy.version, task, condition.name, seed, success, steps * CONTROL_DT, measured,
        q_start["pessimistic"] if q_start else nan, q_start["mean"] if q_start else nan, q_start["std"] if q_start else nan,
        "+".join(name for name in stage_names if name in reached),
    )


# --- statistics ------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple:
    """95 % Wilson score interval of a success rate (sound at 0 % and 100 %, unlike p ± z·se)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def ranks(values) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    result = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        result[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(a, b) -> float:
    """Rank correlation; nan when either side is constant (nothing to rank)."""
    ra, rb = ranks(a), ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def decided_share(success) -> float:
    """Share of single episodes' success variance that their starting points decide, from
    (points, repeats) outcomes: the spread of the points' success rates less what R repeats
    add by chance (p(1-p)/R in expectation), over the overall p(1-p). It bounds the R^2 of
    any prediction made at the points; nan when every episode ends alike."""
    success = np.asarray(success, dtype=float)
    repeats = success.shape[1]
    rate, overall = success.mean(axis=1), success.mean()
    if not 0 < overall < 1 or repeats < 2:
        return float("nan")
    noise = (rate * (1 - rate)).mean() / (repeats - 1)
    return float((rate.var() - noise) / (overall * (1 - overall)))


def chunk_decided_share(success) -> float:
    """Share of the outcome's variance within a state that the first chunk sampled there
    decides, from (points, chunks, draws) outcomes: each point's chunks each followed by
    `draws` episodes with other later noise. Per point, the spread of the chunks' success
    rates less what the draws add by chance, summed over the points, over the outcome's
    variance at the points summed. It bounds what an advantage of that chunk can explain
    (the R^2 of any function of the chunk, within a state); nan when every point ends alike."""
    success = np.asarray(success, dtype=float)
    chunks, draws = success.shape[1:]
    if draws < 2:
        return float("nan")
    rate = success.mean(axis=2)
    point = success.mean(axis=(1, 2))
    # The variance of the chunks the policy samples there (ddof 1: these C are a sample of them).
    between = rate.var(axis=1, ddof=1) - (rate * (1 - rate)).mean(axis=1) / (draws - 1)
    # The outcome's variance at the point: around these C chunks' mean, plus that mean's own spread.
    total = point * (1 - point) * chunks * draws / (chunks * draws - 1) + between / chunks
    return float(between.sum() / total.sum()) if total.sum() > 0 else float("nan")


def ranking_ceiling(returns) -> float:
    """Spearman's rank correlation a prediction made at the points can reach against single
    episodes, estimated from (points, repeats) returns: the mean over repeats r of the
    correlation of r's returns with the points' mean over the other repeats (a little below
    the exact ceiling, from the noise of that mean)."""
    returns = np.asarray(returns, dtype=float)
    values = [spearman(np.delete(returns, r, axis=1).mean(axis=1), returns[:, r]) for r in range(returns.shape[1])]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def calibration(q, returns, bins: int = 5) -> list:
    """[(mean Q, mean measured return, count)] over equal-count bins of Q."""
    q, returns = np.asarray(q, dtype=float), np.asarray(returns, dtype=float)
    order = np.argsort(q)
    return [(float(q[part].mean()), float(returns[part].mean()), len(part))
            for part in np.array_split(order, min(bins, len(q))) if len(part)]


@dataclass
class Summary:
    checkpoint: str
    task: str
    condition: str
    episodes: int
    successes: int
    success_rate: float
    success_low: float  # 95 % Wilson interval
    success_high: float
    throughput: float  # successes per minute of simulated time
    q_start_mean: float
    return_mean: float
    q_return_spearman: float
    q_return_bias: float  # mean(Q at start - measured return): > 0 is optimistic
    stage_rates: str  # "grasped 0.12, inserted 0.00": fraction of episodes reaching each stage


def stage_rates(group: list) -> str:
    """Fraction of the episodes that reached each stage of their task, in the task's order."""
    names = TASKS[group[0].task].stage_names
    reached = [set(filter(None, r.stages_reached.split("+"))) for r in group]
    return ", ".join(f"{name} {sum(name in r for r in reached) / len(group):.2f}" for name in names)


def summarize(results: list) -> list:
    groups = {}
    for r in results:
        groups.setdefault((r.checkpoint, r.task, r.condition), []).append(r)
    summaries = []
    for (checkpoint, task, condition), group in groups.items():
        successes = sum(r.success for r in group)
        low, high = wilson_interval(successes, len(group))
        q = np.array([r.q_start for r in group])
        returns = np.array([r.measured_return for r in group])
        has_q = not np.isnan(q).any()
        summaries.append(Summary(
            checkpoint, task, condition, len(group), successes, successes / len(group), low, high,
            successes / (sum(r.sim_seconds for r in group) / 60.0),
            float(q.mean()) if has_q else float("nan"), float(returns.mean()),
            spearman(q, returns) if has_q else float("nan"), float((q - returns).mean()) if has_q else float("nan"),
            stage_rates(group),
        ))
    return summaries


# --- running many episodes -------------------------------------------------------------------
_worker = {}


def _start_worker(checkpoints: list, image_size: tuple) -> None:
    import torch

    from aloe.learning.policy import Policy, PolicyEnsemble
    from aloe.sim.session import SimSession

    torch.set_num_threads(1)  # one process per core does better than threads fighting over two
    # Several checkpoints: one policy from their averaged flow (a diagnostic).
    paths = [Path(p) for p in checkpoints]
    _worker["policy"] = Policy.load(paths[0]) if len(paths) == 1 else PolicyEnsemble.load(paths)
    # No images in the ticks: the rollout renders when the policy looks, every replan_every steps.
    _worker["session"] = SimSession(image_size=image_size, camera_rate_hz=0, scripted_operator=False)


def _run_one(job) -> EpisodeResult:
    from aloe.data.demonstrations import EpisodeRecording, episode_path, save_recording

    task, seed, condition, replan_every, temporal_ensembling, noise_scale, camera_every, record_to = job
    recording = EpisodeRecording() if record_to else None
    result = rollout(_worker["policy"], _worker["session"], task, seed, condition, replan_every, temporal_ensembling, noise_scale,
                     camera_every, recording)
    if recording is not None:
        outcome = "success" if result.success else "failure"
        arrays = recording.arrays(outcome, _worker["session"].robot.scene.instruction, task, seed, condition.name,
                                  operator=False, render_size=_worker["session"].robot.image_size)
        save_recording(arrays, episode_path(record_to, task, seed, condition.name))
    return result


def episode_key(result: EpisodeResult) -> tuple:
    return result.checkpoint, result.task, result.condition, result.seed


def evaluate(checkpoint, tasks, conditions, seeds, replan_every: int = 25, workers: int = 1,
             image_size=(240, 320), progress=None, skip=frozenset(), on_result=None, temporal_ensembling: bool = False,
             noise_scale: float = 1.0, camera_every: int = 0, record_to=None) -> list:
    """Every (task, condition, seed) episode of one checkpoint (or of a list of them acting as
    one `PolicyEnsemble`) but those in `skip` (as (task, condition name, seed)), in that
    order; `on_result(result)` as each ends and `progress(done, total)`, both counting the
    skipped ones as done. With `record_to` (a folder) each episode is also saved there as the
    policy's deployment, in the demonstrations' format (`aloe.data.demonstrations.load`)."""
    import multiprocessing

    checkpoints = [str(p) for p in (checkpoint if isinstance(checkpoint, (list, tuple)) else [checkpoint])]
    if record_to is not None:
        Path(record_to).mkdir(parents=True, exist_ok=True)
    every = [(task, seed, condition, replan_every, temporal_ensembling, noise_scale, camera_every, record_to)
             for task in tasks for condition in conditions for seed in seeds]
    jobs = [job for job in every if (job[0], job[2].name, job[1]) not in skip]
    results = []

    def finished(result):
        results.append(result)
        if on_result:
            on_result(result)
        if progress:
            progress(len(every) - len(jobs) + len(results), len(every))

    if not jobs:
        return results
    if workers <= 1:
        _start_worker(checkpoints, image_size)
        try:
            for job in jobs:
                finished(_run_one(job))
        finally:
            _worker.pop("session").close()
        return results
    context = multiprocessing.get_context("spawn")  # no forked rclpy or MuJoCo state
    with context.Pool(min(workers, len(jobs)), _start_worker, (checkpoints, image_size)) as pool:
        for result in pool.imap(_run_one, jobs):
            finished(result)
    return results


class EpisodeJournal:
    """Each episode's result appended to a CSV as it ends, so that an evaluation cut off by a
    crash or a stop goes on where it was (`aloe evaluate --resume`): episodes are seeded and
    reproducible, so the resumed result is the one an uninterrupted run gives."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> list:
        """The results recorded, less a last row a crash cut off."""
        if not self.path.exists():
            return []
        text = self.path.read_text()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        return [result_from_row(row) for row in csv.DictReader(text.splitlines())]

    def start(self, results: list) -> None:
        """A fresh journal holding `results` (those of an earlier run kept by a resume)."""
        write_csv(self.path, results, columns=[field.name for field in fields(EpisodeResult)])

    def append(self, result: EpisodeResult) -> None:
        row = asdict(result)
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, list(row)).writerow(row)
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def write_csv(path: Path, rows: list, columns=None) -> None:
    """Rows (dataclasses or dicts) to CSV, written beside and renamed: an interrupted run
    leaves no half file. Without rows, nothing is written unless `columns` gives a header."""
    if not rows and columns is None:
        return
    dicts = [row if isinstance(row, dict) else asdict(row) for row in rows]
    temporary = path.with_suffix(path.suffix + ".partial")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns or list(dicts[0]))
        writer.writeheader()
        writer.writerows(dicts)
    os.replace(temporary, path)


def result_from_row(r: dict) -> EpisodeResult:
    return EpisodeResult(r["checkpoint"], r["task"], r["condition"], int(r["seed"]), r["success"] == "True",
                         float(r["sim_seconds"]), float(r["measured_return"]), float(r["q_start"]),
                         float(r["q_start_mean"]), float(r["q_start_std"]), r.get("stages_reached", ""))


def read_episode_results(path: Path) -> list:
    with path.open(newline="") as handle:
        return [result_from_row(row) for row in csv.DictReader(handle)]
