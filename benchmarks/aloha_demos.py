"""Scripted demonstrations on gym-aloha's own ALOHA tasks, made as the ACT paper made them.

Runs in the reference environment (`bash scripts/reference_env.sh`, then
`.venv-reference/bin/python benchmarks/aloha_demos.py --task transfer_cube --episodes 50`),
not in aloe's: gym-aloha's dm-control needs a MuJoCo older than aloe's simulator.
`benchmarks/aloha_reference.py` runs it with `--until-kept 50 --log ...`: seeds in the log
are not tried again, so a stopped run goes on where it stopped.

For each seed, our waypoint script drives gym-aloha's end-effector version of the task (its
mocap-welded grippers, its task code and assets, rendering nothing), and the joint positions
it produced, with the gripper commands, are replayed in the joint-space task that
`gym_aloha/AlohaTransferCube-v0` (or `AlohaInsertion-v0`) runs, with the objects where that
env's `reset(seed)` puts them. A demonstration is kept only when the replay succeeds (the
task's top reward, 4); for transfer cube, by the handover the script means (the right hand
lifted the cube before the left touched it). The top and both wrist cameras are rendered every
`--camera-every` steps of the replay, as aloe's cameras are. Each kept episode is one .npz
(qpos, actions, images, image steps), which `aloe.data.aloha` reads as learning episodes; one
JSON line per seed goes to stdout.
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; before dm_control loads MuJoCo

import numpy as np
from dm_control import mujoco
from dm_control.rl import control
from dm_control.suite import base
from gym_aloha.constants import ASSETS_DIR, DT
from gym_aloha.tasks.sim_end_effector import InsertionEndEffectorTask, TransferCubeEndEffectorTask
from gym_aloha.utils import sample_box_pose, sample_insertion_pose

from aloha_server import Server

EPISODE_STEPS = 400  # gym-aloha's episodes: 8 s at 50 Hz
TOP_REWARD = 4
# On MuJoCo 3 the end-effector model's mocap welds hold the wrists' orientation loosely: at
# rest the right gripper sags 14 degrees in pitch (on MuJoCo 2.3.7, which the ACT scripts were
# written on: under 2), and grasps that need the wrist where it is sent fail. Kept
# demonstrations at the model's torquescale 1 and at 10: transfer cube 51 and 77 of seeds
# 0-79, insertion 0 and 46 of seeds 0-49 (docs/results.md). Only the scripts' model:
# demonstrations are replayed in the joint-space task, which stays as gym-aloha has it.
WELD_TORQUESCALE = 10.0


# ---------------------------------------------------------------- quaternions (w, x, y, z)

def quat_multiply(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def quat_conjugate(q):
    return np.array([q[0], -q[1], -q[2], -q[3]])


def quat_about(axis, degrees):
    half = np.radians(degrees) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * np.asarray(axis, float) / np.linalg.norm(axis)])


def rotate(q, vector):
    return quat_multiply(quat_multiply(q, np.concatenate([[0.0], vector])), quat_conjugate(q))[1:]


# ---------------------------------------------------------------- the end-effector task

class SeededEndEffectorTask:
    """A gym-aloha end-effector task with its objects where `reset(seed)` of the joint-space
    env puts them (the EE tasks draw them unseeded) and no camera rendered."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def initialize_episode(self, physics):
        self.initialize_robots(physics)
        self.place_objects(physics)
        base.Task.initialize_episode(self, physics)


class UnrenderedTransferCubeEE(SeededEndEffectorTask, TransferCubeEndEffectorTask):
    def place_objects(self, physics):
        box = physics.model.name2id("red_box_joint", "joint")
        physics.data.qpos[box:box + 7] = sample_box_pose(self.seed)

    def get_observation(self, physics):
        return {"qpos": self.get_qpos(physics), "cube": physics.data.qpos[16:19].copy()}


class UnrenderedInsertionEE(SeededEndEffectorTask, InsertionEndEffectorTask):
    def place_objects(self, physics):
        peg, socket = sample_insertion_pose(self.seed)
        physics.named.data.qpos["red_peg_joint"] = peg
        physics.named.data.qpos["blue_socket_joint"] = socket

    def get_observation(self, physics):
        data = physics.named.data
        return {"qpos": self.get_qpos(physics), "peg": data.xpos["peg"].copy(), "socket": data.xpos["socket"].copy()}


FINGERS = ("10_left_gripper_finger", "10_right_gripper_finger")


