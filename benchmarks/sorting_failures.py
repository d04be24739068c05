"""Where sorting episodes end: for each seed, the outcome, the stages reached and where
each object lies at the end, in the instruction's order: in its named bin ("ok"), in the
other bin ("wrong bin"), still near where it started ("untouched") or elsewhere
("dropped"). A failure then reads as a confused instruction or a lost grasp.

    .venv/bin/python benchmarks/sorting_failures.py runs/ladder/sorting/RUNG/model.safetensors --seeds 500-549

With --flip-bins the policy is told the other bin for every object ("left" and "right"
swapped in the instruction) while the task still judges by the scene's own bins: a policy
that reads the bins from the instruction then puts the objects in the "wrong bin", one that
ignores it keeps putting them where it would have.

Training seeds only (the ladder's); the policy is run as `aloe.experiment.evaluation.rollout` runs it.
"""
import argparse
import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np

UNTOUCHED_M = 0.02  # an object within this of its start never left the table's slot


def where(position, start, named_bin, other_bin, half_inner) -> str:
    def inside(centre):
        return abs(position[0] - centre[0]) < half_inner and abs(position[1] - centre[1]) < half_inner

    if inside(named_bin):
        return "ok"
    if inside(other_bin):
        return "wrong bin"
    return "untouched" if np.hypot(position[0] - start[0], position[1] - start[1]) < UNTOUCHED_M else "dropped"


def flip_bins(instruction: str) -> str:
    return re.sub(r"\b(left|right)\b", lambda m: "right" if m.group(1) == "left" else "left", instruction)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--seeds", default="500-519", help="first-last (default 500-519)")
    parser.add_argument("--flip-bins", action="store_true", help="tell the policy the other bin for every object")
    args = parser.parse_args()
    first, last = (int(v) for v in args.seeds.split("-"))
    if last >= 100000:
        raise SystemExit("use training seeds, not the evaluation seeds 100000+")

    import torch

    from aloe.experiment.evaluation import Condition, rollout
    from aloe.learning.policy import Policy
    from aloe.sim.session import SimSession
    from aloe.sim.tasks import TASKS

    task = TASKS["sorting"]
    torch.set_num_threads(1)
    policy = Policy.load(args.checkpoint)
    session = SimSession(camera_rate_hz=0, scripted_operator=False)
    final = {}
    end_episode, reset = session.end_episode, session.reset

    def reset_with_flipped_bins(*args, **kwargs):  # the policy reads the scene rollout gets; the task keeps its own
        scene = reset(*args, **kwargs)
        return dataclasses.replace(scene, instruction=flip_bins(scene.instruction))

    if args.flip_bins:
        session.reset = reset_with_flipped_bins

    def end_and_keep_state():  # the objects as the episode left them
        final["state"], final["scene"] = session.robot.object_state(), session.robot.scene
        return end_episode()

    session.end_episode = end_and_keep_state
    counts = Counter()
    print("seed  success  stages              objects in the instruction's order")
    for seed in range(first, last + 1):
        result = rollout(policy, session, "sorting", seed, Condition("train"))
        state, scene = final["state"], final["scene"]
        places = []
        for i, (obj, target) in enumerate(zip(scene.objects, scene.extra["targets"])):
            other = "left" if target == "right" else "right"
            place = where(state[9 * i: 9 * i + 3], obj.pose[:2], task.bins[target], task.bins[other], task.inner[0])
            places.append(place)
            counts[place] += 1
        print(f"{seed:4d}  {str(result.success):7s}  {result.stages_reached or '-':18s}  {', '.join(places)}", flush=True)
    session.close()
    print("objects over all seeds: " + ", ".join(f"{name} {counts[name]}" for name in ("ok", "wrong bin", "dropped", "untouched")))


if __name__ == "__main__":
    main()
