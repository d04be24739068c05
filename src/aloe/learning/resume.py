"""Where an interrupted BC pre-training picks up again: its state every few hundred steps.

Pre-training is the long phase (46 min for insertion, 72 min for drawer on two CPU cores);
a crash, a killed job or the end of a session should cost at most `every` steps of it. The
file holds what the next step depends on: the modules, the optimiser, the batch sampler's
generator and the global RNG that draws the flow-matching noise. A resumed run therefore
ends with the very weights of an uninterrupted one. It also holds what the state is valid
for (config, data fingerprint, rank): a file from another run is set aside, not used. A
setting added to the code since the file was saved counts as the same run while it keeps
its default: new settings default to how runs went before they existed.
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from aloe.learning.config import TrainConfig, to_dict


def same_run(saved: dict, current: dict) -> bool:
    """Whether a state saved with identity `saved` belongs to the run of identity `current`."""
    if set(saved) != set(current) or any(saved[key] != current[key] for key in current if key != "config"):
        return False
    return "config" not in current or same_settings(saved["config"], current["config"], to_dict(TrainConfig()))


def same_settings(saved: dict, current: dict, defaults: dict) -> bool:
    """Equal, but for settings `saved` lacks (added to the code since) left at their defaults."""
    if not set(saved) <= set(current):
        return False
    for key, value in current.items():
        if key not in saved:
            if key not in defaults or value != defaults[key]:
                return False
        elif isinstance(value, dict) and isinstance(saved[key], dict):
            if not same_settings(saved[key], value, defaults.get(key, {})):
                return False
        elif saved[key] != value:
            return False
    return True


@dataclass
class ResumeFile:
    path: Path
    every: int  # save after every this many steps
    identity: dict  # the run it belongs to: config, data fingerprint, world size, rank

    @classmethod
    def for_rank(cls, path, every: int, identity: dict, rank: int, world_size: int) -> "ResumeFile":
        path = Path(path)
        if world_size > 1:  # each rank draws its own batches, so each keeps its own state
            path = path.with_name(f"{path.stem}-rank{rank}{path.suffix}")
        return cls(path, every, {**identity, "rank": rank, "world_size": world_size})

    def load(self, modules: dict, optimizer, generator, say) -> int:
        """Restore a state saved by this run; returns the step to go on from (0: none)."""
        if not self.path.exists():
            return 0
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # a torn or foreign file must not stop the training
            say(f"cannot read {self.path} ({type(error).__name__}: {error}); pre-training from step 0")
            return 0
        if not same_run(state.get("identity") or {}, self.identity):
            say(f"{self.path} belongs to another run (config, data or processes differ); pre-training from step 0")
            return 0
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])
        say(f"pre-training resumes at step {state['step']} from {self.path}")
        return state["step"]

    def maybe_save(self, step: int, modules: dict, optimizer, generator, device: Optional[torch.device] = None) -> None:
        """After `step` finished steps: save if it is a multiple of `every`, atomically."""
        if self.every <= 0 or step % self.every:
            return
        state = {
            "identity": self.identity,
            "step": step,
            "modules": {name: module.state_dict() for name, module in modules.items()},
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if device is not None and device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        torch.save(state, partial)
        os.replace(partial, self.path)  # a crash mid-write leaves the previous state

    def remove(self) -> None:
        """The run finished: its checkpoint supersedes the state."""
        self.path.unlink(missing_ok=True)
