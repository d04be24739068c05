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

    # How far the tool set-point may run ahead of the measured tool while our commands
    # have not reached the robot: more than the lag and sag of normal tracking, less than
    # a jump that swings a held object loose. (Capping joint targets the same way kept
    # the arm from leaving the odd poses a failing policy leaves: takeovers fell to 12 %.)
    MAX_LEAD = 0.03  # m

    def __init__(self, robot: SimRobot, arm: int, speed: float = 0.2, max_acceleration: float = 2.0, max_joint_rate: float = 2.5):
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
        commands_ahead = np.max(np.abs(self.q - self.robot.joint_positions()[self.slots])) > 0.05
        if commands_ahead and np.linalg.norm(self.setpoint + step - tcp) > self.MAX_LEAD:
            # The robot has fallen behind our commands (held up on their way to it): wait
            # for it, or a burst of late commands would jump the arm by the whole backlog.
            # (A robot that has our commands and still lags, e.g. turning its wrist first
            # from an odd pose, is not waited for: the set-point leads it out.)
            step = np.zeros(3)
        self.velocity = step / CONTROL_DT
        self.setpoint = self.setpoint + step
        # Integrate only once the set-point has arrived and the arm has slowed down: while
        # the tool still lags a moving set-point the error is lag, not sag, and integrating
        # it drives the tool past the goal (into the table at a grasp).
        if settle and distance < 1e-3 and self.at_rest():
            self.bias = np.clip(self.bias + 0.1 * (goal - tcp), -0.02, 0.02)
        seed = self.robot.data.qpos.copy()
        seed[self.ik.qpos_adr] = self.q
        target, _ = self.ik.solve(seed, self.setpoint + self.bias, nearest_top_down_rotation(close_angle, rotation), iterations=15)
        self.advance_joints(target)
        self.grip(gripper)
        return float(np.linalg.norm(goal - tcp))

    def advance_joints(self, target) -> None:
        """Joint targets one bounded step towards `target`."""
        self.q = self.q + np.clip(target - self.q, -self.max_joint_rate * CONTROL_DT, self.max_joint_rate * CONTROL_DT)

    def at_rest(self) -> bool:
        """The arm's joints have stopped: an arm still moving overshoots the goal it passes."""
        return bool(np.max(np.abs(self.robot.joint_velocities()[self.slots])) < 0.05)

    def grip(self, gripper: float) -> None:
        """One control step moving only the gripper; the arm holds its joint targets."""
        self.gripper += np.clip(gripper - self.gripper, -4 * CONTROL_DT, 4 * CONTROL_DT)

    def go_home(self) -> float:
        """Joint-space return to the home pose; returns the largest joint error."""
        home = HOME[self.slots]
        self.advance_joints(home)
        self.grip(OPEN)
        self.setpoint, _ = self.tcp()
        self.velocity = np.zeros(3)
        self.bias = np.zeros(3)
        return float(np.max(np.abs(self.robot.joint_positions()[self.slots] - home)))

    def command(self) -> np.ndarray:
        return np.append(self.q, self.gripper)


class GraspSkill:
    """The grip timing every grasping skill shares.

    Close in place and let the grip force build before anything moves: carrying with a
    half-closed gripper lets the object slide out between the pads. Open in place before
    rising: rising with the fingers still closing drags the object along. Both phases end
    on the measured fingers, not on a count of commands sent, because commands reach the
    robot through the graph with a delay that varies from tick to tick.
    """

    HOVER = 0.10  # tool height for travelling, above every container rim
    CLOSE_STEPS, OPEN_STEPS = 25, 15  # at least this long, then until the fingers are at rest
    GRIP_TIMEOUT_STEPS = 150  # fingers still moving after 3 s: give up waiting
    FINGERS_AT_REST = 0.1  # measured finger speed (normalised opening per second)
    FULLY_OPEN = 0.95  # measured opening above which the fingers touch nothing

    def __init__(self, motion: ArmMotion):
        self.motion = motion
        self.closing_steps = 0  # control steps since the gripper began to close
        self.releasing = 0  # control steps since the release began

    def fingers(self):
        """Measured (opening, speed) of this arm's gripper."""
        slot = self.motion.arm * 7 + 6
        robot = self.motion.robot
        return float(robot.joint_positions()[slot]), abs(float(robot.joint_velocities()[slot]))

    def grip_phase(self, tcp):
        """One step of closing or releasing, if either is under way: False while it lasts,
        True once released and clear above; None when neither is under way."""
        motion = self.motion
        opening, speed = self.fingers()
        if self.releasing:
            opened = opening > self.FULLY_OPEN and speed < self.FINGERS_AT_REST
            if self.releasing < self.OPEN_STEPS or not (opened or self.releasing > self.GRIP_TIMEOUT_STEPS):
                self.releasing += 1
                motion.grip(OPEN)
                return False
            motion.move([tcp[0], tcp[1], self.HOVER], motion.close_angle(), OPEN, settle=False)
            return bool(tcp[2] > self.HOVER - 0.02)
        if self.closing_steps:
            self.closing_steps += 1
            motion.grip(CLOSED)
            # The fingers have closed when they have left the open position and stopped.
            closed = opening < self.FULLY_OPEN and speed < self.FINGERS_AT_REST
            if self.closing_steps > self.CLOSE_STEPS and (closed or self.closing_steps > self.GRIP_TIMEOUT_STEPS):
                self.closing_steps = 0  # held() decides the next step
            return False
        return None


