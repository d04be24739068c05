"""Episode bags to a LeRobotDataset v3 and back.

LeRobot v3 (the format LeRobot's trainers read) is a folder:
  meta/info.json                 fps, features (name, dtype, shape), paths, totals
  meta/tasks.parquet             one row per language instruction (pandas index: the text)
  meta/episodes/chunk-*/file-*   one row per episode: length, where its frames and video
                                 stretches are, and here aloe's own episode metadata
  data/chunk-*/file-*.parquet    one row per frame, episodes one after another
  videos/<key>/chunk-*/file-*.mp4  one stream per camera, episodes one after another; a
                                 frame is found by its timestamp (episode start + t / fps)
  meta/stats.json                per-feature mean, std, min, max, count (for normalisation)

A frame is one 50 Hz control step as `bag_dataset` aligns it: the joint state, the command
executed from it, and for each camera the newest image at or before it (cameras run slower,
so an image repeats until the next one arrives; the steps where a new image set arrived are
kept in `aloe/image_steps`). Who drove is `complementary_info.is_intervention`, the name
LeRobot's human-in-the-loop (HIL-SERL) recordings use; `next.reward` is the sparse success
reward and `next.done` marks each episode's last frame. The bag's outcome, seed, variant,
policy versions and interventions are columns `aloe/...` of the episodes table.

Reading back (`read_dataset`) gives the `Episode`s that `aloe train` learns from, for any
v3 dataset at 50 fps with the same cameras and joints, or another layout named in a small
mapping (`DatasetMapping`). No ROS.
"""
import json
import shutil
import time
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from aloe.graph.topics import CAMERAS
from aloe.learning.camera_view import camera_view
from aloe.learning.config import DataConfig
from aloe.learning.data import DataError, Episode

CODEBASE_VERSION = "v3.0"
FPS = 50  # the control rate: one frame per step
CHUNK_SIZE = 1000  # files per chunk folder, LeRobot's default
DATA_FILE_MB = 100  # a new parquet file past this, at an episode boundary (LeRobot's default)
VIDEO_FILE_MB = 200  # likewise for each camera's mp4
VIDEO_CODEC = "libx264"  # H.264: every FFmpeg decodes it; LeRobot's readers accept it
VIDEO_CRF = 18  # near-lossless at these sizes; the round trip stays within a few levels
VIDEO_GOP = 10  # a key frame every 10 frames (0.2 s): a seek decodes at most 9 more

STATE, ACTION = "observation.state", "action"
REWARD, DONE = "next.reward", "next.done"
INTERVENTION = "complementary_info.is_intervention"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"

# aloe's episode metadata: bag custom data kept as text columns of the episodes table.
METADATA_COLUMNS = ("episode_id", "task", "outcome", "reason", "seed", "variant", "policy_versions", "interventions",
                    "intervention_seconds")


def camera_key(camera: str) -> str:
    return f"observation.images.{camera}"


