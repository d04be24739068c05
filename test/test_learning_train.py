"""`aloe train` trains every algorithm end to end, alone and under torchrun (DDP over gloo)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aloe.learning import synthetic
from aloe.learning.checkpoint import load_checkpoint
from aloe.learning.policy import Policy

TINY = str(Path(__file__).parent / "tiny_train.yaml")


def aloe_train(*args, launcher=(sys.executable, "-m", "aloe.cli")):
    return subprocess.run([*launcher, "train", "--config", TINY, "--no-progress", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("algo, has_critic, has_value", [("aloe", True, False), ("bc", False, False), ("ibc", False, False), ("mc", False, True)])
def test_each_algorithm_trains_and_its_checkpoint_drives_the_robot(tmp_path, algo, has_critic, has_value):
    out = tmp_path / "model.safetensors"
    result = aloe_train("--algo", algo, "--synthetic", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stderr
    assert any((tmp_path / "tensorboard").iterdir())
    checkpoint = load_checkpoint(out)
    assert checkpoint.algo == algo
    assert (checkpoint.model.critic is not None, checkpoint.model.value is not None) == (has_critic, has_value)
    # What the weights favour is logged where they depend on the data (bc weighs every chunk 1).
    assert any(key.startswith("improve/relative_weight_") for key in checkpoint.metrics) == (algo != "bc")
    episode = synthetic.dataset(1, seed=9, image_size=(24, 32))[0]
    policy = Policy(checkpoint)
    chunk = policy.act(episode.joints[0], episode.images[0], episode.instruction)
    assert chunk.shape == (10, 14) and np.all(np.isfinite(chunk))
    if has_critic:
        q = policy.q_values(episode.joints[0], episode.images[0], episode.instruction, chunk)
        assert len(q["members"]) == 3 and q["pessimistic"] <= q["mean"]


def test_post_training_round_starts_from_a_checkpoint(tmp_path):
    first, second = tmp_path / "bc.safetensors", tmp_path / "aloe.safetensors"
    assert aloe_train("--algo", "bc", "--synthetic", "4", "--out", str(first)).returncode == 0
    result = aloe_train("--algo", "aloe", "--synthetic", "4", "--init", str(first), "--out", str(second))
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(second).parent == load_checkpoint(first).version


def test_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("critic:\n  pessimism: optimistic\n")
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text("pretrain_lr_schedule: step\n")
    stride = tmp_path / "stride.yaml"
    stride.write_text("pretrain_stride: -1\n")
    for args, message in (
        (["--synthetic", "2", "--init", str(tmp_path / "none.safetensors")], "does not exist"),
        (["--synthetic", "2", "--config", str(bad)], "pessimism must be 'min' or 'mean_std'"),
        (["--synthetic", "2", "--config", str(schedule)], "pretrain_lr_schedule must be one of constant, cosine"),
        (["--synthetic", "2", "--config", str(stride)], "pretrain_stride must be >= 0 (0: data.stride), got -1"),
    ):
        result = subprocess.run([sys.executable, "-m", "aloe.cli", "train", *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_runs_unchanged_under_torchrun(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "model.safetensors"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "aloe.cli", "train", "--config", TINY,
         "--no-progress", "--algo", "aloe", "--synthetic", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes" in result.stderr and result.stderr.count("wrote ") == 1  # rank 0 alone writes
    assert load_checkpoint(out).algo == "aloe"


def test_weight_shares_say_which_chunks_the_improvement_favours():
    import torch

    from aloe.learning.config import DataConfig
    from aloe.learning.data import chunk_transitions
    from aloe.learning.train import weight_shares

    episodes = synthetic.dataset(12, seed=2, image_size=(8, 8))
    transitions = chunk_transitions(episodes, 10, DataConfig(stride=5))
    operator = transitions.intervention.astype(bool)
    assert operator.any() and not operator.all()
    # Operator chunks weighted 5, the rest 1 (ibc's weights): each group's mean over the mean of all.
    weights = torch.where(torch.as_tensor(operator), 5.0, 1.0)
    shares = weight_shares(weights, transitions, episodes)
    mean = weights.mean().item()
    assert shares["operator"] == pytest.approx(5 / mean) and shares["policy"] == pytest.approx(1 / mean)
    outcome = np.array([e.outcome for e in episodes])[transitions.observations[transitions.obs, 0]]
    assert shares["success"] == pytest.approx(weights.numpy()[outcome == "success"].mean() / mean)
    assert weight_shares(torch.ones(len(transitions)), transitions, episodes) == pytest.approx(dict.fromkeys(shares, 1.0))


def test_instruction_tokens_train_every_part_and_reach_the_chunk(tmp_path):
    """With `model.language_tokens` the policy attends over the instruction's token vectors:
    BC, the critic and the improvement train through them, the checkpoint round-trips, and
    the instruction changes the chunk drawn from the same noise."""
    import torch
    import yaml

    from aloe.learning.checkpoint import save_checkpoint
    from aloe.learning.config import TrainConfig, from_dict
    from aloe.learning.train import train

    tiny = yaml.safe_load(Path(TINY).read_text())
    config = from_dict(TrainConfig, {**tiny, "algo": "aloe", "model": {**tiny["model"], "language_tokens": True}})
    episodes = synthetic.dataset(4, seed=0, image_size=config.model.image_size)
    assert len({e.instruction for e in episodes}) > 1
    path = save_checkpoint(train(config, episodes, progress=False), tmp_path / "model.safetensors")
    policy = Policy(load_checkpoint(path))
    assert policy.config.model.language_tokens and policy.has_critic
    episode = episodes[0]
    chunks = [policy.act(episode.joints[0], episode.images[0], instruction, generator=torch.Generator().manual_seed(3))
              for instruction in ("reach the red target", "reach the blue target", "reach the red target")]
    assert chunks[0].shape == (10, 14) and np.array_equal(chunks[0], chunks[2])
    assert not np.allclose(chunks[0], chunks[1])


def test_pre_training_clones_the_episodes_that_succeeded():
    """Each episode also failed once, seeing the same, with commands 3 units off: cloning
    every episode draws chunks from both, about 1.5 off on average; with `pretrain_successes_only` (the
    default) the chunk stays on the successes' commands."""
    import torch
    import yaml

    from aloe.learning.config import TrainConfig, from_dict
    from aloe.learning.train import train

    import copy

    successes = synthetic.dataset(3, seed=3, image_size=(24, 32))
    for episode in successes:
        episode.outcome = "success"
    failures = [copy.deepcopy(e) for e in successes]
    for episode in failures:
        episode.outcome, episode.actions = "failure", episode.actions + 3.0
    episodes = successes + failures
    tiny = yaml.safe_load(Path(TINY).read_text())
    offsets = {}
    for successes_only in (True, False):
        config = from_dict(TrainConfig, {**tiny, "algo": "bc", "pretrain_steps": 150, "improve_steps": 0,
                                         "pretrain_successes_only": successes_only})
        policy = Policy(train(config, episodes, progress=False))
        offsets[successes_only] = np.mean([
            (policy.act(e.joints[0], e.images[0], e.instruction, generator=torch.Generator().manual_seed(seed))
             - e.actions[:config.model.horizon]).mean()
            for e in successes for seed in range(8)])  # chunks drawn from both modes, when there are two
    assert abs(offsets[True]) < 0.5 and offsets[False] > offsets[True] + 0.5, offsets


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_pre_training_follows_its_learning_rate_schedule(schedule):
    """The optimizer's rate at the last of 40 steps: `lr` when constant; near 0 on the cosine
    (0.5 * (1 + cos(pi * 39 / 40)) = 0.00154 of `lr`)."""
    import yaml

    from aloe.learning.algorithm import scheduled_lr
    from aloe.learning.config import TrainConfig, from_dict
    from aloe.learning.train import train

    assert [scheduled_lr(1.0, step, 40, "cosine") for step in (0, 20, 40)] == pytest.approx([1.0, 0.5, 0.0])
    tiny = yaml.safe_load(Path(TINY).read_text())
    config = from_dict(TrainConfig, {**tiny, "algo": "bc", "pretrain_steps": 40, "improve_steps": 0,
                                     "pretrain_lr_schedule": schedule})
    last = train(config, synthetic.dataset(2, seed=4, image_size=(24, 32)), progress=False).metrics["pretrain/lr"]
    assert last == pytest.approx(config.lr if schedule == "constant" else 0.00154 * config.lr, rel=0.01)


