"""Episode bags to learning episodes: joint states, the executed commands, who drove,
images, stages and outcome, with a cache so that a bag is decoded once.

Control step t is the t-th `joint_states` message. The action at t is the newest command
on `command` stamped at or before state t: sources stamp a command with the tick of the
state it answers, and the mux keeps that stamp. (The order the recorder logged them in
does not say it: joint states reach it in bursts, and aligning by log time gave 6-13 % of
round 0's insertion steps another action than the same seed in process; by stamp, one or
two steps a bag.) Bags whose commands carry no stamps (all zero) keep the log order.
Steps before the first command are left out, and so is a reset's lead-in (`lead_in_end`).
A camera set (all cameras with the same stamp) belongs to the newest step whose state is
stamped at or before it. Images are decoded once and resized to the model's size. The
stages on `task/stages` (when recorded) give each step the share of the task's stages
reached by then, for `data.reward: stages`.
"""
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from aloe.control.command_arbiter import JUMP_SPEED, OPERATOR, RESYNC_TOLERANCE, SAMPLE_DT, STAMP_TOLERANCE_NS
from aloe.control.episodes import START
from aloe.data.images import ImageEncodingError, rgb_array
from aloe.graph.topics import CAMERAS
from aloe.learning.camera_view import camera_view
from aloe.learning.data import DataError, Episode, stages_reached

# 2: with the stages of task/stages; 3: a success ends with every stage reached; 4: lead-in
# skipped; 5: actions aligned by stamp
CACHE_VERSION = "5"
# A reset's lead-in lasts well under this (25 steps at most in the round-0 bags); nothing later is skipped.
LEAD_IN_S = 2.0


@dataclass
class Skipped:
    bag: Path
    reason: str


def bag_metadata(bag: Path) -> dict:
    """The bag's `aloe.*` custom data, without the prefix."""
    path = Path(bag) / "metadata.yaml"
    if not path.exists():
        raise DataError(f"{bag}: no metadata.yaml (a recorder killed mid-episode? run `aloe bag recover`)")
    try:
        info = yaml.safe_load(path.read_text())["rosbag2_bagfile_information"]
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise DataError(f"{bag}: unreadable metadata.yaml ({str(error).splitlines()[0]})") from None
    return {key[len("aloe."):]: value for key, value in (info.get("custom_data") or {}).items() if key.startswith("aloe.")}


def recorded_episodes(folder: Path, planned: set, variant: str) -> tuple:
    """Which of the `planned` (task, seed) episodes of `variant` already have a finished bag
    in `folder`, and the bags of episodes that did not finish (cut off by a stop or a crash),
    for a recording that resumes. Bags of other episodes are neither."""
    done, unfinished = set(), []
    if not Path(folder).is_dir():
        return done, unfinished
    for bag in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        try:
            meta = bag_metadata(bag)
        except DataError:
            if any(bag.glob("*.mcap")):  # a bag whose recorder was killed mid-episode
                unfinished.append(bag)
            continue
        episode = (meta.get("task"), int(meta.get("seed", -1)))
        if episode not in planned or meta.get("variant") != variant:
            continue
        if meta.get("outcome") in ("success", "failure"):
            done.add(episode)
        else:  # truncated: stopped before the episode ended
            unfinished.append(bag)
    return done, unfinished


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def decode_image(msg, size, crop=()) -> np.ndarray:
    try:
        image = rgb_array(msg)
    except ImageEncodingError as error:
        raise DataError(str(error)) from None
    return camera_view(image, size, crop) if size is not None else np.ascontiguousarray(image)