class Arm:
    """One arm of the end-effector task: where its finger midpoint is, and the mocap pose
    that puts it at a wanted point. The XML's weld names no relative pose, so MuJoCo takes
    the one at qpos0 (a 0.13 m offset and a half turn): gripper = mocap * relpose."""

    def __init__(self, physics, side: str, index: int):
        self.physics, self.side = physics, side
        relpose = physics.model.eq_data[index]
        self.relpose_position, self.relpose_quat = relpose[3:6].copy(), relpose[6:10].copy()
        data = physics.named.data
        self.start_position = data.xpos[f"vx300s_{side}/gripper_link"].copy()
        self.start_quat = data.xquat[f"vx300s_{side}/gripper_link"].copy()
        # the finger midpoint in the gripper link's frame: targets are for the fingers
        self.finger_offset = rotate(quat_conjugate(self.start_quat), self.fingers() - self.start_position)
        # the fingertips lie this far beyond the midpoint along the gripper (the meshes' farthest vertices)
        self.tip_reach = max(self.farthest_vertex(finger) for finger in FINGERS) - self.finger_offset[0]

    def fingers(self) -> np.ndarray:
        geom = self.physics.named.data.geom_xpos
        return sum(geom[f"vx300s_{self.side}/{finger}"] for finger in FINGERS) / 2

    def farthest_vertex(self, finger: str) -> float:
        """How far along the gripper link's x axis the finger's mesh reaches, at the start."""
        model, data = self.physics.model, self.physics.data
        geom = model.name2id(f"vx300s_{self.side}/{finger}", "geom")
        mesh = model.geom_dataid[geom]
        vertices = model.mesh_vert[model.mesh_vertadr[mesh]:model.mesh_vertadr[mesh] + model.mesh_vertnum[mesh]]
        world = vertices @ data.geom_xmat[geom].reshape(3, 3).T + data.geom_xpos[geom]
        return float(np.max((world - self.start_position) @ rotate(self.start_quat, [1.0, 0.0, 0.0])))

    def waypoint(self, step: int, fingers, quat, gripper: float) -> tuple:
        """(step, gripper link position, quat, gripper opening 0..1) with the fingers at `fingers`."""
        return step, np.asarray(fingers, float) - rotate(quat, self.finger_offset), np.asarray(quat, float), gripper

    def tip_waypoint(self, step: int, tips, quat, gripper: float) -> tuple:
        """As `waypoint`, with the fingertips at `tips`."""
        reach = rotate(quat, [self.tip_reach, 0.0, 0.0])
        return self.waypoint(step, np.asarray(tips, float) - reach, quat, gripper)

    def mocap_action(self, position, quat, gripper) -> np.ndarray:
        mocap_quat = quat_multiply(quat, quat_conjugate(self.relpose_quat))
        return np.concatenate([position - rotate(mocap_quat, self.relpose_position), mocap_quat, [gripper]])


def end_effector_physics(xml: str, torquescale: float):
    physics = mujoco.Physics.from_xml_path(str(ASSETS_DIR / xml))
    physics.model.eq_data[:2, 10] = torquescale  # the welds' (eq_data: anchor, relpose, torquescale)
    return physics


def along(waypoints, step: int) -> tuple:
    """Linear interpolation between (step, position, quat, gripper) waypoints."""
    for (s0, p0, q0, g0), (s1, p1, q1, g1) in zip(waypoints, waypoints[1:]):
        if s0 <= step <= s1:
            f = (step - s0) / (s1 - s0)
            return p0 + f * (p1 - p0), q0 + f * (q1 - q0), g0 + f * (g1 - g0)
    _, p, q, g = waypoints[-1]
    return p, q, g