def chunk_file(index: int) -> dict:
    return {"chunk_index": index // CHUNK_SIZE, "file_index": index % CHUNK_SIZE}


# --------------------------------------------------------------------------- export


@dataclass
class ExportReport:
    episodes: int = 0
    frames: int = 0
    skipped: list = field(default_factory=list)  # (bag, reason)
    seconds: float = 0.0
    bag_bytes: int = 0  # what was read
    dataset_bytes: int = 0  # what was written


class VideoStream:
    """One camera's mp4 files: frames appended episode after episode, a new file past
    VIDEO_FILE_MB at an episode boundary. Timestamps are exact multiples of 1 / FPS."""

    def __init__(self, root: Path, key: str):
        self.root, self.key = root, key
        self.file, self.container, self.stream, self.frames = -1, None, None, 0

    def start_episode(self, height: int, width: int) -> dict:
        """Where the episode's frames go: its file and start time there."""
        if self.container is None or self.path().stat().st_size >= VIDEO_FILE_MB * 2**20:
            self._open(height, width)
        return {**{f"videos/{self.key}/{name}": value for name, value in chunk_file(self.file).items()},
                f"videos/{self.key}/from_timestamp": self.frames / FPS}

    def path(self) -> Path:
        return self.root / VIDEO_PATH.format(video_key=self.key, **chunk_file(self.file))

    def _open(self, height: int, width: int) -> None:
        import av

        self.close()
        self.file, self.frames = self.file + 1, 0
        self.path().parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path()), "w")
        self.stream = self.container.add_stream(VIDEO_CODEC, rate=FPS)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.codec_context.time_base = Fraction(1, FPS)
        self.stream.options = {"crf": str(VIDEO_CRF), "g": str(VIDEO_GOP), "preset": "veryfast"}

    def add(self, image: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = self.frames, Fraction(1, FPS)
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def end_time(self) -> float:
        return self.frames / FPS

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode(None))
            self.container.close()
            self.container = None


class FrameTable:
    """The frame rows in parquet files, a new file past DATA_FILE_MB at an episode boundary."""

    def __init__(self, root: Path, schema):
        self.root, self.schema = root, schema
        self.file, self.writer = -1, None

    def start_episode(self) -> dict:
        if self.writer is None or self.path().stat().st_size >= DATA_FILE_MB * 2**20:
            self._open()
        return {f"data/{name}": value for name, value in chunk_file(self.file).items()}

    def path(self) -> Path:
        return self.root / DATA_PATH.format(**chunk_file(self.file))

    def _open(self) -> None:
        import pyarrow.parquet as pq

        self.close()
        self.file += 1
        self.path().parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(str(self.path()), self.schema)

    def add(self, columns: dict) -> None:
        import pyarrow as pa

        self.writer.write_table(pa.table(columns, schema=self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class RunningStats:
    """Mean, std, min and max of a feature over all frames, for meta/stats.json."""

    def __init__(self):
        self.count, self.total, self.squares, self.low, self.high = 0, 0.0, 0.0, None, None

    def add(self, values: np.ndarray) -> None:  # (frames, *shape)
        values = values.astype(np.float64)
        self.count += len(values)
        self.total = self.total + values.sum(0)
        self.squares = self.squares + (values**2).sum(0)
        self.low = values.min(0) if self.low is None else np.minimum(self.low, values.min(0))
        self.high = values.max(0) if self.high is None else np.maximum(self.high, values.max(0))

    def as_json(self) -> dict:
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean**2, 0.0))
        return {"mean": np.atleast_1d(mean).tolist(), "std": np.atleast_1d(std).tolist(), "min": np.atleast_1d(self.low).tolist(),
                "max": np.atleast_1d(self.high).tolist(), "count": [self.count]}


def video_feature(height: int, width: int) -> dict:
    return {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                     "video.is_depth_map": False, "video.fps": FPS, "video.channels": 3, "has_audio": False}}


