"""Operator inputs to joint targets, without ROS: keyboard, gamepad (Joy axes and buttons)
and a leader arm, with one toggle that takes over and hands back.

Taking over starts from the measured pose (the robot does not jump), so the operator moves
the robot from where the policy left it. While engaged the target is sent every tick.
"""
from typing import Optional

import numpy as np

DOF, ARM_DOF = 14, 7
KEY_HELP = ("space: take over / hand back, tab: other arm, 1-6: joint, 7: gripper, "
            "+/-: move it, s: end as success, f: end as failure")


class Teleop:
    def __init__(self, key_step: float = 0.05, joy_speed: float = 1.0, deadzone: float = 0.1):
        self.key_step, self.joy_speed, self.deadzone = key_step, joy_speed, deadzone
        self.engaged = False
        self.target: Optional[np.ndarray] = None
        self.measured: Optional[np.ndarray] = None
        self.arm, self.joint = 0, 0
        self.buttons = ()

    def observe(self, positions) -> None:
        self.measured = np.asarray(positions, dtype=float)

    def toggle(self) -> str:
        if self.engaged:
            self.engaged, self.target = False, None
            return "handing back"
        if self.measured is None or len(self.measured) != DOF:
            return "cannot take over: no joint state from the robot yet"
        self.engaged, self.target = True, self.measured.copy()
        return "taking over"

    def slot(self) -> int:
        return self.arm * ARM_DOF + self.joint

    def key(self, key: str) -> Optional[str]:
        """One key press; returns what happened (or the episode outcome key: "success",
        "failure"), None for keys that do nothing."""
        if key == " ":
            return self.toggle()
        if key == "\t":
            self.arm = 1 - self.arm
            return f"arm {'left' if self.arm == 0 else 'right'}"
        if key in "1234567" and len(key) == 1:
            self.joint = int(key) - 1
            return f"joint {self.joint + 1}{' (gripper)' if self.joint == 6 else ''}"
        if key in ("+", "=", "-") and self.engaged:
            self.target[self.slot()] += self.key_step if key != "-" else -self.key_step
            return None
        if key == "s":
            return "success"
        if key == "f":
            return "failure"
        return None

    def joy(self, axes, buttons, dt: float) -> Optional[str]:
        """Button 0 takes over / hands back, button 1 switches arms (on press); axes 0-5 move
        the joints of the current arm, axis 6 its gripper, at `joy_speed` per unit deflection."""
        pressed = [b and not (k < len(self.buttons) and self.buttons[k]) for k, b in enumerate(buttons)]
        self.buttons = tuple(buttons)
        said = None
        if len(pressed) > 0 and pressed[0]:
            said = self.toggle()
        if len(pressed) > 1 and pressed[1]:
            self.arm = 1 - self.arm
            said = f"arm {'left' if self.arm == 0 else 'right'}"
        if self.engaged:
            deflection = np.zeros(ARM_DOF)
            values = np.asarray(axes[:ARM_DOF], dtype=float)
            deflection[: len(values)] = np.where(np.abs(values) > self.deadzone, values, 0.0)
            self.target[self.arm * ARM_DOF:(self.arm + 1) * ARM_DOF] += deflection * self.joy_speed * dt
        return said

    def leader(self, positions) -> None:
        """A leader arm's joint positions (14, same order as the robot's) while engaged."""
        if self.engaged and len(positions) == DOF:
            self.target = np.asarray(positions, dtype=float).copy()

    def command(self) -> Optional[np.ndarray]:
        return self.target.copy() if self.engaged else None