def transfer_cube_script(seed: int, torquescale: float = WELD_TORQUESCALE) -> tuple:
    """The right hand picks the cube (tilted 60 degrees about y), carries it to the middle;
    the left hand (turned 90 degrees about x) comes to where the cube is held then, grasps
    it, and the right lets go. Returns the joint positions after each step, the gripper
    commands, and the end-effector episode's rewards."""
    physics = end_effector_physics("bimanual_viperx_end_effector_transfer_cube.xml", torquescale)
    env = control.Environment(physics, UnrenderedTransferCubeEE(seed), float("inf"), control_timestep=DT,
                              n_sub_steps=None, flat_observation=False)
    observation = env.reset().observation
    left, right = Arm(physics, "left", 0), Arm(physics, "right", 1)
    cube = observation["cube"].copy()
    cube[2] = 0.02  # resting on the table (it is dropped from 5 cm)
    pick = quat_multiply(quat_about([0, 1, 0], -60), right.start_quat)
    receive = quat_multiply(quat_about([1, 0, 0], 90), left.start_quat)
    meet = np.array([0.0, 0.5, 0.25])
    right_plan = [(0, right.start_position, right.start_quat, 0.0), right.waypoint(90, cube + [0, 0, 0.06], pick, 1.0),
                  right.waypoint(130, cube, pick, 1.0), right.waypoint(160, cube, pick, 0.0),
                  right.waypoint(220, meet, right.start_quat, 0.0), right.waypoint(EPISODE_STEPS, meet, right.start_quat, 0.0)]
    left_plan = [(0, left.start_position, left.start_quat, 0.0), left.waypoint(120, meet + [-0.12, 0, 0], receive, 1.0),
                 left.waypoint(EPISODE_STEPS, meet + [-0.12, 0, 0], receive, 1.0)]
    positions, grippers, rewards = [], [], []
    for step in range(EPISODE_STEPS):
        if step == 240:  # the handover, to where the right hand holds the cube now (it sags below `meet`)
            held = observation["cube"].copy()
            # from where the left hand is: a jump here (0.3 rad in a step) is nothing a demonstration should teach
            left_plan = [(240, *along(left_plan, step)), left.waypoint(255, held + [-0.10, 0, 0], receive, 1.0),
                         left.waypoint(285, held + [-0.02, 0, 0], receive, 1.0),
                         left.waypoint(312, held + [-0.02, 0, 0], receive, 0.0), left.waypoint(360, held + [-0.10, 0, 0.02], receive, 0.0),
                         left.waypoint(EPISODE_STEPS, held + [-0.10, 0, 0.02], receive, 0.0)]
            position, quat, _ = along(right_plan, step)
            right_plan = [(240, position, quat, 0.0), (315, position, quat, 0.0), (335, position, quat, 1.0),
                          (370, position + [0.1, 0, 0], quat, 1.0), (EPISODE_STEPS, position + [0.1, 0, 0], quat, 1.0)]
        left_action, right_action = left.mocap_action(*along(left_plan, step)), right.mocap_action(*along(right_plan, step))
        timestep = env.step(np.concatenate([left_action, right_action]))
        observation = timestep.observation
        positions.append(observation["qpos"].copy())
        grippers.append((left_action[-1], right_action[-1]))
        rewards.append(timestep.reward)
    return np.array(positions), np.array(grippers), np.array(rewards)


def insertion_script(seed: int, torquescale: float = WELD_TORQUESCALE) -> tuple:
    """Each hand takes its object from the middle's side, fingers tilted 60 degrees down and
    their tips 5 mm above the table (the right the peg, the left the socket), carries it to
    10 cm from the meeting point, and both move 5 cm closer: the peg enters the socket and
    touches its pin. Open loop: the objects' landing places are all it reads. Returns what
    `transfer_cube_script` returns."""
    physics = end_effector_physics("bimanual_viperx_end_effector_insertion.xml", torquescale)
    env = control.Environment(physics, UnrenderedInsertionEE(seed), float("inf"), control_timestep=DT,
                              n_sub_steps=None, flat_observation=False)
    observation = env.reset().observation
    left, right = Arm(physics, "left", 0), Arm(physics, "right", 1)
    meet = np.array([0.0, 0.5, 0.15])

    def plan(arm, grasp, tilt, side):
        grasp = np.array([grasp[0], grasp[1], 0.005])  # the objects drop from 5 cm: where they land
        quat = quat_multiply(quat_about([0, 1, 0], tilt), arm.start_quat)
        return [(0, arm.start_position, arm.start_quat, 0.0), arm.tip_waypoint(120, grasp + [0, 0, 0.08], quat, 1.0),
                arm.tip_waypoint(170, grasp, quat, 1.0), arm.tip_waypoint(220, grasp, quat, 0.0),
                arm.tip_waypoint(285, meet + [side * 0.10, 0, 0], quat, 0.0),
                arm.tip_waypoint(340, meet + [side * 0.05, 0, 0], quat, 0.0),
                arm.tip_waypoint(EPISODE_STEPS, meet + [side * 0.05, 0, 0], quat, 0.0)]

    left_plan, right_plan = plan(left, observation["socket"], 60, -1), plan(right, observation["peg"], -60, 1)
    positions, grippers, rewards = [], [], []
    for step in range(EPISODE_STEPS):
        left_action, right_action = left.mocap_action(*along(left_plan, step)), right.mocap_action(*along(right_plan, step))
        timestep = env.step(np.concatenate([left_action, right_action]))
        positions.append(timestep.observation["qpos"].copy())
        grippers.append((left_action[-1], right_action[-1]))
        rewards.append(timestep.reward)
    return np.array(positions), np.array(grippers), np.array(rewards)


