"""Scripted operators: experts that read privileged simulator state and act from any state.

Each control step the operator looks at where the objects and the grippers are now and
decides what to do (reach, grasp, carry, release, retreat); nothing is replayed, so it can
take over mid-episode from whatever state a policy left behind. It serves as the
demonstrator for training data and as the simulated operator who takes over by teleop.
"""
import numpy as np

from aloe.sim.env import CONTROL_DT, SimRobot
from aloe.sim.ik import ArmIK, nearest_top_down_rotation
from aloe.sim.scene import HOME, TABLE_TOP_Z
from aloe.sim.tasks import quat_yaw

OPEN, CLOSED = 1.0, 0.0


def wrap_half_turn(angle: float) -> float:
    """Angle in (-pi/2, pi/2]: grasps of a parallel gripper repeat every half turn."""
    return float((angle + np.pi / 2) % np.pi - np.pi / 2)


class ArmMotion:
    """Moves one arm's tool centre point smoothly to goals, gripper pointing down.

    The Cartesian set-point advances at a bounded speed; IK turns it into joint targets,
    whose rate is bounded too. A slow integral term removes the steady-state sag of the
    position-controlled joints, so the real tool reaches the goal within a millimetre or two.
    """

    def __init__(self, robot: SimRobot, arm: int, speed: float = 0.3, max_acceleration: float = 2.0, max_joint_rate: float = 2.5):
        self.robot, self.arm = robot, arm
        self.ik = ArmIK(robot.model, robot.index, arm)
        self.speed, self.max_acceleration, self.max_joint_rate = speed, max_acceleration, max_joint_rate
        self.slots = slice(arm * 7, arm * 7 + 6)
        self.sync()

    def sync(self) -> None:
        """Start from the robot's current state (after a reset or a takeover)."""
        self.q = self.robot.joint_positions()[self.slots].copy()
        self.gripper = float(self.robot.joint_positions()[self.arm * 7 + 6])
        self.setpoint, _ = self.robot.index.tcp(self.robot.data, self.arm)
        self.velocity = np.zeros(3)
        self.bias = np.zeros(3)

    def tcp(self):
        return self.robot.index.tcp(self.robot.data, self.arm)

    def close_angle(self) -> float:
        """The world angle along which the fingers currently close."""
        _, rotation = self.tcp()
        return float(np.arctan2(rotation[1, 1], rotation[0, 1]))

    def move(self, goal, close_angle: float, gripper: float, settle: bool = True) -> float:
        """One control step towards `goal`; returns the tool's distance to it (m)."""
        goal = np.asarray(goal, dtype=float)
        tcp, rotation = self.tcp()
        delta = goal - self.setpoint
        distance = np.linalg.norm(delta)
        # Bounded speed and acceleration: a jerk at the start of a carry swings a held object.
        step = delta * min(1.0, self.speed * CONTROL_DT / max(distance, 1e-9))
        change = step - self.velocity * CONTROL_DT
        limit = self.max_acceleration * CONTROL_DT**2
        if np.linalg.norm(change) > limit:
            step = self.velocity * CONTROL_DT + change * limit / np.linalg.norm(change)
        self.velocity = step / CONTROL_DT
        self.setpoint = self.setpoint + step
        # Integrate only once the set-point has arrived and the arm has slowed down: while
        # the tool still lags a moving set-point the error is lag, not sag, and integrating
        # it drives the tool past the goal (into the table at a grasp).
        if settle and distance < 1e-3 and np.max(np.abs(self.robot.joint_velocities()[self.slots])) < 0.05:
            self.bias = np.clip(self.bias + 0.1 * (goal - tcp), -0.02, 0.02)
        seed = self.robot.data.qpos.copy()
        seed[self.ik.qpos_adr] = self.q
        target, _ = self.ik.solve(seed, self.setpoint + self.bias, nearest_top_down_rotation(close_angle, rotation), iterations=15)
        self.q = self.q + np.clip(target - self.q, -self.max_joint_rate * CONTROL_DT, self.max_joint_rate * CONTROL_DT)
        self.grip(gripper)
        return float(np.linalg.norm(goal - tcp))

    def grip(self, gripper: float) -> None:
        """One control step moving only the gripper; the arm holds its joint targets."""
        self.gripper += np.clip(gripper - self.gripper, -4 * CONTROL_DT, 4 * CONTROL_DT)

    def go_home(self) -> float:
        """Joint-space return to the home pose; returns the largest joint error."""
        home = HOME[self.slots]
        self.q = self.q + np.clip(home - self.q, -self.max_joint_rate * CONTROL_DT, self.max_joint_rate * CONTROL_DT)
        self.grip(OPEN)
        self.setpoint, _ = self.tcp()
        self.velocity = np.zeros(3)
        self.bias = np.zeros(3)
        return float(np.max(np.abs(self.robot.joint_positions()[self.slots] - home)))

    def command(self) -> np.ndarray:
        return np.append(self.q, self.gripper)


