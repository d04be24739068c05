"""How precisely can the image encoder locate the objects? A probe of the vision path apart
from control: the encoder (ImageEncoder, as the actor uses it) and a small head are trained
to regress the phone's and the box's table positions from the head camera alone, on
insertion demonstrations 0-79, and the error is measured on demonstrations 80-99. The box
leaves 4 mm per side, so an encoder that cannot place it within a few millimetres cannot
drive the insertion, whatever the actor does.

    .venv/bin/python benchmarks/localization_probe.py --size 96x128 --widths 16,32,64
    .venv/bin/python benchmarks/localization_probe.py --size 96x128 --widths 16,32,64 --head-crop 0.3,0.3,0.4,0.4
    .venv/bin/python benchmarks/localization_probe.py --head-crop 0.3,0.3,0.4,0.4 --strides 2,2,1 --seed 1

Needs runs/demos/insertion/ (benchmarks/base_policy.py records it).
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aloe.learning.camera_view import camera_view
from aloe.learning.networks import ImageEncoder

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"phone x": 0, "phone y": 1, "box x": 9, "box y": 10}  # indices in SimRobot.object_state for insertion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="96x128", help="image size HxW the encoder sees")
    parser.add_argument("--widths", default="16,32,64", help="encoder_widths")
    parser.add_argument("--head-crop", default="", help="top,left,height,width fractions (default: the whole image)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--strides", default="", help="the conv layers' strides (default: 2 each)")
    parser.add_argument("--seed", type=int, default=0, help="the encoder's initialisation and batch order")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    crop = tuple(float(v) for v in args.head_crop.split(",")) if args.head_crop else ()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    images, targets, episodes = [], [], []
    for episode, path in enumerate(sorted((ROOT / "runs" / "demos" / "insertion").glob("insertion-train-*.npz"))[:100]):
        with np.load(path) as arrays:
            for frame, step in zip(arrays["images"], arrays["image_steps"]):
                images.append(camera_view(frame[0], size, crop))
                targets.append(arrays["state"][step][list(TARGETS.values())])
                episodes.append(episode)
    images, targets, episodes = torch.from_numpy(np.stack(images)), torch.tensor(np.stack(targets)), np.array(episodes)
    mean, std = targets.mean(0), targets.std(0)
    normalised = (targets - mean) / std
    train, test = np.flatnonzero(episodes < 80), np.flatnonzero(episodes >= 80)

    strides = tuple(int(v) for v in args.strides.split(",")) if args.strides else ()
    encoder = ImageEncoder(32, tuple(int(w) for w in args.widths.split(",")), strides=strides)
    head = nn.Sequential(nn.Linear(encoder.out_dim, 256), nn.SiLU(), nn.Linear(256, len(TARGETS)))
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3)
    batches = torch.Generator().manual_seed(args.seed)
    start = time.monotonic()
    for _ in range(args.steps):
        rows = train[torch.randint(len(train), (32,), generator=batches).numpy()]
        loss = (head(encoder(images[rows])) - normalised[rows]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    with torch.no_grad():
        predicted = torch.cat([head(encoder(images[test[i:i + 256]])) for i in range(0, len(test), 256)])
    error_mm = ((predicted - normalised[test]).abs() * std).mean(0) * 1000
    figures = ", ".join(f"{name} {value:.1f}" for name, value in zip(TARGETS, error_mm.tolist()))
    print(f"size {args.size}, widths {args.widths}, head crop {crop or 'none'}, strides {args.strides or 'all 2'}, seed {args.seed}, {args.steps} steps "
          f"({time.monotonic() - start:.0f} s): held-out error in mm: {figures}")


if __name__ == "__main__":
    main()