SCRIPTS = {"transfer_cube": transfer_cube_script, "insertion": insertion_script}


def replay(server: Server, seed: int, joints: np.ndarray, camera_every: int) -> dict:
    """The joint trajectory (gripper columns: the commands) through the joint-space task
    from the state its env's `reset(seed)` gives, in the server the evaluation steps (so a
    kept demonstration starts where an evaluation episode of its seed would)."""
    qpos = [server.reset(seed)["qpos"]]
    images, image_steps, rewards = [], [], []
    for step, action in enumerate(joints):
        if camera_every and step % camera_every == 0:
            images.append(server.render())
            image_steps.append(step)
        answer = server.step(action)
        rewards.append(answer["reward"])
        qpos.append(answer["qpos"])
    return {"qpos": np.array(qpos[:-1]), "actions": joints, "images": np.array(images, np.uint8),
            "image_steps": np.array(image_steps), "rewards": np.array(rewards)}


def succeeded(task: str, rewards: np.ndarray) -> bool:
    return handed_over(rewards) if task == "transfer_cube" else bool(rewards.max() >= TOP_REWARD)


def handed_over(rewards: np.ndarray) -> bool:
    """The task's top reward after the right hand lifted the cube (reward 2) and before the
    left touched it (3): the handover the script means, not a cube the left hand took from
    the table after the right one lost it (that earns 4 as well)."""
    if rewards.max() < TOP_REWARD:
        return False
    first_left_touch = int(np.argmax(rewards >= 3))
    return bool((rewards[:first_left_touch] == 2).any())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(SCRIPTS), default="transfer_cube")
    parser.add_argument("--episodes", type=int, default=50, help="seeds tried at most, from --first-seed")
    parser.add_argument("--first-seed", type=int, default=0, help="demonstration seeds (evaluation uses others)")
    parser.add_argument("--until-kept", type=int, help="stop once this many demonstrations are kept")
    parser.add_argument("--camera-every", type=int, default=10, help="steps between top-camera images (10: 5 Hz)")
    parser.add_argument("--weld-torquescale", type=float, default=WELD_TORQUESCALE,
                        help="the scripts' end-effector welds (1: the model's own, which MuJoCo 3 holds loosely)")
    parser.add_argument("--image-size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--out", type=Path, help="folder for the kept episodes (.npz); none: only the rates")
    parser.add_argument("--log", type=Path, help="JSON lines, one per seed tried; seeds already there are not tried again")
    args = parser.parse_args()
    tried = [json.loads(line) for line in args.log.read_text().splitlines()] if args.log and args.log.exists() else []
    made_otherwise = {row.get("weld_torquescale", 1.0) for row in tried} - {args.weld_torquescale}
    if made_otherwise:  # rows before the torquescale was logged were made at the model's 1
        print(f"aloha_demos: {args.log} holds demonstrations made at weld torquescale {made_otherwise.pop():g}, "
              f"not {args.weld_torquescale:g}: use another folder", file=sys.stderr)
        return 3
    done = {row["seed"] for row in tried}
    kept = sum(row["kept"] for row in tried)
    server = Server(args.task, args.image_size)
    for seed in range(args.first_seed, args.first_seed + args.episodes):
        if args.until_kept is not None and kept >= args.until_kept:
            break
        if seed in done:
            continue
        joints, grippers, scripted = SCRIPTS[args.task](seed, args.weld_torquescale)
        joints[:, 6], joints[:, 13] = grippers[:, 0], grippers[:, 1]  # replay the gripper commands, not where they lagged
        episode = replay(server, seed, joints, args.camera_every)
        success = succeeded(args.task, episode["rewards"])
        if success and args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.out / f"{args.task}-{seed:06d}.npz", task=args.task,
                                **{k: v for k, v in episode.items() if k != "rewards"})
        kept += success
        row = {"task": args.task, "seed": seed, "script_reward": int(scripted.max()), "script_success": succeeded(args.task, scripted),
               "replay_reward": int(episode["rewards"].max()), "kept": success,
               "weld_torquescale": args.weld_torquescale}
        tried.append(row)
        print(json.dumps(row), flush=True)
        if args.log:  # after the episode's file: a seed in the log is finished
            with args.log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
    summary = {"task": args.task, "seeds": len(tried), "script_top_reward": sum(r["script_reward"] == TOP_REWARD for r in tried),
               "script_successes": sum(r.get("script_success", False) for r in tried), "kept": kept}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
