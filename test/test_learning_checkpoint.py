"""Checkpoints round-trip exactly; damaged or foreign files are refused with one clear error."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from aloe.learning import synthetic
from aloe.learning.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from aloe.learning.config import TrainConfig, from_dict
from aloe.learning.policy import Policy, PolicyEnsemble
from aloe.learning.train import train

TINY = yaml.safe_load((Path(__file__).parent / "tiny_train.yaml").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = from_dict(TrainConfig, {**TINY, "algo": "aloe"})
    episodes = synthetic.dataset(4, seed=0, image_size=config.model.image_size)
    checkpoint = train(config, episodes, progress=False)
    path = save_checkpoint(checkpoint, tmp_path_factory.mktemp("ckpt") / "model.safetensors")
    return checkpoint, path, episodes


def test_round_trip_is_exact(trained):
    checkpoint, path, episodes = trained
    loaded = load_checkpoint(path)
    original, restored = checkpoint.model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert (loaded.version, loaded.algo, loaded.data_fingerprint) == (checkpoint.version, "aloe", checkpoint.data_fingerprint)
    assert loaded.config == checkpoint.config and loaded.normalizer.to_dict() == checkpoint.normalizer.to_dict()
    episode = episodes[0]
    observation = (episode.joints[0], episode.images[0], episode.instruction)
    chunks = [Policy(c).act(*observation, generator=torch.Generator().manual_seed(5)) for c in (checkpoint, loaded)]
    assert chunks[0].shape == (10, 14) and np.array_equal(chunks[0], chunks[1])
    assert list(path.parent.iterdir()) == [path]  # the atomic write left nothing behind


def test_a_zero_noise_scale_samples_the_same_chunk_whatever_the_seed(trained):
    checkpoint, _, episodes = trained
    policy, episode = Policy(checkpoint), episodes[0]
    observation = (episode.joints[0], episode.images[0], episode.instruction)
    chunk = lambda seed, scale: policy.act(*observation, generator=torch.Generator().manual_seed(seed), noise_scale=scale)  # noqa: E731
    assert np.array_equal(chunk(1, 0.0), chunk(2, 0.0))
    assert not np.allclose(chunk(1, 1.0), chunk(2, 1.0))
    # Between the two: nearer the mean chunk than a full draw from the same seed.
    mean = chunk(1, 0.0)
    assert np.abs(chunk(3, 0.5) - mean).mean() < np.abs(chunk(3, 1.0) - mean).mean()


def test_an_ensemble_follows_its_members_averaged_flow_and_refuses_other_data(trained):
    checkpoint, path, episodes = trained
    observation = (episodes[0].joints[0], episodes[0].images[0], episodes[0].instruction)
    draw = lambda policy: policy.act(*observation, generator=torch.Generator().manual_seed(7))  # noqa: E731
    single = Policy(checkpoint)
    # Two copies of one member: their mean velocity is the member's, so is the chunk.
    assert np.allclose(draw(PolicyEnsemble([single, Policy(load_checkpoint(path))])), draw(single), atol=1e-5)
    # Another member (its actor's weights moved): the ensemble's chunk is neither member's.
    other = load_checkpoint(path)
    with torch.no_grad():
        for parameter in other.model.actor.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    mixed = draw(PolicyEnsemble([single, Policy(other)]))
    assert not np.allclose(mixed, draw(single), atol=1e-4) and not np.allclose(mixed, draw(Policy(other)), atol=1e-4)
    assert PolicyEnsemble([single, Policy(other)]).version == f"{checkpoint.version}+{other.version}"
    foreign = load_checkpoint(path)
    foreign.normalizer.action_mean = foreign.normalizer.action_mean + 1.0
    with pytest.raises(ValueError, match="normalisation differs"):
        PolicyEnsemble([single, Policy(foreign)])
    with pytest.raises(ValueError, match="at least two"):
        PolicyEnsemble([single])


def test_truncated_file_is_refused(trained, tmp_path):
    _, path, _ = trained
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(cut)


def test_flipped_bytes_in_the_weights_are_detected(trained, tmp_path):
    _, path, _ = trained
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)


def test_foreign_and_mismatched_files_are_refused(trained, tmp_path):
    _, path, _ = trained
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an aloe checkpoint"):
        load_checkpoint(foreign)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_weights_that_do_not_fit_the_config_are_refused(trained, tmp_path):
    """A checkpoint whose config says one architecture and whose weights are another."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    _, path, _ = trained
    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
    config = json.loads(metadata["config"])
    config["model"]["actor_hidden"] = 96
    metadata["config"] = json.dumps(config)
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(load_file(str(path)), str(mismatched), metadata=metadata)
    with pytest.raises(CheckpointError, match="does not fit its own config"):
        load_checkpoint(mismatched)


@pytest.mark.parametrize("name, reason", [
    ("gpu", "is not a torch device: use cpu, cuda or cuda:N"),
    ("meta", "inference runs on cpu or cuda only"),
    pytest.param("cuda", "sees no CUDA device here; use cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_a_device_that_cannot_run_the_policy_is_refused_by_name(trained, name, reason):
    _, path, _ = trained
    with pytest.raises(ValueError, match=f"device '{name}'.*{reason}"):
        Policy.load(path, name)
    assert Policy.load(path, "cpu").device == torch.device("cpu")


def load_without_recorded(tmp_path, model_settings: dict, unrecorded: tuple):
    """Train and save a tiny checkpoint with `model_settings`, then strip `unrecorded` from
    its recorded config (as a checkpoint saved before they existed) and load it."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    config = from_dict(TrainConfig, {**TINY, "algo": "bc", "model": {**TINY["model"], **model_settings}})
    checkpoint = train(config, synthetic.dataset(2, seed=0, image_size=config.model.image_size), progress=False)
    path = save_checkpoint(checkpoint, tmp_path / "model.safetensors")
    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
    recorded = json.loads(metadata["config"])
    for name in unrecorded:
        del recorded["model"][name]
    metadata["config"] = json.dumps(recorded)
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata=metadata)
    return load_checkpoint(old)


def test_a_checkpoint_from_before_todays_model_defaults_loads_as_it_was_trained(tmp_path):
    """Checkpoints saved before head_crop, random_shift, language_tokens and encoder_strides
    existed do not record them: they load with what they were trained with, not with today's
    defaults (the strides change no weight's shape: a default there would load silently)."""
    from aloe.learning.config import ModelConfig

    before = {"head_crop": [], "random_shift": 0, "language_tokens": False, "encoder_widths": [32, 64, 128],
              "encoder_strides": []}
    today = ModelConfig()
    assert all((list(getattr(today, name)) if isinstance(value, list) else getattr(today, name)) != value
               for name, value in before.items())
    # the weights fit: an attention pool or wider encoder would not
    model = load_without_recorded(tmp_path, before, ("head_crop", "random_shift", "language_tokens", "encoder_strides")).config.model
    assert (model.head_crop, model.random_shift, model.language_tokens, model.encoder_widths, model.encoder_strides) == \
        ((), 0, False, (32, 64, 128), ())


def test_a_token_checkpoint_from_before_the_steered_pool_loads_without_it(tmp_path):
    """A token-language checkpoint saved before language_state_query existed has an unsteered
    pool: it loads as one whatever the default is (steered weights would not fit)."""
    loaded = load_without_recorded(tmp_path, {"language_state_query": False}, ("language_state_query",))
    assert loaded.config.model.language_tokens and not loaded.config.model.language_state_query