def test_pre_training_can_clone_every_step_with_the_newest_frame_at_or_before_it():
    """The policy node replans between camera frames, so its images are up to a frame old;
    with `pretrain_stride` 1, BC clones a chunk at every step, each with the frame the robot
    had then, and keeps each frame once (every step's own copy would not fit in memory)."""
    import yaml

    from aloe.learning.config import TrainConfig, from_dict
    from aloe.learning.data import Normalizer, chunk_transitions
    from aloe.learning.train import Logger, Runtime, _chunk_tensors, _cloned, build_observations

    import torch

    episodes = synthetic.dataset(2, seed=5, image_size=(24, 32))
    for episode in episodes:
        episode.outcome = "success"
    tiny = yaml.safe_load(Path(TINY).read_text())
    normalizer = Normalizer.fit(episodes)
    runtime = Runtime(torch.device("cpu"))
    cloned = {}
    for stride in (0, 1):
        config = from_dict(TrainConfig, {**tiny, "algo": "bc", "pretrain_stride": stride})
        transitions = chunk_transitions(episodes, config.model.horizon, config.data)
        observations = build_observations(episodes, transitions, normalizer, config, runtime.device)
        tensors = _chunk_tensors(transitions, normalizer, runtime.device)
        cloned[stride] = _cloned(episodes, transitions, observations, tensors, normalizer, config, runtime,
                                 Logger(runtime, 1, progress=False))
    every = sum(len(e) for e in episodes)  # all of them end in success: chunks run past the end, masked
    observations, obs, actions, mask = cloned[1]
    assert len(obs) == every and len(cloned[0][1]) == sum(-(-len(e) // 5) for e in episodes)
    assert len(observations.frames) == sum(len(e.images) for e in episodes)
    row = 0
    for episode in episodes:
        for step in range(len(episode)):
            joints, images, _ = observations.rows(obs[row : row + 1])
            frame = episode.images[episode.image_index(step)]
            assert np.array_equal(images[0].numpy(), frame), (step, episode.image_steps[:3])
            np.testing.assert_allclose(joints[0].numpy(), normalizer.joints(episode.joints[step : step + 1])[0], atol=1e-6)
            np.testing.assert_allclose(actions[row, 0].numpy(), normalizer.actions(episode.actions[step : step + 1])[0], atol=1e-5)
            row += 1
