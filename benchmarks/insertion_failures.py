"""Where insertion episodes end: for each seed, the outcome, the stages reached and the
phone's final position in the box's frame (mm) and height, so a failure reads as never
grasped, dropped far from the box, or set down beside / on the rim of it.

    .venv/bin/python benchmarks/insertion_failures.py runs/ladder/insertion/RUNG/model.safetensors --seeds 500-519

Training seeds only (the ladder's); the policy is run as `aloe.experiment.evaluation.rollout` runs it.
"""
import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--seeds", default="500-519", help="first-last (default 500-519)")
    args = parser.parse_args()
    first, last = (int(v) for v in args.seeds.split("-"))
    if last >= 100000:
        raise SystemExit("use training seeds, not the evaluation seeds 100000+")

    import torch

    from aloe.experiment.evaluation import Condition, rollout
    from aloe.learning.policy import Policy
    from aloe.sim.session import SimSession

    torch.set_num_threads(1)
    policy = Policy.load(args.checkpoint)
    session = SimSession(camera_rate_hz=0, scripted_operator=False)
    final = {}
    end_episode = session.end_episode

    def end_and_keep_state():  # the objects as the episode left them
        final["state"] = session.robot.object_state()
        return end_episode()

    session.end_episode = end_and_keep_state
    print("seed  success  stages            phone in box frame (mm)   height (mm)")
    for seed in range(first, last + 1):
        result = rollout(policy, session, "insertion", seed, Condition("train"))
        state = final["state"]  # phone xyz, its rotation (6), box x, y, cos, sin (SimRobot.object_state)
        box_x, box_y, cos, sin = state[9:13]
        dx, dy = state[0] - box_x, state[1] - box_y
        local = np.array([cos * dx + sin * dy, -sin * dx + cos * dy]) * 1000
        print(f"{seed:4d}  {str(result.success):7s}  {result.stages_reached or '-':16s}  "
              f"{local[0]:+7.1f} {local[1]:+7.1f}           {state[2] * 1000:5.0f}", flush=True)
    session.close()


if __name__ == "__main__":
    main()
