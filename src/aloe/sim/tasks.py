"""The three simulated tasks: precision insertion, a three-stage lidded box ("drawer"), sorting.

A task samples a scene from a seed and a variant ("train", or "unseen" objects held out
of all training data), writes its objects as MJCF, places them, and detects its stages,
success and failure from simulator state. Containers are mocap bodies, so a disturbance
can displace them mid-episode.
"""
from dataclasses import dataclass, field

import numpy as np

from aloe.sim.scene import TABLE_TOP_Z

VARIANTS = ("train", "unseen")

COLOURS = {
    "red": "0.85 0.1 0.1 1",
    "green": "0.1 0.7 0.2 1",
    "blue": "0.15 0.3 0.9 1",
    "yellow": "0.95 0.85 0.1 1",
    # Held out: only ever seen in the "unseen" variant.
    "purple": "0.55 0.2 0.75 1",
    "orange": "1.0 0.5 0.05 1",
    "white": "0.92 0.92 0.92 1",
}
TRAIN_COLOURS = ("red", "green", "blue", "yellow")
UNSEEN_COLOURS = ("purple", "orange", "white")

OBJECT_FRICTION = 'friction="1.5 0.05 0.001" condim="4" solimp="0.95 0.99 0.001" solref="0.004 1"'


@dataclass
class Obj:
    """A free object: name, MJCF geom type, half sizes, colour, initial pose (x, y, yaw)."""

    name: str
    shape: str  # box | cylinder | sphere | capsule | ellipsoid
    size: tuple
    colour: str
    pose: tuple
    mass: float = 0.05

    @property
    def half_height(self) -> float:
        if self.shape in ("box", "ellipsoid"):
            return self.size[2]
        if self.shape == "sphere":
            return self.size[0]
        if self.shape == "capsule":
            return self.size[0] + self.size[1]
        return self.size[1]  # cylinder

    @property
    def grasp_width(self) -> float:
        """Width across the fingers when grasped with fingers closing along the object's y."""
        return 2 * (self.size[1] if self.shape in ("box", "ellipsoid") else self.size[0])

    @property
    def half_extents(self) -> np.ndarray:
        if self.shape in ("box", "ellipsoid"):
            return np.array(self.size[:3])
        radius = self.size[0]
        return np.array([radius, radius, self.half_height])

    def xml(self) -> str:
        size = " ".join(f"{s:.4f}" for s in self.size)
        # The robot model computes inertia only from geom groups 4-5, so objects state theirs
        # (a solid box of the object's extents: close enough for these shapes).
        a, b, c = self.half_extents
        inertia = " ".join(f"{self.mass / 3 * v:.3e}" for v in (b * b + c * c, a * a + c * c, a * a + b * b))
        return (
            f'<body name="{self.name}" pos="0 0 0.5"><freejoint name="{self.name}_joint"/>'
            f'<inertial pos="0 0 0" mass="{self.mass}" diaginertia="{inertia}"/>'
            f'<geom name="{self.name}_geom" type="{self.shape}" size="{size}" rgba="{COLOURS[self.colour]}" '
            f'{OBJECT_FRICTION}/></body>'
        )


