"""Evaluation: the statistics against known values, and seeded rollouts of a real checkpoint
in the simulator that reproduce and end with the task detector's verdict; an evaluation
killed mid-way resumes to the same results."""
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from aloe.cli import main, split_conditions
from aloe.experiment.evaluation import (EpisodeResult, EvaluationError, calibration, evaluate, parse_condition, ranks, read_episode_results,
                             spearman, stage_rates, summarize, wilson_interval)


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(8, 10)  # Wilson (1927) / Newcombe (1998): 0.490 to 0.943
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    low, high = wilson_interval(0, 50)
    assert low == 0.0 and 0.06 < high < 0.08  # an all-failure run still has an upper bound
    assert wilson_interval(50, 50)[1] == 1.0


def test_spearman_ranks_ties_and_monotone_relations():
    assert list(ranks([10, 20, 20, 5])) == [2.0, 3.5, 3.5, 1.0]
    x = np.linspace(0, 1, 20)
    assert spearman(x, np.exp(3 * x)) == pytest.approx(1.0)  # monotone, not linear: still 1
    assert spearman(x, -x**3) == pytest.approx(-1.0)
    assert math.isnan(spearman(x, np.zeros(20)))  # all returns equal: nothing to rank


def test_calibration_bins_pair_mean_q_with_mean_return():
    q = np.arange(10, dtype=float)
    bins = calibration(q, 2 * q, bins=2)
    assert bins == [(2.0, 4.0, 5), (7.0, 14.0, 5)]


def test_the_share_a_start_decides_and_the_ranking_ceiling_are_recovered_from_repeats():
    """Points that succeed with p 0.2 or 0.8 decide 0.36 of single outcomes' variance
    (0.09 / 0.25); eight repeats alone add 0.08 to the rates' spread, which the estimate
    takes out. Points alike decide nothing, and nothing can rank them."""
    from aloe.experiment.evaluation import decided_share, ranking_ceiling

    generator = np.random.default_rng(0)
    two_kinds = np.where(generator.random(2000) < 0.5, 0.2, 0.8)
    outcomes = generator.random((2000, 8)) < two_kinds[:, None]
    assert abs(decided_share(outcomes) - 0.36) < 0.03
    assert 0.45 < ranking_ceiling(outcomes.astype(float)) <= 0.6  # the Pearson bound is sqrt(0.36)
    alike = generator.random((2000, 8)) < 0.5
    assert abs(decided_share(alike)) < 0.03 and abs(ranking_ceiling(alike.astype(float))) < 0.05
    assert np.isnan(decided_share(np.ones((5, 4), bool)))


def test_the_share_a_first_chunk_decides_within_its_state_is_recovered_from_draws():
    """At each point half the chunks succeed with p 0.2 and half with 0.8 (around each
    point's own offset): the chunk decides about 0.36 of the variance within a point (0.09 of
    about 0.25), whatever the points' spread; chunks alike decide nothing."""
    from aloe.experiment.evaluation import chunk_decided_share

    generator = np.random.default_rng(0)
    offset = generator.uniform(-0.1, 0.1, (400, 1, 1))
    kinds = np.where(generator.random((400, 6, 1)) < 0.5, 0.2, 0.8)
    assert abs(chunk_decided_share(generator.random((400, 6, 4)) < kinds + offset) - 0.36) < 0.04
    alike = generator.random((400, 6, 4)) < 0.5 + offset
    assert abs(chunk_decided_share(alike)) < 0.03
    assert np.isnan(chunk_decided_share(np.zeros((5, 3, 4), bool)))


def test_stage_rates_count_each_stage_over_the_episodes():
    def episode(stages):
        return EpisodeResult("v", "drawer", "train", 0, stages == "opened+placed+closed", 40.0, 0.0, math.nan, math.nan, math.nan, stages)

    group = [episode("opened+placed+closed"), episode("opened"), episode(""), episode("opened+placed")]
    assert stage_rates(group) == "opened 0.75, placed 0.50, closed 0.25"