def read_episode(bag: Path, typestore, image_size=(96, 128), head_crop=()) -> Episode:
    """Decode one episode bag, images as the encoder sees them (`camera_view`); raises
    DataError naming the bag and the reason."""
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError

    bag = Path(bag)
    meta = bag_metadata(bag)
    states, commands, images, stages = [], [], {}, []  # images: stamp -> {camera: array}; stages: (stamp, done)
    end_ns = None  # the end event's stamp: the recorder may write steps after it, not the episode's
    try:
        with Reader(bag) as reader:
            for connection, log_time, raw in reader.messages():
                kind = connection.topic.rsplit("/", 1)[-1]
                if kind == "joint_states":
                    msg = typestore.deserialize_cdr(raw, connection.msgtype)
                    states.append((log_time, stamp_ns(msg.header), np.asarray(msg.position, np.float32)))
                elif connection.topic.endswith("/command") and not connection.topic.endswith(("policy/command", "operator/command")):
                    msg = typestore.deserialize_cdr(raw, connection.msgtype)
                    commands.append((stamp_ns(msg.header), log_time, np.asarray(msg.positions, np.float32), msg.source == OPERATOR))
                elif connection.topic.endswith("task/stages"):
                    msg = typestore.deserialize_cdr(raw, connection.msgtype)
                    stages.append((stamp_ns(msg.header), np.asarray(msg.done, bool)))
                elif kind == "episode":
                    msg = typestore.deserialize_cdr(raw, connection.msgtype)
                    if msg.kind != START and stamp_ns(msg.header) > 0:
                        end_ns = stamp_ns(msg.header)
                elif kind == "image_raw":
                    camera = connection.topic.rsplit("/", 2)[-2]
                    if camera in CAMERAS:
                        msg = typestore.deserialize_cdr(raw, connection.msgtype)
                        crop = head_crop if camera == CAMERAS[0] else ()
                        images.setdefault(stamp_ns(msg.header), {})[camera] = decode_image(msg, image_size, crop)
    except (ReaderError, OSError, ValueError, KeyError) as error:
        raise DataError(f"{bag}: cannot read ({error})") from None
    if end_ns is not None:
        states = [state for state in states if state[1] <= end_ns]
    if not states or not commands:
        raise DataError(f"{bag}: no {'joint states' if not states else 'commands'} recorded")

    # The action at step t: the newest command stamped at or before state t (the last logged
    # of equal stamps); unstamped, the newest logged before state t+1.
    if any(command[0] > 0 for command in commands):
        commands.sort(key=lambda command: command[:2])
        keys, until = [command[0] for command in commands], [stamp + STAMP_TOLERANCE_NS for _, stamp, _ in states]
    else:
        keys = [command[1] for command in commands]
        until = [next_state[0] - 1 for next_state in states[1:]] + [float("inf")]
    held = np.searchsorted(keys, until, side="right") - 1
    joints, actions, operator, step_stamps = [], [], [], []
    for (_, stamp, position), index in zip(states, held):
        if index < 0:
            continue
        joints.append(position)
        actions.append(commands[index][2])
        operator.append(commands[index][3])
        step_stamps.append(stamp)
    if not actions:
        raise DataError(f"{bag}: no command before the last joint state")
    start = lead_in_end(np.stack(joints), np.stack(actions), np.asarray(step_stamps))
    joints, actions, operator, step_stamps = joints[start:], actions[start:], operator[start:], step_stamps[start:]

    complete = sorted(stamp for stamp, cams in images.items() if len(cams) == len(CAMERAS))
    step_stamps = np.asarray(step_stamps)
    image_sets = image_steps = None
    kept = [s for s in complete if s >= step_stamps[0] and (end_ns is None or s <= end_ns)]
    if kept:
        image_sets = np.stack([np.stack([images[s][c] for c in CAMERAS]) for s in kept])
        image_steps = np.searchsorted(step_stamps, kept, side="right") - 1
    outcome = meta.get("outcome", "truncated")
    progress = stage_progress(stages, step_stamps)
    if progress is not None and outcome == "success":
        # Success is every stage done. The tick that finds it publishes the last stages and
        # ends the episode at once, and the recorder may stop before that message or that
        # tick's joint state reaches it: the last step has reached them all either way.
        progress[-1] = 1.0
    return Episode(
        joints=np.stack(joints), actions=np.stack(actions), operator=np.array(operator), outcome=outcome,
        instruction=meta.get("instruction", ""), images=image_sets, image_steps=image_steps,
        task=meta.get("task", ""), episode_id=meta.get("episode_id", bag.name),
        stage_progress=progress,
    )


def lead_in_end(joints: np.ndarray, actions: np.ndarray, stamps: np.ndarray) -> int:
    """The first step of the episode proper. A bag can open with the end of the one before:
    joint states from before the reset, then commands the mux ramped from the old pose,
    which the robot ignored while it resynced (it follows only a command within
    RESYNC_TOLERANCE of its pose). Both are skipped: from the reset's jump, if the first
    LEAD_IN_S hold one, to the first command the robot followed there."""
    window = int(np.searchsorted(stamps, stamps[0] + LEAD_IN_S * 1e9))
    start = 0
    if window > 1:
        elapsed = np.maximum(SAMPLE_DT, np.diff(stamps[:window]) * 1e-9)
        jumps = np.flatnonzero(np.max(np.abs(np.diff(joints[:window], axis=0)), axis=1) > JUMP_SPEED * elapsed)
        start = int(jumps[-1]) + 1 if len(jumps) else 0
    if actions.shape[1] != joints.shape[1]:
        return start  # commands in other units than the joints: nothing to compare
    followed = np.flatnonzero(np.max(np.abs(actions[start:window] - joints[start:window]), axis=1) <= RESYNC_TOLERANCE)
    return start + int(followed[0]) if len(followed) else start