def features(joint_names: list, action_dim: int, image_shape) -> dict:
    action_names = joint_names if len(joint_names) == action_dim else [f"command_{i}" for i in range(action_dim)]
    scalar = {"shape": [1], "names": None}
    return {
        **{camera_key(camera): video_feature(*image_shape) for camera in CAMERAS},
        STATE: {"dtype": "float32", "shape": [len(joint_names)], "names": list(joint_names)},
        ACTION: {"dtype": "float32", "shape": [action_dim], "names": list(action_names)},
        REWARD: {"dtype": "float32", **scalar},
        DONE: {"dtype": "bool", **scalar},
        INTERVENTION: {"dtype": "float32", **scalar},
        "timestamp": {"dtype": "float32", **scalar},
        "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar},
        "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    }


def frame_schema(state_dim: int, action_dim: int):
    import pyarrow as pa

    return pa.schema([
        (STATE, pa.list_(pa.float32(), state_dim)), (ACTION, pa.list_(pa.float32(), action_dim)),
        (REWARD, pa.float32()), (DONE, pa.bool_()), (INTERVENTION, pa.float32()), ("timestamp", pa.float32()),
        ("frame_index", pa.int64()), ("episode_index", pa.int64()), ("index", pa.int64()), ("task_index", pa.int64()),
    ])


class DatasetWriter:
    """Episodes appended to a LeRobot v3 folder; `finish` writes the metadata."""

    def __init__(self, root: Path, joint_names: list, action_dim: int, image_shape, robot_type: str = "aloe"):
        self.root, self.robot_type = Path(root), robot_type
        self.image_shape = tuple(image_shape)
        self.features = features(joint_names, action_dim, self.image_shape)
        self.frames = FrameTable(self.root, frame_schema(len(joint_names), action_dim))
        self.videos = {camera: VideoStream(self.root, camera_key(camera)) for camera in CAMERAS}
        self.tasks, self.episodes = {}, []
        self.stats = {key: RunningStats() for key in (STATE, ACTION, REWARD, INTERVENTION, *map(camera_key, CAMERAS))}
        self.total_frames = 0

    def add(self, episode: Episode, metadata: dict) -> None:
        length = len(episode)
        if episode.images is None:
            raise DataError(f"{episode.episode_id}: no camera images recorded")
        if episode.images.shape[2:4] != self.image_shape:
            raise DataError(f"{episode.episode_id}: images are {episode.images.shape[3]}x{episode.images.shape[2]}, "
                            f"the dataset's {self.image_shape[1]}x{self.image_shape[0]}")
        if episode.joints.shape[1] != self.features[STATE]["shape"][0] or episode.actions.shape[1] != self.features[ACTION]["shape"][0]:
            raise DataError(f"{episode.episode_id}: {episode.joints.shape[1]} joints and {episode.actions.shape[1]} command slots, "
                            f"the dataset has {self.features[STATE]['shape'][0]} and {self.features[ACTION]['shape'][0]}")
        index = len(self.episodes)
        task_index = self.tasks.setdefault(episode.instruction, len(self.tasks))
        row = {"episode_index": index, "tasks": [episode.instruction], "length": length,
               "dataset_from_index": self.total_frames, "dataset_to_index": self.total_frames + length,
               **self.frames.start_episode(), "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}

        image_of_step = np.searchsorted(episode.image_steps, np.arange(length), side="right") - 1
        image_of_step = np.maximum(image_of_step, 0)  # steps before the first image show the first
        for c, camera in enumerate(CAMERAS):
            stream = self.videos[camera]
            row.update(stream.start_episode(*self.image_shape))
            for image in image_of_step:
                stream.add(episode.images[image, c])
            row[f"videos/{camera_key(camera)}/to_timestamp"] = stream.end_time()
            self.stats[camera_key(camera)].add(episode.images[:, c].reshape(-1, 3)[::97] / 255.0)

        rewards = episode.rewards(DataConfig()).astype(np.float32) + 0.0  # no -0.0 where no time cost is paid
        done = np.zeros(length, bool)
        done[-1] = episode.terminal
        intervention = episode.operator.astype(np.float32)
        self.frames.add({
            STATE: list(episode.joints), ACTION: list(episode.actions), REWARD: rewards, DONE: done, INTERVENTION: intervention,
            "timestamp": (np.arange(length) / FPS).astype(np.float32), "frame_index": np.arange(length),
            "episode_index": np.full(length, index), "index": self.total_frames + np.arange(length),
            "task_index": np.full(length, task_index),
        })
        for key, values in ((STATE, episode.joints), (ACTION, episode.actions), (REWARD, rewards[:, None]),
                            (INTERVENTION, intervention[:, None])):
            self.stats[key].add(values)
        row.update({f"aloe/{name}": str(metadata.get(name, "")) for name in METADATA_COLUMNS})
        row["aloe/episode_id"] = episode.episode_id
        row["aloe/image_steps"] = [int(step) for step in episode.image_steps]
        row["aloe/stage_progress"] = [] if episode.stage_progress is None else [float(p) for p in episode.stage_progress]
        self.episodes.append(row)
        self.total_frames += length

    def finish(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.frames.close()
        for stream in self.videos.values():
            stream.close()
        meta = self.root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), str(self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)))
        write_tasks(self.root / TASKS_PATH, list(self.tasks))
        stats = {key: value.as_json() for key, value in self.stats.items() if value.count}
        for camera in CAMERAS:  # images: per channel, shaped (3, 1, 1) as LeRobot keeps them
            if camera_key(camera) in stats:
                stats[camera_key(camera)] = {name: np.reshape(values, (-1, 1, 1)).tolist() if name != "count" else values
                                             for name, values in stats[camera_key(camera)].items()}
        (meta / "stats.json").write_text(json.dumps(stats, indent=2))
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type,
            "total_episodes": len(self.episodes), "total_frames": self.total_frames, "total_tasks": len(self.tasks),
            "chunks_size": CHUNK_SIZE, "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB,
            "fps": FPS, "splits": {"train": f"0:{len(self.episodes)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
            "features": self.features,
        }
        (meta / "info.json").write_text(json.dumps(info, indent=4))