def test_conditions_parse_and_refuse_with_a_message():
    assert split_conditions("train,unseen,train+push:0.5,drop:0.2") == ["train", "unseen", "train+push:0.5,drop:0.2"]
    assert parse_condition("train+push:0.5,drop:0.2").disturbances == "push:0.5,drop:0.2"
    with pytest.raises(EvaluationError, match="variant must be one of"):
        parse_condition("fancy")
    with pytest.raises(EvaluationError, match="shove"):
        parse_condition("train+shove:0.5")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation") / "model.safetensors"
    subprocess.run([sys.executable, "-m", "aloe.cli", "train", "--algo", "aloe", "--synthetic", "4", "--config", "test/tiny_train.yaml",
                    "--no-progress", "--out", str(out)], check=True, capture_output=True)
    return out


def test_seeded_rollouts_reproduce_and_summaries_count_them_and_a_killed_evaluation_resumes(checkpoint, tmp_path, capsys):
    conditions = [parse_condition("train"), parse_condition("train+noise:1.0")]
    first = evaluate(checkpoint, ["insertion"], conditions, [100000, 100001])
    again = evaluate(checkpoint, ["insertion"], conditions, [100000, 100001], workers=2)
    assert [(r.condition, r.seed, r.success, r.sim_seconds) for r in first] == [(r.condition, r.seed, r.success, r.sim_seconds) for r in again]
    # float32 sums may round differently with where a process's tensors happen to lie in memory
    assert [r.q_start for r in first] == pytest.approx([r.q_start for r in again], rel=1e-5)
    assert all(0 < r.sim_seconds <= 60 and not math.isnan(r.q_start) for r in first)
    # Without success the measured return is 0; with one, gamma^(steps-1).
    assert all((r.measured_return > 0) == r.success for r in first)
    summaries = summarize(first)
    assert [(s.condition, s.episodes) for s in summaries] == [("train", 2), ("train+noise:1.0", 2)]
    assert all(s.successes == sum(r.success for r in first if r.condition == s.condition) for s in summaries)

    # A success reached every stage; the stages recorded are the task's, in its order.
    assert all(r.stages_reached == "grasped+inserted" for r in first if r.success)
    assert all(r.stages_reached in ("", "grasped", "inserted", "grasped+inserted") for r in first)

    # `aloe evaluate --out`, killed after its first episode (and mid-way through writing the
    # next row), then resumed: the episodes an uninterrupted run gives, each once.
    options = [str(checkpoint), "--task", "insertion", "--episodes", "2", "--conditions", "train", "--workers", "1"]
    out = tmp_path / "killed"
    journal = out / "episodes.journal.csv"
    process = subprocess.Popen([sys.executable, "-m", "aloe.cli", "evaluate", *options, "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (journal.exists() and len(journal.read_text().splitlines()) >= 2):
        time.sleep(0.05)  # the header and the first episode's row
    process.kill()
    process.wait()
    assert not (out / "episodes.csv").exists()
    version = journal.read_text().splitlines()[1].split(",")[0]
    with journal.open("a") as handle:
        handle.write(f"{version},insertion,train,100001,Tr")
    capsys.readouterr()
    assert main(["evaluate", *options, "--out", str(out), "--resume"]) == 0
    said = capsys.readouterr().err
    assert "resuming: 1 of 2 episodes already evaluated" in said
    assert ": 2/2 episodes" in said and ": 1/2 episodes" not in said  # one episode ran, not both again
    resumed = read_episode_results(out / "episodes.csv")
    key = lambda r: (r.checkpoint, r.task, r.condition, r.seed, r.success, r.sim_seconds, r.stages_reached)  # noqa: E731
    trained = [r for r in first if r.condition == "train"]
    assert [key(r) for r in resumed] == [key(r) for r in trained]
    assert [r.q_start for r in resumed] == pytest.approx([r.q_start for r in trained], rel=1e-5)
    assert not journal.exists()
    assert main(["evaluate", *options, "--resume"]) == 2  # nowhere to resume from


def test_a_list_of_checkpoints_is_evaluated_as_one_ensemble(checkpoint):
    # Two copies of one checkpoint: the ensemble's flow is the checkpoint's, so are its episodes.
    single = evaluate(checkpoint, ["insertion"], [parse_condition("train")], [100000])
    ensemble = evaluate([checkpoint, checkpoint], ["insertion"], [parse_condition("train")], [100000], workers=2)
    assert [(r.success, r.sim_seconds, r.stages_reached) for r in ensemble] == [(r.success, r.sim_seconds, r.stages_reached) for r in single]
    assert ensemble[0].checkpoint == f"{single[0].checkpoint}+{single[0].checkpoint}"
    assert math.isnan(ensemble[0].q_start)  # no critic: the members' are not combined


def test_a_recorded_deployment_is_the_episode_the_policy_drove(checkpoint, tmp_path):
    """`evaluate(record_to=...)` saves each rollout as training data: the commands executed
    at each step (replayed from the same scene they give the same joints), the cameras'
    frames at their rate, the outcome, and every step marked as the policy's."""
    from aloe.data.demonstrations import episode_path, load
    from aloe.sim.env import SimRobot

    [result] = evaluate(checkpoint, ["insertion"], [parse_condition("train")], [100003], camera_every=10, record_to=tmp_path)
    path = episode_path(tmp_path, "insertion", 100003, "train")
    [episode] = load([path], image_size=(48, 64))
    assert len(episode) == round(result.sim_seconds / 0.02)
    assert episode.outcome == ("success" if result.success else "failure")
    assert not episode.operator.any()
    np.testing.assert_array_equal(episode.image_steps, np.arange(0, len(episode), 10))
    assert episode.images.shape == (len(episode.image_steps), 3, 48, 64, 3) and episode.images.std() > 0
    with np.load(path) as saved:
        commands = saved["actions"]  # as executed; `load` gives training float32
    robot = SimRobot((48, 64))
    try:
        robot.reset("insertion", 100003)
        replayed = []
        for command in commands:
            replayed.append(robot.joint_positions())
            robot.step(command)
        outcome = "success" if robot.status().success else "failure"
    finally:
        robot.close()
    # The whole episode, contacts included: a command one step off would miss by the arms'
    # motion per step, and a rounded one would drift after the grasp.
    np.testing.assert_allclose(np.array(replayed), episode.joints, atol=1e-4)
    assert np.abs(np.diff(episode.joints, axis=0)).max() > 1e-3  # the policy moved the arms
    assert outcome == episode.outcome


def test_evaluate_refuses_a_missing_checkpoint_with_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.safetensors"), "--episodes", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err


def commands_sent(policy, **execution) -> np.ndarray:
    """The joint commands an insertion rollout of `policy` sends the simulator, step by step."""
    from aloe.experiment.evaluation import rollout
    from aloe.sim.session import SimSession

    session = SimSession(image_size=(48, 64), camera_rate_hz=0, scripted_operator=False)
    commanded = []
    original = session.tick
    session.tick = lambda command: commanded.append(np.array(command)) or original(command)
    try:
        rollout(policy, session, "insertion", 5, parse_condition("train"), **execution)
    finally:
        session.close()
    return np.array(commanded)


class ReachFarPolicy:
    """A policy that always asks for a pose 1 rad from home on every arm joint at once: the
    kind of jump an undertrained actor emits."""

    has_critic, version = False, "reach-far"

    def __init__(self):
        from aloe.learning.config import TrainConfig

        self.config = TrainConfig()

    def act(self, joints, images, instruction, generator=None, noise_scale=1.0):
        target = np.array(joints, dtype=np.float32)
        target[[1, 2, 8, 9]] += 1.0
        return np.repeat(target[None], 50, axis=0)


def test_rollouts_go_through_the_mux_safety_layer():
    from aloe.control.command_arbiter import ARM_MAX_VELOCITY

    moved = commands_sent(ReachFarPolicy(), replan_every=25)[:6, [1, 2, 8, 9]]  # the elbows reach their limit after that
    # The 1 rad jump arrives as a ramp at the mux's velocity limit (3 rad/s: 0.06 per step).
    np.testing.assert_allclose(np.diff(moved, axis=0), ARM_MAX_VELOCITY[1] * 0.02)


class NoisyPolicy(ReachFarPolicy):
    """Chunks that move the waist by the generator's draw: the command shows the noise."""

    version = "noisy"

    def act(self, joints, images, instruction, generator=None, noise_scale=1.0):
        import torch

        target = np.array(joints, dtype=np.float32)
        target[0] += 0.01 * float(torch.randn(1, generator=generator))
        return np.repeat(target[None], 50, axis=0)


def test_a_noise_seed_replays_the_same_start_with_other_draws_of_the_flow_noise():
    """`outcome_ceiling.py` rolls a seed out again with other noise: the scene's seed
    draws the same noise by default, another noise seed other noise."""
    default = commands_sent(NoisyPolicy())[:200, 0]
    assert np.array_equal(default, commands_sent(NoisyPolicy(), noise_seed=5)[:200, 0])  # the scene's seed is 5
    assert np.abs(default - commands_sent(NoisyPolicy(), noise_seed=6)[:200, 0]).max() > 1e-3


class AlternatingPolicy:
    """Chunks that hold the home pose on odd calls and the waist 0.01 rad further on even
    calls, so the command shows which chunks voted."""

    has_critic, version = False, "alternating"

    def __init__(self):
        from aloe.learning.config import TrainConfig

        self.config = TrainConfig()
        self.config.model.use_images = False
        self.calls = 0

    def act(self, joints, images, instruction, generator=None, noise_scale=1.0):
        from aloe.sim.scene import HOME

        self.calls += 1
        target = HOME.astype(np.float32).copy()
        target[0] += 0.01 * (self.calls % 2 == 0)
        return np.repeat(target[None], 50, axis=0)


@pytest.mark.parametrize("temporal_ensembling, waist_after_second_chunk", [(False, 0.01), (True, 0.005)])
def test_rollouts_execute_chunks_as_the_policy_node_does(temporal_ensembling, waist_after_second_chunk):
    from aloe.sim.scene import HOME

    waist = commands_sent(AlternatingPolicy(), replan_every=5, temporal_ensembling=temporal_ensembling)[:, 0] - HOME[0]
    np.testing.assert_allclose(waist[:5], 0.0, atol=1e-6)  # the first chunk alone
    # With ensembling the two chunks vote (weights exp(-0.01 i): nearly halves); without, the newest rules.
    assert waist[5] == pytest.approx(waist_after_second_chunk, abs=2e-4)


class LookingPolicy:
    """Turns the waists steadily and keeps every image set it is shown."""

    has_critic, version = False, "looking"

    def __init__(self):
        from aloe.learning.config import TrainConfig

        self.config = TrainConfig()
        self.seen = []

    def act(self, joints, images, instruction, generator=None, noise_scale=1.0):
        self.seen.append(images.copy())
        target = np.array(joints, dtype=np.float32)
        target[[0, 7]] += 0.5
        return np.repeat(target[None], 50, axis=0)


@pytest.mark.parametrize("camera_every", [0, 10])
def test_rollouts_can_show_the_policy_images_as_old_as_the_graphs_cameras_do(camera_every):
    """In the graph the cameras shoot every 10 steps and the policy replans when it will, so
    its images are up to 9 steps old; by default the rollout renders when the policy looks."""
    policy = LookingPolicy()
    commands_sent(policy, replan_every=5, camera_every=camera_every)
    changed = [not np.array_equal(before, after) for before, after in zip(policy.seen[:4], policy.seen[1:5])]
    # Replans at steps 0, 5, 10, 15, 20: a fresh render each time, or a new frame at 10 and 20 only.
    assert changed == ([True] * 4 if camera_every == 0 else [False, True, False, True])