def stage_progress(updates, step_stamps: np.ndarray) -> Optional[np.ndarray]:
    """The share of the task's stages reached by each step, from the (stamp, done) updates of
    `task/stages`; None for a bag recorded without them."""
    if not updates:
        return None
    updates = sorted(updates, key=lambda update: update[0])
    reached = stages_reached(np.stack([done for _, done in updates])) / len(updates[0][1])
    latest = np.searchsorted([stamp for stamp, _ in updates], step_stamps, side="right") - 1
    return np.where(latest >= 0, reached[np.maximum(latest, 0)], 0.0)


def cache_key(bag: Path, image_size, head_crop=()) -> str:
    """Changes when the bag's files or the images' view change."""
    view = f"{image_size}|{tuple(head_crop)}" if head_crop else f"{image_size}"  # no crop: the keys of caches made before crops
    digest = hashlib.sha256(f"{CACHE_VERSION}|{view}".encode())
    for path in sorted(Path(bag).iterdir()):
        stat = path.stat()
        digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def save_cached(path: Path, episode: Episode) -> None:
    arrays = {"joints": episode.joints, "actions": episode.actions, "operator": episode.operator}
    if episode.images is not None:
        arrays.update(images=episode.images, image_steps=episode.image_steps)
    if episode.stage_progress is not None:
        arrays.update(stage_progress=episode.stage_progress)
    text = {"outcome": episode.outcome, "instruction": episode.instruction, "task": episode.task, "episode_id": episode.episode_id}
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, meta=np.array(yaml.safe_dump(text)), **arrays)
    partial.rename(path)  # a crash mid-write never leaves a half cache file under the real name


def load_cached(path: Path) -> Episode:
    with np.load(path) as data:
        text = yaml.safe_load(str(data["meta"]))
        return Episode(
            joints=data["joints"], actions=data["actions"], operator=data["operator"],
            images=data["images"] if "images" in data else None, image_steps=data["image_steps"] if "image_steps" in data else None,
            stage_progress=data["stage_progress"] if "stage_progress" in data else None, **text,
        )


def load_episode(bag: Path, typestore, image_size=(96, 128), cache_dir: Optional[Path] = None, head_crop=()):
    """(episode, came_from_cache)."""
    if cache_dir is None:
        return read_episode(bag, typestore, image_size, head_crop), False
    cache_dir = Path(cache_dir)
    cached = cache_dir / f"{Path(bag).name}-{cache_key(bag, image_size, head_crop)}.npz"
    if cached.exists():
        try:
            return load_cached(cached), True
        except (OSError, ValueError, KeyError, DataError):
            cached.unlink()  # a damaged cache entry: decode the bag again
    episode = read_episode(bag, typestore, image_size, head_crop)
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_cached(cached, episode)
    return episode, False


def load_bags(directory: Path, typestore, image_size=(96, 128), cache_dir: Optional[Path] = None, say=lambda line: None,
              head_crop=()):
    """Every episode bag under `directory` (episodes, skipped): a bag that cannot be used is
    named with its reason and left out; the rest still load."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory of bags")
    bags = sorted(p for p in directory.iterdir() if p.is_dir() and ((p / "metadata.yaml").exists() or any(p.glob("*.mcap"))))
    episodes, skipped = [], []
    for index, bag in enumerate(bags, 1):
        try:
            episode, cached = load_episode(bag, typestore, image_size, cache_dir, head_crop)
        except DataError as error:
            skipped.append(Skipped(bag, str(error)))
            say(f"skipped {bag.name}: {error}")
            continue
        episodes.append(episode)
        say(f"[{index}/{len(bags)}] {bag.name}: {len(episode)} steps, {episode.outcome}{' (cached)' if cached else ''}")
    return episodes, skipped


def episodes_from_bags(directories, image_size, head_crop=(), say=lambda line: None) -> list:
    """Every usable episode in the bag folders `directories` (cached in each folder's
    .aloe-cache at the encoder's `image_size` and `head_crop`); the bags left out are named
    with their reason. Raises DataError when none is usable."""
    from aloe.data.recording import aloe_typestore

    store, episodes, skipped = aloe_typestore(), [], []
    for directory in map(Path, directories):
        found, left_out = load_bags(directory, store, image_size, directory / ".aloe-cache", say, tuple(head_crop))
        episodes, skipped = episodes + found, skipped + left_out
    if not episodes:
        raise DataError(f"no usable episode bags in {', '.join(map(str, directories))}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    if skipped:
        say(f"{len(skipped)} bag{'s' if len(skipped) > 1 else ''} skipped, training on the other {len(episodes)}")
    return episodes