class PickPlace(GraspSkill):
    """Reactive pick-and-place of one object with one arm, closed-loop on the object's pose.

    `place_goal(robot)` gives the object's target centre (x, y, z) and yaw; the release
    happens when the object itself (not the gripper) is there.
    """

    GRASP_CLEARANCE = 0.008  # fingertips above the table at the grasp
    FINGER_REACH = 0.024  # fingertips below the tool centre point

    STUCK_STEPS = 100  # 2 s without getting 2 mm closer to the object

    def __init__(self, motion: ArmMotion, obj, place_goal, release_tolerance=(0.002, np.radians(2.5))):
        super().__init__(motion)
        self.obj, self.place_goal = obj, place_goal
        self.release_tolerance = release_tolerance
        self.best_xy_error, self.steps_without_progress, self.retreating = np.inf, 0, False
        self.last_position = None  # the object's position one control step ago

    def stuck(self, xy_error: float) -> bool:
        """True (once, then the count restarts) when the approach stopped getting closer.
        Aligned above the object (descending) counts as progress."""
        if xy_error <= 0.006 or xy_error < self.best_xy_error - 0.002:
            self.best_xy_error, self.steps_without_progress = xy_error, 0
            return False
        self.steps_without_progress += 1
        if self.steps_without_progress < self.STUCK_STEPS:
            return False
        self.best_xy_error, self.steps_without_progress = np.inf, 0
        return True

    @staticmethod
    def pose_of(robot: SimRobot, name: str):
        body = robot.data.body(name)
        return body.xpos.copy(), quat_yaw(body.xquat)

    def object_pose(self):
        return self.pose_of(self.motion.robot, self.obj.name)

    def held(self) -> bool:
        """Gripper closed on the object: fingers stopped apart and the object between them."""
        tcp, _ = self.motion.tcp()
        position, _ = self.object_pose()
        opening, _ = self.fingers()
        between = np.linalg.norm((position - tcp)[:2]) < 0.015 and abs(position[2] - tcp[2]) < 0.04
        return self.motion.gripper < 0.05 and self.FULLY_OPEN > opening > 0.05 and between

    def grasp_height(self, position) -> float:
        """Tool height that puts the fingertips just above the object's underside (the
        table, or the rim it came to rest on), pads on the object."""
        underside = max(TABLE_TOP_Z, position[2] - self.obj.half_height)
        return underside + self.GRASP_CLEARANCE + self.FINGER_REACH + max(0.0, self.obj.half_height * 2 - 0.03)

    def step(self) -> bool:
        """One control step; returns True once the object has been released at its goal."""
        position, yaw = self.object_pose()
        moved = 0.0 if self.last_position is None else float(np.linalg.norm(position - self.last_position))
        self.last_position = position
        return self._step(position, yaw, moved)

    def _step(self, position, yaw, moved: float) -> bool:
        motion = self.motion
        tcp, _ = motion.tcp()
        goal, goal_yaw = self.place_goal(motion.robot)
        phase = self.grip_phase(tcp)
        if phase is not None:
            return phase
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
                target_z = max(self.HOVER, tcp[2]) if xy_error > 0.03 else max(above, tcp[2] - 0.005)
                motion.move([tcp[0] + offset[0], tcp[1] + offset[1], target_z], angle, CLOSED)
                return False
            motion.move([tcp[0] + offset[0], tcp[1] + offset[1], above], angle, CLOSED)
            if xy_error < self.release_tolerance[0] and abs(turn) < self.release_tolerance[1] and abs(goal[2] - position[2]) < 0.004:
                self.releasing = 1
            return False
        grasp_angle = yaw + np.pi / 2
        xy_error = np.linalg.norm(position[:2] - tcp[:2])
        if motion.gripper < 0.5:
            # Closed on nothing (a missed or lost grasp): open and start over.
            motion.move([tcp[0], tcp[1], tcp[2] + 0.02], grasp_angle, OPEN, settle=False)
            return False
        if self.retreating or self.stuck(xy_error):
            # No progress towards the object (a finger caught on a rim or on the object):
            # back off to travel height and come again from above.
            self.retreating = tcp[2] < self.HOVER - 0.02
            motion.move([tcp[0], tcp[1], self.HOVER], grasp_angle, OPEN, settle=False)
            return False
        if xy_error > 0.006:
            motion.move([position[0], position[1], self.HOVER if xy_error > 0.03 else max(tcp[2], self.grasp_height(position) + 0.03)], grasp_angle, OPEN)
            return False
        distance = motion.move([position[0], position[1], self.grasp_height(position)], grasp_angle, OPEN)
        # Close once the arm has stopped (an arm still moving overshoots into the table), or
        # at once on an object that is moving (a touched capsule rolls away from a waiting gripper).
        if distance < 0.004 and (motion.at_rest() or moved > 0.01 * CONTROL_DT):
            self.closing_steps = 1
        return False


