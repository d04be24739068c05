"""The simulated ALOHA robot: two ViperX 300 s arms from the gym-aloha package, plus task objects.

The robot's MJCF and meshes are loaded from the installed gym-aloha package (not copied);
tasks add their objects as an MJCF fragment. The robot is commanded with 14 numbers,
6 joint positions and one gripper opening per arm; the gripper opening is normalised to
[0, 1] (closed .. open) and drives the two finger joints of the model.
"""
import importlib.util
from functools import lru_cache
from pathlib import Path

import mujoco
import numpy as np

ARMS = ("left", "right")
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
JOINT_NAMES = tuple(f"{arm}_{joint}" for arm in ARMS for joint in (*ARM_JOINTS, "gripper"))
DOF = len(JOINT_NAMES)  # 14

# Joint limits of the model (rad), gripper normalised; the same numbers the model's
# position actuators accept.
ARM_LOWER = np.array([-3.14158, -1.85005, -1.76278, -3.14158, -1.8675, -3.14158, 0.0])
ARM_UPPER = np.array([3.14158, 1.25664, 1.6057, 3.14158, 2.23402, 3.14158, 1.0])
LOWER, UPPER = np.tile(ARM_LOWER, 2), np.tile(ARM_UPPER, 2)

# Finger joint travel (m) of the model; the inner pad faces are ~0.022 m inside the joint
# value, so the opening between the pads is about 2 * (finger - 0.022).
FINGER_CLOSED, FINGER_OPEN = 0.021, 0.057
# Actuator gains of gym-aloha's position actuators: waist, shoulder, elbow, forearm roll,
# wrist angle, wrist rotate, finger.
ARM_KP = (800, 1600, 800, 10, 50, 20, 200)
ARM_FORCE = (150, 300, 100, 100, None, None, None)

HOME = np.tile(np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0, 1.0]), 2)
PHYSICS_DT = 0.002
TABLE_TOP_Z = 0.0
# Tool centre point: between the finger pads, in the gripper link's frame.
TCP_OFFSET = np.array([0.13, 0.0, 0.0])
# Our camera names (in the order images are stacked, the same as the topic contract's
# aloe.graph.topics.CAMERAS) and the MJCF cameras that render them.
CAMERAS = {"head": "top", "left_wrist": "left_wrist", "right_wrist": "right_wrist"}


def assets_dir() -> Path:
    """gym-aloha's assets, found without importing the package (it needs gymnasium)."""
    spec = importlib.util.find_spec("gym_aloha")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gym-aloha package is not installed; run ./setup.sh")
    return Path(spec.submodule_search_locations[0]) / "assets"


def _actuators() -> str:
    lines = []
    for arm in ARMS:
        for joint, lower, upper, kp, force in zip(ARM_JOINTS, ARM_LOWER, ARM_UPPER, ARM_KP, ARM_FORCE):
            limit = f' forcelimited="true" forcerange="-{force} {force}"' if force else ""
            lines.append(
                f'<position name="{arm}_{joint}" joint="vx300s_{arm}/{joint}" ctrlrange="{lower} {upper}" kp="{kp}"{limit}/>'
            )
        lines.append(f'<position name="{arm}_left_finger" joint="vx300s_{arm}/left_finger" ctrlrange="{FINGER_CLOSED} {FINGER_OPEN}" kp="{ARM_KP[-1]}"/>')
        lines.append(f'<position name="{arm}_right_finger" joint="vx300s_{arm}/right_finger" ctrlrange="{-FINGER_OPEN} {-FINGER_CLOSED}" kp="{ARM_KP[-1]}"/>')
    return "\n    ".join(lines)


