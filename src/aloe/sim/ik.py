"""Inverse kinematics for one ViperX arm's tool centre point (damped least squares)."""
import mujoco
import numpy as np

from aloe.sim.scene import ARM_LOWER, ARM_UPPER, TCP_OFFSET, RobotIndex

# The forearm roll is redundant with the wrist for top-down poses; keeping it near zero
# avoids solutions that flip the forearm half a turn between two control steps.
IK_LOWER = ARM_LOWER[:6].copy()
IK_UPPER = ARM_UPPER[:6].copy()
IK_LOWER[3], IK_UPPER[3] = -0.6, 0.6


def top_down_rotation(close_angle: float) -> np.ndarray:
    """Gripper pointing straight down, fingers closing along (cos a, sin a, 0) in the world."""
    x = np.array([0.0, 0.0, -1.0])
    y = np.array([np.cos(close_angle), np.sin(close_angle), 0.0])
    return np.column_stack([x, y, np.cross(x, y)])


def nearest_top_down_rotation(close_angle: float, current: np.ndarray) -> np.ndarray:
    """The top-down grasp rotation for `close_angle` or `close_angle + pi` (the same grasp for a
    parallel gripper), whichever needs less wrist rotation from `current`."""
    first = top_down_rotation(close_angle)
    return first if first[:, 1] @ current[:, 1] >= 0 else top_down_rotation(close_angle + np.pi)


def rotation_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Axis-angle-like error that rotates `current` towards `target` (world frame)."""
    return 0.5 * sum(np.cross(current[:, i], target[:, i]) for i in range(3))


class ArmIK:
    """Solves joint positions for a TCP pose on a scratch copy of the simulation state."""

    def __init__(self, model: mujoco.MjModel, index: RobotIndex, arm: int, damping: float = 0.05):
        self.model, self.index, self.arm = model, index, arm
        self.scratch = mujoco.MjData(model)
        self.qpos_adr = index.arm_qpos[arm]
        self.dof_adr = index.arm_qvel[arm]
        self.body = index.gripper_bodies[arm]
        self.damping = damping
        self.jacp, self.jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))

    def tcp(self):
        rotation = self.scratch.xmat[self.body].reshape(3, 3)
        return self.scratch.xpos[self.body] + rotation @ TCP_OFFSET, rotation

    def solve(self, qpos: np.ndarray, position, rotation=None, iterations: int = 30, tol: float = 1e-4):
        """Arm joint angles (6) reaching `position` (and `rotation`, if given) from full `qpos`.

        Returns (joints, position error in metres).
        """
        data = self.scratch
        data.qpos[:] = qpos
        q = data.qpos[self.qpos_adr].copy()
        err_norm = np.inf
        for _ in range(iterations):
            data.qpos[self.qpos_adr] = q
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            tcp, current = self.tcp()
            error = np.asarray(position) - tcp
            err_norm = float(np.linalg.norm(error))
            mujoco.mj_jac(self.model, data, self.jacp, self.jacr, tcp, self.body)
            jac = self.jacp[:, self.dof_adr]
            if rotation is not None:
                rot_err = rotation_error(current, rotation)
                error = np.concatenate([error, 0.3 * rot_err])
                jac = np.vstack([jac, 0.3 * self.jacr[:, self.dof_adr]])
                if err_norm < tol and np.linalg.norm(rot_err) < 1e-3:
                    break
            elif err_norm < tol:
                break
            step = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(len(error)), error)
            q = np.clip(q + step, IK_LOWER, IK_UPPER)
        return q, err_norm