class SlideKnob(GraspSkill):
    """Grasp a knob from above and drag it sideways until its slide joint reaches a target."""

    def __init__(self, motion: ArmMotion, knob_geom: str, opening, target: float, tolerance: float = 0.04):
        super().__init__(motion)
        self.knob, self.opening = knob_geom, opening
        self.half_height = float(motion.robot.model.geom(knob_geom).size[2])
        self.target, self.tolerance = target, tolerance

    def knob_position(self):
        return self.motion.robot.data.geom(self.knob).xpos.copy()

    def held(self) -> bool:
        tcp, _ = self.motion.tcp()
        offset = self.knob_position() - tcp
        opening, _ = self.fingers()
        return self.motion.gripper < 0.05 and opening < self.FULLY_OPEN and np.linalg.norm(offset[:2]) < 0.015

    def step(self, slide_direction) -> bool:
        """One control step; True once the knob is released at the target and the tool is clear.
        `slide_direction` is the unit (x, y) in which the opening grows."""
        motion = self.motion
        knob, (tcp, _) = self.knob_position(), motion.tcp()
        angle = float(np.arctan2(slide_direction[1], slide_direction[0])) + np.pi / 2
        # Pads on the knob with the fingertips 6 mm above the knob's foot, clear of the lid.
        grasp_z = knob[2] - self.half_height + 0.006 + PickPlace.FINGER_REACH
        phase = self.grip_phase(tcp)
        if phase is not None:
            return phase
        if self.held():
            error = self.target - self.opening()
            if abs(error) < self.tolerance / 2:
                self.releasing = 1
                return False
            # Lead the knob along the slide; the joint keeps it on its line.
            lead = np.clip(error, -0.03, 0.03)
            motion.move([knob[0] + lead * slide_direction[0], knob[1] + lead * slide_direction[1], grasp_z], angle, CLOSED)
            return False
        if motion.gripper < 0.5:
            motion.move([tcp[0], tcp[1], tcp[2] + 0.02], angle, OPEN, settle=False)
            return False
        xy_error = np.linalg.norm(knob[:2] - tcp[:2])
        if xy_error > 0.006:
            motion.move([knob[0], knob[1], self.HOVER if xy_error > 0.03 else max(tcp[2], grasp_z + 0.02)], angle, OPEN)
            return False
        if motion.move([knob[0], knob[1], grasp_z], angle, OPEN) < 0.004 and motion.at_rest():
            self.closing_steps = 1
        return False


