"""How well the actor fits demonstrations it has not seen: `python benchmarks/actor_fit.py BAGS...`

Behaviour-clones encoder and actor on all but the last `--held-out` episodes of the bags
with `aloe train`'s own pre-training loop, and every `--every` steps prints the flow-matching loss
and the mean absolute error (rad) between the chunk the actor samples (fixed noise) and the
demonstrated one, over the first `--executed` steps of each chunk (the part the robot runs
before replanning) and the joints of one arm, on held-out and on training episodes.
Offline and seconds per figure, it tells whether a change to the actor can help before a
closed-loop evaluation does; it is how the x-prediction actor was chosen (docs/results.md).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from aloe.data.bag_dataset import load_bags
from aloe.data.recording import aloe_typestore
from aloe.learning.checkpoint import VLAModel
from aloe.learning.config import TrainConfig
from aloe.learning.data import Normalizer, chunk_transitions
from aloe.learning.train import Runtime, _pretrain, build_observations


def chunk_error(model, observations, transitions, normalizer, executed: int, joints: slice, count: int = 400) -> float:
    """Mean |sampled - demonstrated| over the first `executed` steps of up to `count` chunks."""
    rows = np.linspace(0, len(transitions) - 1, min(count, len(transitions))).astype(int)
    model.eval()
    with torch.no_grad():
        features = model.encoder(*observations.rows(torch.as_tensor(transitions.obs[rows])))
        sampled = model.actor.sample(features, torch.Generator().manual_seed(0)).numpy()
    model.train()
    error = np.abs(normalizer.unnormalize_actions(sampled) - transitions.actions[rows])
    return float(error[:, :executed, joints].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bags", nargs="+", type=Path, help="folders of episode bags of one task")
    parser.add_argument("--held-out", type=int, default=5, help="last episodes kept out of training")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--executed", type=int, default=25, help="chunk steps run before replanning")
    parser.add_argument("--arm", choices=("left", "right"), default="left")
    parser.add_argument("--no-images", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    config = TrainConfig(algo="bc")
    config.model.use_images = not args.no_images
    episodes = []
    for folder in args.bags:
        episodes += load_bags(folder, aloe_typestore(), config.model.image_size, folder / ".aloe-cache")[0]
    train, held_out = episodes[:-args.held_out], episodes[-args.held_out:]
    normalizer = Normalizer.fit(train)
    data = {}
    for name, part in (("train", train), ("held_out", held_out)):
        transitions = chunk_transitions(part, config.model.horizon, config.data)
        data[name] = (transitions, build_observations(part, transitions, normalizer, config, torch.device("cpu")))
    transitions, observations = data["train"]
    actions = torch.tensor(normalizer.actions(transitions.actions), dtype=torch.float32)
    mask, obs = torch.tensor(transitions.mask), torch.as_tensor(transitions.obs)

    model = VLAModel(config)
    joints = slice(0, 7) if args.arm == "left" else slice(7, 14)
    print(f"{len(train)} training and {len(held_out)} held-out episodes, {len(transitions)} chunks", flush=True)
    losses, started = [], time.monotonic()

    class Figures:
        """The pre-training loop's logger: every `--every` steps, the chunk errors."""

        def step(self, local_step: int, scalars: dict) -> None:
            losses.append(scalars["pretrain/fm_loss"])
            step = local_step + 1
            if step % args.every == 0 or step == args.steps:
                figures = {name: chunk_error(model, o, t, normalizer, args.executed, joints) for name, (t, o) in data.items()}
                print(json.dumps({"step": step, "loss": round(float(np.mean(losses[-args.every:])), 4),
                                  "held_out_error_rad": round(figures["held_out"], 4), "train_error_rad": round(figures["train"], 4),
                                  "seconds": round(time.monotonic() - started)}), flush=True)

    config.pretrain_steps = args.steps
    _pretrain(model, observations, obs, actions, mask, config, Runtime(torch.device("cpu")), torch.Generator().manual_seed(0), Figures())


if __name__ == "__main__":
    main()