def tray_xml(name: str, inner_half: tuple, wall_height: float, colour: str, wall: float = 0.005, floor: float = 0.003, children: str = "") -> str:
    """An open-top container as a mocap body; its frame sits on the table at the floor's centre.
    `children` (MJCF bodies) move with it, such as a lid."""
    lx, ly = inner_half
    h = wall_height / 2
    rgba = COLOURS[colour] if colour in COLOURS else colour
    geoms = [
        f'<geom type="box" size="{lx + wall:.4f} {ly + wall:.4f} {floor / 2:.4f}" pos="0 0 {floor / 2:.4f}" rgba="{rgba}"/>',
        f'<geom type="box" size="{wall / 2:.4f} {ly + wall:.4f} {h:.4f}" pos="{lx + wall / 2:.4f} 0 {h:.4f}" rgba="{rgba}"/>',
        f'<geom type="box" size="{wall / 2:.4f} {ly + wall:.4f} {h:.4f}" pos="{-lx - wall / 2:.4f} 0 {h:.4f}" rgba="{rgba}"/>',
        f'<geom type="box" size="{lx:.4f} {wall / 2:.4f} {h:.4f}" pos="0 {ly + wall / 2:.4f} {h:.4f}" rgba="{rgba}"/>',
        f'<geom type="box" size="{lx:.4f} {wall / 2:.4f} {h:.4f}" pos="0 {-ly - wall / 2:.4f} {h:.4f}" rgba="{rgba}"/>',
    ]
    return f'<body name="{name}" mocap="true" pos="0 0 0">{"".join(geoms)}{children}</body>'


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_yaw(quat) -> float:
    w, x, y, z = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def upright(data, body: str) -> float:
    """Cosine between a body's z axis and the world's."""
    return float(data.body(body).xmat.reshape(3, 3)[2, 2])


@dataclass
class Scene:
    """What a task sampled for one episode."""

    task: str
    variant: str
    seed: int
    instruction: str
    objects: list
    containers: dict  # name -> (x, y, yaw)
    extra: dict = field(default_factory=dict)


class Task:
    name = ""
    stage_names: tuple = ()
    episode_seconds = 30.0

    def sample(self, rng: np.random.Generator, variant: str, seed: int) -> Scene:
        raise NotImplementedError

    def objects_xml(self, scene: Scene) -> str:
        raise NotImplementedError

    def stages(self, data, scene: Scene) -> list:
        """One bool per stage: whether it is accomplished now."""
        raise NotImplementedError

    def place(self, model, data, scene: Scene) -> None:
        """Put the sampled objects and containers where the scene says."""
        for obj in scene.objects:
            joint = model.joint(f"{obj.name}_joint")
            x, y, yaw = obj.pose
            data.qpos[joint.qposadr[0]:joint.qposadr[0] + 7] = [x, y, TABLE_TOP_Z + obj.half_height + 0.001, *yaw_quat(yaw)]
        for name, pose in scene.containers.items():
            self.move_container(model, data, name, pose)

    @staticmethod
    def move_container(model, data, name: str, pose) -> None:
        mocap = model.body(name).mocapid[0]
        data.mocap_pos[mocap] = [pose[0], pose[1], TABLE_TOP_Z]
        data.mocap_quat[mocap] = yaw_quat(pose[2])

    def extra_state(self, data, scene: Scene) -> list:
        """Task state beyond object and container poses, for `SimRobot.object_state`."""
        return []

    def failure(self, data, scene: Scene):
        """A reason the episode cannot succeed any more (an object fell off the table), or None."""
        for obj in scene.objects:
            if data.body(obj.name).xpos[2] < TABLE_TOP_Z - 0.05:
                return f"{obj.name} fell off the table"
        return None


def in_container(data, obj_name: str, container_pose, allowed_half, below: float) -> bool:
    """Whether an object's centre lies within `allowed_half` (x, y) of a container's centre,
    in the container's frame, and less than `below` above the table."""
    x, y, yaw = container_pose
    offset = data.body(obj_name).xpos - np.array([x, y, TABLE_TOP_Z])
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.array([c * offset[0] + s * offset[1], -s * offset[0] + c * offset[1]])
    return bool(abs(local[0]) <= allowed_half[0] and abs(local[1]) <= allowed_half[1] and offset[2] < below)