class Operator:
    """A bimanual expert: each control step, decide from the state what to do next."""

    def __init__(self, robot: SimRobot):
        self.robot = robot
        self.arms = (ArmMotion(robot, 0), ArmMotion(robot, 1))
        self.skill, self.skill_arm = None, None

    def plan(self):
        """The next (arm index, skill) given the state now, or None when the task is done."""
        raise NotImplementedError

    def hold(self) -> np.ndarray:
        """The command it last gave, without deciding anything: while the robot is not
        following (it waits for the command stream after a reset), planning on would run
        the operator's own targets away from an arm that stands still."""
        return np.concatenate([arm.command() for arm in self.arms])

    def act(self) -> np.ndarray:
        if self.skill is None:
            planned = self.plan()
            if planned is not None:
                self.skill_arm, self.skill = planned
        if self.skill is not None and self.run(self.skill):
            self.skill = None
        for index, arm in enumerate(self.arms):
            if self.skill is None or index != self.skill_arm:
                arm.go_home()
        return np.concatenate([arm.command() for arm in self.arms])

    def run(self, skill) -> bool:
        return skill.step()


class InsertionOperator(Operator):
    """Left arm picks the phone and lowers it into the box from just above the rim."""

    def plan(self):
        if self.robot.status().success:
            return None
        return 0, PickPlace(self.arms[0], self.robot.scene.objects[0], self.box_goal)

    def box_goal(self, robot):
        x, y, yaw = robot.scene.containers["box"]
        phone = robot.scene.objects[0]
        return np.array([x, y, TABLE_TOP_Z + 0.03 + phone.half_height + 0.006]), yaw


class DrawerOperator(Operator):
    """Right arm slides the lid open, left arm puts the object in, right arm slides it shut."""

    def plan(self):
        task, data = self.robot.task, self.robot.data
        opened, placed, closed = (done for _, done in self.robot.status().stages)
        if closed:
            return None
        if not placed and task.lid_opening(data) < 0.85:
            return 1, SlideKnob(self.arms[1], "knob", lambda: task.lid_opening(data), 1.0, tolerance=0.1)
        if not placed:
            return 0, PickPlace(self.arms[0], self.robot.scene.objects[0], self.box_goal, release_tolerance=(0.006, np.pi))
        return 1, SlideKnob(self.arms[1], "knob", lambda: task.lid_opening(data), 0.0, tolerance=0.04)

    def run(self, skill) -> bool:
        if isinstance(skill, SlideKnob):
            yaw = self.robot.scene.containers["box"][2]
            return skill.step((np.cos(yaw), np.sin(yaw)))
        return skill.step()

    def box_goal(self, robot):
        x, y, _ = robot.scene.containers["box"]
        item = robot.scene.objects[0]
        _, yaw = PickPlace.pose_of(robot, item.name)
        return np.array([x, y, TABLE_TOP_Z + robot.task.wall_height + item.half_height + 0.008]), yaw


class SortingOperator(Operator):
    """Each object not yet in its bin is carried there by the arm on that bin's side, to the
    free spot of the bin farthest from what is already in it."""

    SPOTS = ((0.0, -0.028), (0.0, 0.028), (-0.028, 0.0), (0.028, 0.0))

    def plan(self):
        scene, task, data = self.robot.scene, self.robot.task, self.robot.data
        for obj, target in zip(scene.objects, scene.extra["targets"]):
            bin_pose = scene.containers[f"{target}_bin"]
            if not task.in_bin(data, obj.name, bin_pose):
                arm = 0 if target == "left" else 1
                others = [data.body(o.name).xpos[:2] for o in scene.objects if o is not obj and task.in_bin(data, o.name, bin_pose)]
                spots = [np.array(bin_pose[:2]) + spot for spot in self.SPOTS]
                spot = max(spots, key=lambda p: min((np.linalg.norm(p - q) for q in others), default=1.0))
                return arm, PickPlace(self.arms[arm], obj, self.spot_goal(obj, spot), release_tolerance=(0.01, np.pi))
        return None

    @staticmethod
    def spot_goal(obj, spot):
        def goal(robot):
            _, yaw = PickPlace.pose_of(robot, obj.name)
            return np.array([spot[0], spot[1], TABLE_TOP_Z + robot.task.wall_height + obj.half_height + 0.01]), yaw
        return goal


OPERATORS = {"insertion": InsertionOperator, "drawer": DrawerOperator, "sorting": SortingOperator}


def make_operator(robot: SimRobot):
    return OPERATORS[robot.scene.task](robot)
