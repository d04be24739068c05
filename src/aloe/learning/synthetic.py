"""A small synthetic data set with the robot's shape, for training runs without a simulator.

Two coloured targets lie on a table; the instruction names one ("reach the red target").
The first two joints move a point over the table, the other twelve drift slowly and
do not matter. Three cameras see the table (images drawn with numpy at the model's size).
Episodes mix a noisy policy that sometimes heads for the wrong target and an operator
who takes over and finishes the reach, as in human-in-the-loop data: success when the
named target is reached, failure on the other one, truncated when time runs out.
"""
import numpy as np

from aloe.learning.data import Episode

COLOURS = {"red": (220, 30, 30), "blue": (40, 70, 230)}
SPEED = 0.02  # per step, in table units ([-1, 1] square)
REACHED = 0.08


def render(point, targets, size, cameras: int = 3) -> np.ndarray:
    height, width = size
    images = np.full((cameras, height, width, 3), 60, dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]

    def disc(image, centre, radius, colour):
        cy, cx = (centre[1] + 1) / 2 * (height - 1), (centre[0] + 1) / 2 * (width - 1)
        image[(ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2] = colour

    for camera in range(cameras):
        # Each camera sees the table from its own offset, like head and wrist cameras would.
        shift = np.array([0.0, 0.0]) if camera == 0 else (point * 0.5 * (1 if camera == 1 else -1))
        for name, position in targets.items():
            disc(images[camera], position - shift, max(2, height // 16), COLOURS[name])
        disc(images[camera], point - shift, max(2, height // 24), (240, 240, 240))
    return images


def episode(rng: np.random.Generator, image_size=(96, 128), max_steps: int = 150, image_every: int = 5,
            policy_skill: float = 0.6, takeover: bool = True, index: int = 0) -> Episode:
    targets = {name: rng.uniform(-0.7, 0.7, size=2) for name in COLOURS}
    while np.linalg.norm(targets["red"] - targets["blue"]) < 0.6:
        targets["blue"] = rng.uniform(-0.7, 0.7, size=2)
    goal = str(rng.choice(list(COLOURS)))
    wrong = "blue" if goal == "red" else "red"
    point = rng.uniform(-0.2, 0.2, size=2)
    rest = rng.normal(0, 0.1, size=12)
    # The policy heads for the right target with probability `policy_skill`.
    heading = goal if rng.random() < policy_skill else wrong
    takeover_step = int(rng.integers(5, 25)) if takeover and heading == wrong else max_steps
    joints, actions, operator, images, image_steps = [], [], [], [], []
    outcome = "truncated"
    for t in range(max_steps):
        state = np.concatenate([point, rest])
        joints.append(state.copy())
        if t % image_every == 0:
            images.append(render(point, targets, image_size))
            image_steps.append(t)
        by_operator = t >= takeover_step
        aim = targets[goal] if by_operator else targets[heading]
        direction = aim - point
        step = direction / max(np.linalg.norm(direction), 1e-9) * min(SPEED, np.linalg.norm(direction))
        if not by_operator:
            step = step + rng.normal(0, 0.004, size=2)
        point = point + step
        rest = rest + rng.normal(0, 0.002, size=12)
        actions.append(np.concatenate([point, rest]))
        operator.append(by_operator)
        if np.linalg.norm(point - targets[goal]) < REACHED:
            outcome = "success"
            break
        if np.linalg.norm(point - targets[wrong]) < REACHED:
            outcome = "failure"
            break
    return Episode(
        joints=np.array(joints), actions=np.array(actions), operator=np.array(operator), outcome=outcome,
        instruction=f"reach the {goal} target", images=np.array(images), image_steps=np.array(image_steps),
        task="synthetic_reach", episode_id=f"synthetic-{index:05d}",
    )


def dataset(count: int, seed: int = 0, image_size=(96, 128), **kwargs) -> list:
    rng = np.random.default_rng(seed)
    return [episode(rng, image_size, index=i, **kwargs) for i in range(count)]