class Insertion(Task):
    """Pick a thin phone-like slab and pack it into a box with a few millimetres of clearance."""

    name = "insertion"
    stage_names = ("grasped", "inserted")
    episode_seconds = 20.0
    clearance = 0.004  # per side

    def sample(self, rng, variant, seed):
        if variant == "train":
            half = (rng.uniform(0.036, 0.042), rng.uniform(0.017, 0.020), 0.010)
            colour = str(rng.choice(TRAIN_COLOURS))
        else:  # longer, narrower phones in held-out colours
            half = (rng.uniform(0.045, 0.050), rng.uniform(0.014, 0.016), 0.009)
            colour = str(rng.choice(UNSEEN_COLOURS))
        phone = Obj("phone", "box", half, colour, (rng.uniform(-0.12, -0.04), rng.uniform(0.52, 0.68), rng.uniform(-0.5, 0.5)), mass=0.08)
        box = (rng.uniform(0.02, 0.09), rng.uniform(0.52, 0.68), rng.uniform(-0.4, 0.4))
        return Scene(self.name, variant, seed, f"pack the {colour} phone into the box", [phone], {"box": box})

    def inner_half(self, scene):
        phone = scene.objects[0]
        return (phone.size[0] + self.clearance, phone.size[1] + self.clearance)

    def objects_xml(self, scene):
        return scene.objects[0].xml() + tray_xml("box", self.inner_half(scene), 0.03, "0.55 0.4 0.25 1")

    def stages(self, data, scene):
        phone = data.body("phone").xpos
        # Inside the box, the phone's centre can be at most `clearance` off the box's centre.
        slack = (self.clearance + 0.002, self.clearance + 0.002)
        inserted = in_container(data, "phone", scene.containers["box"], slack, below=0.025) and upright(data, "phone") > 0.95
        return [bool(phone[2] > TABLE_TOP_Z + scene.objects[0].half_height + 0.02) or inserted, inserted]


class Drawer(Task):
    """Three dependent stages: slide a box's lid open, put an object in, slide the lid shut.

    The lid runs on a slide joint along the box's x axis and carries a knob on top; it
    clears the walls by a millimetre, so only the gripper moves it.
    """

    name = "drawer"
    stage_names = ("opened", "placed", "closed")
    episode_seconds = 40.0
    inner = (0.045, 0.045)
    wall_height = 0.04
    travel = 0.10  # lid opening along the box's +x
    knob_half = (0.012, 0.012, 0.012)

    def sample(self, rng, variant, seed):
        if variant == "train":
            shape = str(rng.choice(["box", "cylinder"]))
            size = (0.016, 0.016, 0.015) if shape == "box" else (0.016, 0.015)
            colour = str(rng.choice(TRAIN_COLOURS))
        else:  # shapes and colours never used for training
            shape = str(rng.choice(["ellipsoid", "capsule"]))
            size = (0.022, 0.015, 0.013) if shape == "ellipsoid" else (0.012, 0.004)
            colour = str(rng.choice(UNSEEN_COLOURS))
        obj = Obj("item", shape, size, colour, (rng.uniform(-0.14, -0.06), rng.uniform(0.50, 0.66), rng.uniform(-0.6, 0.6)))
        box = (rng.uniform(0.0, 0.06), rng.uniform(0.55, 0.66), rng.uniform(-0.25, 0.25))
        noun = {"box": "cube", "cylinder": "cylinder", "ellipsoid": "pebble", "capsule": "capsule"}[shape]
        instruction = f"open the box, put the {colour} {noun} inside and close the lid"
        return Scene(self.name, variant, seed, instruction, [obj], {"box": box})

    def objects_xml(self, scene):
        lx, ly = self.inner
        thickness = 0.004
        z = self.wall_height + 0.001 + thickness / 2
        kx, ky, kz = self.knob_half
        lid = (
            f'<body name="lid" pos="0 0 {z:.4f}">'
            f'<joint name="lid_slide" type="slide" axis="1 0 0" range="0 {self.travel}" damping="2" limited="true"/>'
            '<inertial pos="0 0 0" mass="0.06" diaginertia="5e-5 5e-5 1e-4"/>'
            f'<geom type="box" size="{lx + 0.008:.4f} {ly + 0.008:.4f} {thickness / 2}" rgba="0.8 0.8 0.75 1"/>'
            f'<geom name="knob" type="box" size="{kx} {ky} {kz}" pos="{lx - kx:.4f} 0 {thickness / 2 + kz:.4f}" '
            f'rgba="0.3 0.3 0.3 1" {OBJECT_FRICTION}/></body>'
        )
        return scene.objects[0].xml() + tray_xml("box", self.inner, self.wall_height, "0.55 0.4 0.25 1", children=lid)

    def extra_state(self, data, scene):
        return [self.lid_opening(data)]

    def lid_opening(self, data) -> float:
        """How far the lid is open, 0 (shut) .. 1 (fully open)."""
        return float(data.joint("lid_slide").qpos[0]) / self.travel

    def stages(self, data, scene):
        inside = in_container(data, "item", scene.containers["box"], self.inner, below=self.wall_height)
        opening = self.lid_opening(data)
        # Stages latch in order, so "opened" stays done once the lid is shut again.
        opened = opening > 0.8 or inside
        return [opened, inside, inside and opening < 0.05]