def write_tasks(path: Path, tasks: list) -> None:
    """meta/tasks.parquet as pandas writes a frame indexed by the task text (LeRobot reads
    it with pandas), without needing pandas here."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_metadata = {
        "index_columns": ["task"], "column_indexes": [],
        "columns": [{"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
                    {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3",
    }
    table = pa.table({"task": pa.array(tasks, pa.string()), "task_index": pa.array(range(len(tasks)), pa.int64())})
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_metadata).encode()}), str(path))


def episode_bags(directories) -> list:
    bags = []
    for directory in map(Path, directories):
        if not directory.is_dir():
            raise DataError(f"{directory} is not a directory of bags")
        bags += sorted(p for p in directory.iterdir() if p.is_dir() and ((p / "metadata.yaml").exists() or any(p.glob("*.mcap"))))
    if not bags:
        raise DataError(f"no episode bags in {', '.join(map(str, directories))}")
    return bags


def joint_names(bag: Path, typestore) -> list:
    """The joint names of the bag's first joint state."""
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        states = [c for c in reader.connections if c.topic.endswith("joint_states")]
        for connection, _, raw in reader.messages(connections=states):
            return list(typestore.deserialize_cdr(raw, connection.msgtype).name)
    raise DataError(f"{bag}: no joint states recorded")


def export_bags(directories, out: Path, say: Callable = lambda line: None, progress: bool = False) -> ExportReport:
    """Every usable episode bag in `directories` into a new LeRobot v3 dataset at `out`.
    Bags that cannot be used are named with their reason and left out. The dataset is
    written to `out`.partial and renamed when complete, so a crash leaves no half dataset
    under the real name."""
    from aloe.data.bag_dataset import bag_metadata, read_episode
    from aloe.data.recording import aloe_typestore

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not empty: choose a new folder")
    bags = episode_bags(directories)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    store, writer, report, start = aloe_typestore(), None, ExportReport(), time.monotonic()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(bags), unit="episode", dynamic_ncols=True)
    try:
        for bag in bags:
            try:
                episode = read_episode(bag, store, image_size=None)
                if writer is None:
                    if episode.images is None:
                        raise DataError(f"{bag}: no camera images recorded")
                    writer = DatasetWriter(partial, joint_names(bag, store), episode.actions.shape[1], episode.images.shape[2:4])
                writer.add(episode, bag_metadata(bag))
                report.episodes += 1
                report.frames += len(episode)
                report.bag_bytes += sum(f.stat().st_size for f in bag.iterdir())
            except DataError as error:
                report.skipped.append((bag, str(error)))
                say(f"skipped {bag.name}: {error}")
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    if writer is None:
        shutil.rmtree(partial, ignore_errors=True)
        raise DataError(f"no usable episode bags in {', '.join(map(str, directories))} ({len(report.skipped)} skipped)")
    writer.finish()
    if out.exists():
        out.rmdir()
    partial.rename(out)
    report.seconds = time.monotonic() - start
    report.dataset_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return report


