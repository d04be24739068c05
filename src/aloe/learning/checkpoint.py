"""The trained model as one unit, and its checkpoint file.

A checkpoint is a safetensors file: the weights of encoder, actor and (when trained)
critic or value baseline, plus metadata: a version id, the algorithm, the full config,
the normalisation statistics, a fingerprint of the training data and a SHA-256 of the
weights. Loading builds a fresh model from the stored config and fills it strictly; any
problem (missing, truncated, corrupt, or weights that do not fit the config) raises one
CheckpointError naming the file, so a caller never holds a half-loaded model.
"""
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from aloe.learning.config import ConfigError, LearningError, TrainConfig, from_dict, to_dict
from aloe.learning.data import Normalizer
from aloe.learning.networks import CriticEnsemble, FlowActor, ObservationEncoder, ValueNet

# 2: the actor predicts the clean chunk; a format-1 actor (velocity) would load and act wrongly.
FORMAT = "aloe-checkpoint-2"


class CheckpointError(LearningError):
    """A checkpoint that cannot be used; one line naming the file and the problem."""


class VLAModel(nn.Module):
    """Encoder + flow actor, with the critic ensemble (aloe) or value net (mc) when trained."""

    def __init__(self, config: TrainConfig, with_critic: bool = False, with_value: bool = False):
        super().__init__()
        self.config = config
        self.encoder = ObservationEncoder(config.model)
        self.actor = FlowActor(config.model)
        self.critic = CriticEnsemble(config.model, config.critic.prior_scale) if with_critic else None
        self.value = ValueNet(config.model) if with_value else None


@dataclass
class Checkpoint:
    model: VLAModel
    normalizer: Normalizer
    version: str
    algo: str
    data_fingerprint: str = ""
    parent: str = ""  # version this one was trained from
    created: float = field(default_factory=time.time)
    metrics: dict = field(default_factory=dict)

    @property
    def config(self) -> TrainConfig:
        return self.model.config


def new_version(algo: str) -> str:
    return f"{algo}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def weights_digest(state: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(checkpoint: Checkpoint, path) -> Path:
    """Write atomically: a crash mid-write leaves the previous file, never a torn one."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in checkpoint.model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "version": checkpoint.version,
        "algo": checkpoint.algo,
        "config": json.dumps(to_dict(checkpoint.config)),
        "normalizer": json.dumps(checkpoint.normalizer.to_dict()),
        "data_fingerprint": checkpoint.data_fingerprint,
        "parent": checkpoint.parent,
        "created": repr(checkpoint.created),
        "metrics": json.dumps(checkpoint.metrics),
        "has_critic": str(checkpoint.model.critic is not None),
        "has_value": str(checkpoint.model.value is not None),
        "weights_sha256": weights_digest(state),
    }
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    save_file(state, str(partial), metadata=metadata)
    os.replace(partial, path)
    return path


# Model settings that a checkpoint saved before they existed does not record, with the value
# it was trained with: their defaults have changed since (the base-policy ladder).
# Strides change no weight's shape, so a missing entry there would load silently wrong.
UNRECORDED_MODEL_SETTINGS = {"head_crop": (), "random_shift": 0, "language_tokens": False, "encoder_widths": (32, 64, 128),
                             "encoder_strides": (), "language_state_query": False}


def load_checkpoint(path, device: Optional[str] = None) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file ({str(error).splitlines()[0]})") from None
    found = metadata.get("format")
    if isinstance(found, str) and found.startswith("aloe-checkpoint-") and found != FORMAT:
        raise CheckpointError(f"checkpoint {path} was written by another aloe version ({found}, this one reads {FORMAT}): train it again")
    if found != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an aloe checkpoint (format {metadata.get('format')!r}, expected {FORMAT!r})")
    if weights_digest(state) != metadata.get("weights_sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupt: its weights do not match their recorded SHA-256")
    try:
        values = json.loads(metadata["config"])
        for name, value in UNRECORDED_MODEL_SETTINGS.items():
            values.setdefault("model", {}).setdefault(name, value)
        config = from_dict(TrainConfig, values, "checkpoint config")
        normalizer = Normalizer.from_dict(json.loads(metadata["normalizer"]))
        model = VLAModel(config, metadata["has_critic"] == "True", metadata["has_value"] == "True")
        model.load_state_dict(state, strict=True)
    except (KeyError, json.JSONDecodeError, ConfigError, RuntimeError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path} does not fit its own config: {str(error).splitlines()[0]}") from None
    if np.asarray(normalizer.action_mean).shape != (config.model.action_dim,):
        raise CheckpointError(f"checkpoint {path}: normalisation has the wrong action dimension")
    model.eval()
    if device is not None:
        model.to(device)
    return Checkpoint(
        model=model,
        normalizer=normalizer,
        version=metadata["version"],
        algo=metadata["algo"],
        data_fingerprint=metadata.get("data_fingerprint", ""),
        parent=metadata.get("parent", ""),
        created=float(metadata.get("created", "0")),
        metrics=json.loads(metadata.get("metrics", "{}")),
    )