def scene_xml(objects_xml: str) -> str:
    assets = assets_dir()
    return f"""<mujoco model="aloe_aloha">
  <compiler meshdir="{assets}"/>
  <option timestep="{PHYSICS_DT}"/>
  <include file="{assets / 'scene.xml'}"/>
  <include file="{assets / 'vx300s_dependencies.xml'}"/>
  <worldbody>
    <include file="{assets / 'vx300s_left.xml'}"/>
    <include file="{assets / 'vx300s_right.xml'}"/>
    {objects_xml}
  </worldbody>
  <actuator>
    {_actuators()}
  </actuator>
</mujoco>"""


@lru_cache(maxsize=32)
def build_model(objects_xml: str) -> mujoco.MjModel:
    """Compile the robot with a task's objects; compiled models are reused per fragment."""
    return mujoco.MjModel.from_xml_string(scene_xml(objects_xml))


class RobotIndex:
    """Where the 14 robot joints live in a compiled model's qpos, qvel and ctrl."""

    def __init__(self, model: mujoco.MjModel):
        self.qpos, self.qvel, self.fingers = [], [], []
        for arm in ARMS:
            for joint in ARM_JOINTS:
                j = model.joint(f"vx300s_{arm}/{joint}")
                self.qpos.append(j.qposadr[0])
                self.qvel.append(j.dofadr[0])
            finger = model.joint(f"vx300s_{arm}/left_finger")
            self.qpos.append(finger.qposadr[0])
            self.qvel.append(finger.dofadr[0])
            self.fingers.append(finger.qposadr[0])
        self.qpos, self.qvel = np.array(self.qpos), np.array(self.qvel)
        self.gripper_slots = np.array([6, 13])
        self.ctrl_arm = np.array([model.actuator(f"{arm}_{joint}").id for arm in ARMS for joint in ARM_JOINTS])
        self.ctrl_fingers = [
            (model.actuator(f"{arm}_left_finger").id, model.actuator(f"{arm}_right_finger").id) for arm in ARMS
        ]
        self.gripper_bodies = [model.body(f"vx300s_{arm}/gripper_link").id for arm in ARMS]
        self.arm_qpos = [self.qpos[i * 7:i * 7 + 6] for i in range(2)]
        self.arm_qvel = [self.qvel[i * 7:i * 7 + 6] for i in range(2)]

    def joint_positions(self, data) -> np.ndarray:
        q = data.qpos[self.qpos].copy()
        q[self.gripper_slots] = (q[self.gripper_slots] - FINGER_CLOSED) / (FINGER_OPEN - FINGER_CLOSED)
        return q

    def joint_velocities(self, data) -> np.ndarray:
        v = data.qvel[self.qvel].copy()
        v[self.gripper_slots] /= FINGER_OPEN - FINGER_CLOSED
        return v

    def set_joint_positions(self, data, q) -> None:
        """Place the robot at `q` (14, gripper normalised) with zero velocity."""
        q = np.asarray(q, dtype=float)
        arm = np.delete(q, self.gripper_slots)
        data.qpos[np.delete(self.qpos, self.gripper_slots)] = arm
        for k, (slot, adr) in enumerate(zip(self.gripper_slots, self.fingers)):
            finger = FINGER_CLOSED + q[slot] * (FINGER_OPEN - FINGER_CLOSED)
            data.qpos[adr], data.qpos[adr + 1] = finger, -finger
        data.qvel[self.qvel] = 0.0
        self.command(data, q)

    def command(self, data, q) -> None:
        """Write a 14-number joint command into the actuators."""
        q = np.asarray(q, dtype=float)
        data.ctrl[self.ctrl_arm] = np.delete(q, self.gripper_slots)
        for (left, right), slot in zip(self.ctrl_fingers, self.gripper_slots):
            finger = FINGER_CLOSED + q[slot] * (FINGER_OPEN - FINGER_CLOSED)
            data.ctrl[left], data.ctrl[right] = finger, -finger

    def tcp(self, data, arm: int):
        """World position and rotation matrix of an arm's tool centre point."""
        body = self.gripper_bodies[arm]
        rotation = data.xmat[body].reshape(3, 3)
        return data.xpos[body] + rotation @ TCP_OFFSET, rotation