class Sorting(Task):
    """Three objects of different shapes and colours into the bins the instruction names."""

    name = "sorting"
    stage_names = ("first", "second", "third")
    episode_seconds = 45.0
    bins = {"left": (-0.16, 0.50), "right": (0.16, 0.50)}
    inner = (0.055, 0.055)
    wall_height = 0.025

    def sample(self, rng, variant, seed):
        if variant == "train":
            kinds = [("cube", "box", (0.018, 0.018, 0.018)), ("cylinder", "cylinder", (0.017, 0.02)), ("block", "box", (0.025, 0.014, 0.014))]
            colours = list(rng.permutation(TRAIN_COLOURS)[:3])
        else:
            kinds = [("pebble", "ellipsoid", (0.02, 0.016, 0.013)), ("disc", "cylinder", (0.022, 0.009)), ("capsule", "capsule", (0.012, 0.009))]
            colours = list(rng.permutation(UNSEEN_COLOURS)[:3])
        order = rng.permutation(3)
        # Three slots across the middle of the table, jittered, so objects never overlap.
        slots = [(-0.07, 0.66), (0.0, 0.62), (0.07, 0.66)]
        objects, targets = [], []
        for slot, k in zip(slots, order):
            noun, shape, size = kinds[k]
            colour = str(colours[k])
            pose = (slot[0] + rng.uniform(-0.015, 0.015), slot[1] + rng.uniform(-0.02, 0.02), rng.uniform(-0.6, 0.6))
            objects.append(Obj(f"{colour}_{noun}", shape, size, colour, pose))
            targets.append(str(rng.choice(list(self.bins))))
        if len(set(targets)) == 1:  # always use both bins
            targets[int(rng.integers(3))] = "left" if targets[0] == "right" else "right"
        parts = [f"the {o.colour} {o.name.split('_')[1]} in the {t} bin" for o, t in zip(objects, targets)]
        instruction = "put " + ", ".join(parts[:-1]) + " and " + parts[-1]
        containers = {f"{side}_bin": (x, y, 0.0) for side, (x, y) in self.bins.items()}
        return Scene(self.name, variant, seed, instruction, objects, containers, {"targets": targets})

    def objects_xml(self, scene):
        bins = "".join(tray_xml(f"{side}_bin", self.inner, self.wall_height, "0.5 0.5 0.55 1") for side in self.bins)
        return "".join(o.xml() for o in scene.objects) + bins

    def extra_state(self, data, scene):
        return [1.0 if target == "right" else -1.0 for target in scene.extra["targets"]]  # each object's bin

    def in_bin(self, data, name: str, bin_pose) -> bool:
        # Resting on another object inside the bin counts too.
        return in_container(data, name, bin_pose, self.inner, below=self.wall_height + 0.04)

    def stages(self, data, scene):
        """Stage k is done when at least k+1 objects lie in their named bins."""
        placed = sum(self.in_bin(data, o.name, scene.containers[f"{t}_bin"]) for o, t in zip(scene.objects, scene.extra["targets"]))
        return [placed > k for k in range(len(scene.objects))]


TASKS = {task.name: task for task in (Insertion(), Drawer(), Sorting())}