# --------------------------------------------------------------------------- import


@dataclass
class DatasetMapping:
    """Which LeRobot features are aloe's inputs, for datasets that name them otherwise
    (a YAML of these fields; the defaults are what `aloe export` writes)."""

    cameras: dict = field(default_factory=lambda: {camera: camera_key(camera) for camera in CAMERAS})
    state: str = STATE
    action: str = ACTION
    intervention: str = INTERVENTION  # absent from the dataset: every step counts as the operator's
    reward: str = REWARD  # absent: `outcome` below; present: success when any frame is rewarded
    outcome: str = "success"  # for datasets that record neither reward nor aloe's outcome
    image_rate_hz: float = 5.0  # image sets kept per second when the dataset does not say (aloe's cameras: 5 Hz)

    @classmethod
    def from_yaml(cls, path: Optional[Path]) -> "DatasetMapping":
        if path is None:
            return cls()
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise DataError(f"cannot read the mapping {path}: {str(error).splitlines()[0]}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known) if isinstance(values, dict) else ["(not a mapping)"]
        if unknown:
            raise DataError(f"{path}: unknown mapping field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        mapping = cls(**values)
        if sorted(mapping.cameras) != sorted(CAMERAS):
            raise DataError(f"{path}: cameras must name a feature for each of {', '.join(CAMERAS)}")
        return mapping


def read_parquet_files(folder: Path, columns=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted(folder.glob("chunk-*/file-*.parquet"))
    if not paths:
        raise DataError(f"{folder}: no parquet files")
    return pa.concat_tables([pq.read_table(str(path), columns=columns) for path in paths])


def read_tasks(path: Path) -> list:
    """The task texts by task_index, from a pandas-written tasks.parquet."""
    import pyarrow.parquet as pq

    table = pq.read_table(str(path))
    pandas_metadata = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    index = [name for name in pandas_metadata.get("index_columns", []) if isinstance(name, str)]
    text_column = index[0] if index else "task"
    if text_column not in table.column_names:
        raise DataError(f"{path}: no task text column")
    order = np.argsort(table.column("task_index").to_numpy())
    return [table.column(text_column).to_pylist()[i] for i in order]


def decode_frames(path: Path, wanted: dict) -> dict:
    """Decode one mp4 in order and keep the frames at the `wanted` times ({frame number at
    FPS: key}); returns {key: RGB image}."""
    import av

    found = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            number = round(float(frame.pts * stream.time_base) * FPS)
            if number in wanted:
                found[wanted[number]] = frame.to_ndarray(format="rgb24")
    missing = len(wanted) - len(found)
    if missing:
        raise DataError(f"{path}: {missing} frame(s) not found at their timestamps")
    return found


def read_dataset(root: Path, image_size, head_crop=(), mapping: Optional[DatasetMapping] = None,
                 say: Callable = lambda line: None) -> list:
    """The episodes of a LeRobot v3 dataset, images as the encoder sees them (`image_size`
    None: as stored)."""
    root, mapping = Path(root), mapping or DatasetMapping()
    try:
        info = json.loads((root / "meta" / "info.json").read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{root}: not a LeRobot dataset (meta/info.json: {error})") from None
    if not str(info.get("codebase_version", "")).startswith("v3"):
        raise DataError(f"{root}: LeRobot format {info.get('codebase_version')}, aloe reads v3.x")
    fps = info.get("fps")
    if fps != FPS:
        raise DataError(f"{root}: {fps} fps; aloe's actor runs at {FPS} Hz and this reader does not resample")
    feature_names = set(info.get("features", {}))
    needed = [mapping.state, mapping.action, *mapping.cameras.values()]
    missing = [name for name in needed if name not in feature_names]
    if missing:
        raise DataError(f"{root}: no feature {', '.join(missing)} (name them in a mapping YAML)")
    columns = ["episode_index", "frame_index", "task_index", mapping.state, mapping.action]
    optional = [name for name in (mapping.intervention, mapping.reward) if name in feature_names]
    frames = read_parquet_files(root / "data", columns + optional)
    episodes_table = read_parquet_files(root / "meta" / "episodes").to_pylist()
    tasks = read_tasks(root / TASKS_PATH)
    episode_of_frame = frames.column("episode_index").to_numpy()
    order = np.lexsort((frames.column("frame_index").to_numpy(), episode_of_frame))

    def column(name, rows):
        values = frames.column(name).take(rows).combine_chunks()
        if hasattr(values, "flatten"):  # a list per frame (state, action)
            return np.asarray(values.flatten(), dtype=np.float32).reshape(len(rows), -1)
        return np.asarray(values, dtype=np.float32)

    rows_of, plans = {}, []
    for row in episodes_table:
        index = row["episode_index"]
        rows = order[episode_of_frame[order] == index]
        length = len(rows)
        if length != row["length"]:
            raise DataError(f"{root}: episode {index} has {length} frames, its metadata says {row['length']}")
        image_steps = row.get("aloe/image_steps")
        if not image_steps:
            every = max(1, round(FPS / mapping.image_rate_hz))
            image_steps = list(range(0, length, every))
        rows_of[index] = rows
        plans.append((row, np.asarray(image_steps, np.int64)))

    # Decode each camera's files once, in order, keeping only the frames an image set needs.
    images = {}  # (episode, camera) -> list of images by image step
    for c, camera in enumerate(CAMERAS):
        key = mapping.cameras[camera]
        by_file = {}
        for row, steps in plans:
            path = root / info["video_path"].format(video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                                                    file_index=row[f"videos/{key}/file_index"])
            start = round(row[f"videos/{key}/from_timestamp"] * FPS)
            wanted = by_file.setdefault(path, {})
            for n, step in enumerate(steps):
                wanted[start + int(step)] = (row["episode_index"], n)
        for path, wanted in by_file.items():
            for (index, n), image in decode_frames(path, wanted).items():
                crop = head_crop if c == 0 else ()
                images.setdefault((index, n), [None] * len(CAMERAS))[c] = camera_view(image, image_size, crop) if image_size else image

    episodes = []
    for row, steps in plans:
        index, rows = row["episode_index"], rows_of[row["episode_index"]]
        intervention = (column(mapping.intervention, rows) > 0.5 if mapping.intervention in optional
                        else np.ones(len(rows), bool))
        outcome = row.get("aloe/outcome") or None
        if outcome is None:
            outcome = ("success" if column(mapping.reward, rows).max() > 0 else "failure") if mapping.reward in optional \
                else mapping.outcome
        progress = row.get("aloe/stage_progress") or None
        task_index = frames.column("task_index").take(rows[:1]).to_pylist()[0]
        episodes.append(Episode(
            joints=column(mapping.state, rows), actions=column(mapping.action, rows), operator=intervention, outcome=outcome,
            instruction=tasks[task_index], images=np.stack([np.stack(images[(index, n)]) for n in range(len(steps))]),
            image_steps=steps, task=row.get("aloe/task") or "", episode_id=row.get("aloe/episode_id") or f"{root.name}-{index}",
            stage_progress=progress,
        ))
        say(f"[{len(episodes)}/{len(plans)}] {episodes[-1].episode_id}: {len(rows)} steps, {outcome}")
    return episodes
