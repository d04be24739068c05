"""Interrupted BC pre-training resumes where it was and ends with the same weights."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from aloe.learning.checkpoint import load_checkpoint
from aloe.learning.resume import ResumeFile

TINY = str(Path(__file__).parent / "tiny_train.yaml")


def sgd_run(resume: ResumeFile, steps: int, stop_at=None):
    """A small model trained by Adam on batches and noise from two RNGs, as pre-training is."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    batches = torch.Generator().manual_seed(1)
    start = resume.load({"model": model}, optimizer, batches, say=lambda line: None)
    for step in range(start, steps):
        if step == stop_at:
            return model
        x = torch.randn(8, 4, generator=batches) + torch.randn(8, 4)  # the global RNG too
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        resume.maybe_save(step + 1, {"model": model}, optimizer, batches)
    return model


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    whole = sgd_run(ResumeFile(tmp_path / "whole.pt", every=0, identity={"run": 1}), steps=30)
    interrupted = ResumeFile(tmp_path / "state.pt", every=10, identity={"run": 1})
    sgd_run(interrupted, steps=30, stop_at=25)  # stops after the save at step 20
    assert torch.load(interrupted.path, weights_only=True)["step"] == 20
    resumed = sgd_run(interrupted, steps=30)
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    # Another run's state (other config or data) is set aside with a message, not used.
    messages = []
    other = ResumeFile(interrupted.path, every=10, identity={"run": 2})
    assert other.load({"model": torch.nn.Linear(4, 2)}, torch.optim.Adam(whole.parameters()), torch.Generator(),
                      say=messages.append) == 0
    assert "belongs to another run" in messages[-1]
    interrupted.path.write_bytes(b"torn")
    assert interrupted.load({}, None, None, say=messages.append) == 0 and "cannot read" in messages[-1]
    interrupted.remove()
    assert not interrupted.path.exists()


def test_a_state_saved_before_a_setting_existed_resumes_while_the_setting_keeps_its_default(tmp_path):
    from aloe.learning.config import ModelConfig, TrainConfig, to_dict

    older = to_dict(TrainConfig())
    del older["pretrain_lr_schedule"], older["model"]["joint_noise"]  # settings the older code lacked
    saved = ResumeFile(tmp_path / "state.pt", every=10, identity={"config": older, "data": "abc"})
    sgd_run(saved, steps=30, stop_at=15)
    settings = lambda **changes: {"config": to_dict(TrainConfig(**changes)), "data": "abc"}  # noqa: E731
    for identity, resumes in ((settings(), True), (settings(pretrain_lr_schedule="cosine"), False),
                              (settings(model=ModelConfig(joint_noise=0.1)), False), (settings(lr=1e-3), False),
                              ({**settings(), "data": "xyz"}, False)):
        messages = []
        step = ResumeFile(saved.path, every=10, identity=identity).load(
            {"model": torch.nn.Linear(4, 2)}, torch.optim.Adam(torch.nn.Linear(4, 2).parameters()), torch.Generator(),
            say=messages.append)
        assert step == (10 if resumes else 0), (identity, messages)


def test_a_killed_aloe_train_resumes_its_pretraining(tmp_path):
    command = [sys.executable, "-m", "aloe.cli", "train", "--config", TINY, "--no-progress", "--algo", "bc",
               "--synthetic", "4", "--pretrain-steps", "120", "--improve-steps", "2", "--save-every", "10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole.safetensors"
    subprocess.run([*command, "--out", str(whole), "--save-every", "0"], check=True, env=env, timeout=300, capture_output=True)

    out = tmp_path / "resumed.safetensors"
    state = Path(str(out) + ".resume")
    process = subprocess.Popen([*command, "--out", str(out)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # as a crash, an OOM kill or the end of a job would
    process.wait(timeout=30)
    assert state.exists() and not out.exists(), "the run was not interrupted mid-pretraining"

    result = subprocess.run([*command, "--out", str(out)], env=env, timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pre-training resumes at step" in result.stderr
    assert not state.exists()  # the checkpoint supersedes it
    expected, got = load_checkpoint(whole).model.state_dict(), load_checkpoint(out).model.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