class PickPlace:
    """Reactive pick-and-place of one object with one arm, closed-loop on the object's pose.

    `place_goal(robot)` gives the object's target centre (x, y, z) and yaw; the release
    happens when the object itself (not the gripper) is there.
    """

    HOVER = 0.10  # tool height for travelling, above every container rim
    GRASP_CLEARANCE = 0.008  # fingertips above the table at the grasp

    def __init__(self, motion: ArmMotion, obj, place_goal, release_tolerance=(0.002, np.radians(2.5))):
        self.motion, self.obj, self.place_goal = motion, obj, place_goal
        self.release_tolerance = release_tolerance
        self.closing_steps = 0
        self.releasing = 0  # control steps since the release began

    def object_pose(self):
        body = self.motion.robot.data.body(self.obj.name)
        return body.xpos.copy(), quat_yaw(body.xquat)

    def held(self) -> bool:
        """Gripper closed on the object: fingers stopped apart and the object between them."""
        tcp, _ = self.motion.tcp()
        position, _ = self.object_pose()
        opening = self.motion.robot.joint_positions()[self.motion.arm * 7 + 6]
        between = np.linalg.norm((position - tcp)[:2]) < 0.015 and abs(position[2] - tcp[2]) < 0.03
        return self.motion.gripper < 0.05 and opening > 0.05 and between

    def grasp_height(self) -> float:
        """Tool height that puts the fingertips just above the table, pads on the object."""
        return TABLE_TOP_Z + self.GRASP_CLEARANCE + 0.024 + max(0.0, self.obj.half_height * 2 - 0.03)

    def step(self) -> bool:
        """One control step; returns True once the object has been released at its goal."""
        motion = self.motion
        position, yaw = self.object_pose()
        tcp, _ = motion.tcp()
        goal, goal_yaw = self.place_goal(motion.robot)
        if self.releasing:
            # Open in place first: rising with the fingers still closing drags the object along.
            if self.releasing < 15:
                self.releasing += 1
                motion.grip(OPEN)
                return False
            motion.move([tcp[0], tcp[1], self.HOVER], motion.close_angle(), OPEN, settle=False)
            return tcp[2] > self.HOVER - 0.02
        if self.closing_steps > 0:
            # Close in place and let the grip force build before anything moves: carrying
            # with a half-closed gripper lets the object slide out between the pads.
            self.closing_steps += 1
            motion.grip(CLOSED)
            if self.closing_steps > 25:
                self.closing_steps = 0  # closed long enough: held() decides next step
            return False
        if self.held():
            # Carry: steer the tool so that the object, not the tool, lands on the goal.
            turn = wrap_half_turn(goal_yaw - yaw)
            angle = motion.close_angle() + turn
            offset = goal[:2] - position[:2]
            xy_error = np.linalg.norm(offset)
            above = tcp[2] + (goal[2] - position[2])
            if xy_error > 0.03 and tcp[2] < self.HOVER - 0.02:
                # Lift straight up first: an object dragged along the table pivots in the grip.
                motion.move([tcp[0], tcp[1], self.HOVER], motion.close_angle(), CLOSED)
                return False
            if xy_error > 0.01 or abs(turn) > np.radians(8):
                target_z = max(self.HOVER, tcp[2]) if xy_error > 0.03 else max(above, tcp[2] - 0.01)
                motion.move([tcp[0] + offset[0], tcp[1] + offset[1], target_z], angle, CLOSED)
                return False
            motion.move([tcp[0] + offset[0], tcp[1] + offset[1], above], angle, CLOSED)
            if xy_error < self.release_tolerance[0] and abs(turn) < self.release_tolerance[1] and abs(goal[2] - position[2]) < 0.004:
                self.releasing = 1
            return False
        grasp_angle = yaw + np.pi / 2
        xy_error = np.linalg.norm(position[:2] - tcp[:2])
        if motion.gripper < 0.5 and self.closing_steps == 0:
            # Closed on nothing (a missed or lost grasp): open and start over.
            motion.move([tcp[0], tcp[1], tcp[2] + 0.02], grasp_angle, OPEN, settle=False)
            return False
        if xy_error > 0.006:
            motion.move([position[0], position[1], self.HOVER if xy_error > 0.03 else max(tcp[2], self.grasp_height() + 0.03)], grasp_angle, OPEN)
            return False
        distance = motion.move([position[0], position[1], self.grasp_height()], grasp_angle, OPEN)
        if distance < 0.004:
            self.closing_steps = 1
        return False


class InsertionOperator:
    """Left arm picks the phone and drops it into the box from just above the rim."""

    def __init__(self, robot: SimRobot):
        self.robot = robot
        self.left, self.right = ArmMotion(robot, 0), ArmMotion(robot, 1)
        phone = robot.scene.objects[0]
        self.pick = PickPlace(self.left, phone, self.box_goal)
        self.done = False

    def box_goal(self, robot):
        x, y, yaw = robot.scene.containers["box"]
        phone = robot.scene.objects[0]
        return np.array([x, y, TABLE_TOP_Z + 0.03 + phone.half_height + 0.006]), yaw

    def act(self) -> np.ndarray:
        if not self.done:
            self.done = self.pick.step()
        else:
            self.left.go_home()
        self.right.go_home()
        return np.concatenate([self.left.command(), self.right.command()])


OPERATORS = {"insertion": InsertionOperator}


def make_operator(robot: SimRobot):
    return OPERATORS[robot.scene.task](robot)
