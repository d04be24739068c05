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


def where(task, data, scene, obj, target) -> str:
    """Judged as the task judges success (`Sorting.in_bin`), so "ok" counts match its stages."""
    other = "left" if target == "right" else "right"
    if task.in_bin(data, obj.name, scene.containers[f"{target}_bin"]):
        return "ok"
    if task.in_bin(data, obj.name, scene.containers[f"{other}_bin"]):
        return "wrong bin"
    position = data.body(obj.name).xpos
    return "untouched" if np.hypot(position[0] - obj.pose[0], position[1] - obj.pose[1]) < UNTOUCHED_M else "dropped"


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

    def end_and_judge_places():  # where the objects lie as the episode left them
        robot = session.robot
        final["places"] = [where(task, robot.data, robot.scene, obj, target)
                           for obj, target in zip(robot.scene.objects, robot.scene.extra["targets"])]
        return end_episode()

    session.end_episode = end_and_judge_places
    counts = Counter()
    print("seed  success  stages              objects in the instruction's order")
    for seed in range(first, last + 1):
        result = rollout(policy, session, "sorting", seed, Condition("train"))
        places = final["places"]
        counts.update(places)
        print(f"{seed:4d}  {str(result.success):7s}  {result.stages_reached or '-':18s}  {', '.join(places)}", flush=True)
    session.close()
    print("objects over all seeds: " + ", ".join(f"{name} {counts[name]}" for name in ("ok", "wrong bin", "dropped", "untouched")))


if __name__ == "__main__":
    main()
