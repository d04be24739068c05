"""Episode bags to a LeRobotDataset v3 and back: LeRobot's own reader opens the export and
sees the bags' frames, and `aloe train --lerobot` learns from the same episodes as from
the bags."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from aloe.cli import main as aloe
from aloe.data.bag_dataset import load_bags
from aloe.data.lerobot import INTERVENTION, DatasetMapping, export_bags, read_dataset
from aloe.data.recording import EpisodeBag, aloe_typestore
from aloe.graph.topics import CAMERAS
from aloe.learning.data import DataError
from test_bag_dataset import header, store  # noqa: F401  (store: fixture)

ROOT = Path(__file__).resolve().parents[1]
MS = 1_000_000
SIZE = (48, 64)  # height, width: small, but with texture for the codec to keep
JOINTS = [f"{side}_joint_{j}" for side in ("left", "right") for j in range(7)]  # the model's 14


def scene(step: int, camera: int) -> np.ndarray:
    """A gradient with a square that moves with time, a different colour per camera."""
    rows, cols = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    image = np.stack([rows * 4, cols * 3, np.full(SIZE, 60 * camera)], -1).astype(np.uint8)
    top, left = (step // 2) % (SIZE[0] - 12), (step * 3) % (SIZE[1] - 12)
    image[top:top + 12, left:left + 12] = 255  # white: a luminance edge, which 4:2:0 keeps
    return image


def write_bag(store, path, steps=120, operator=range(50, 80), instruction="pack it", outcome="success", image_every=10):
    """State k at 20 k ms, command k 5 ms later (the operator's inside `operator`), a camera
    set every `image_every` states from state 3 on, stages reached at steps 30 and 90."""
    topics = {"/r/joint_states": "sensor_msgs/msg/JointState", "/r/command": "aloe_msgs/msg/JointCommand",
              "/r/task/stages": "aloe_msgs/msg/TaskStages", **{f"/r/cameras/{c}/image_raw": "sensor_msgs/msg/Image" for c in CAMERAS}}
    bag = EpisodeBag(path, topics, store)
    State, Command, Image, Stages = (store.types[t] for t in ("sensor_msgs/msg/JointState", "aloe_msgs/msg/JointCommand",
                                                              "sensor_msgs/msg/Image", "aloe_msgs/msg/TaskStages"))
    for step, done in ((0, [0, 0]), (30, [1, 0]), (90, [1, 1])):
        msg = Stages(header=header(store, 20 * step * MS), task="insertion", names=["grasped", "inserted"], done=np.array(done, bool))
        bag.write("/r/task/stages", 20 * step * MS + MS, store.serialize_cdr(msg, "aloe_msgs/msg/TaskStages"))
    for k in range(steps):
        now = 20 * k * MS
        position = np.sin(k / 10 + np.arange(14))
        state = State(header=header(store, now), name=JOINTS, position=position, velocity=np.zeros(14), effort=np.zeros(0))
        bag.write("/r/joint_states", now, store.serialize_cdr(state, "sensor_msgs/msg/JointState"))
        if k % image_every == 3:
            for c, camera in enumerate(CAMERAS):
                image = Image(header=header(store, now), height=SIZE[0], width=SIZE[1], encoding="rgb8", is_bigendian=0,
                              step=SIZE[1] * 3, data=scene(k, c).ravel())
                bag.write(f"/r/cameras/{camera}/image_raw", now + 2 * MS, store.serialize_cdr(image, "sensor_msgs/msg/Image"))
        if k < steps - 1:
            command = Command(header=header(store, now), positions=position + 0.01, source=1 if k in operator else 0,
                              policy_version="bc-1", chunk_id=0, step=k)
            bag.write("/r/command", now + 5 * MS, store.serialize_cdr(command, "aloe_msgs/msg/JointCommand"))
    bag.close({"episode_id": path.name, "task": "insertion", "instruction": instruction, "outcome": outcome, "seed": 7,
               "variant": "train", "policy_versions": "bc-1", "interventions": 1})


@pytest.fixture(scope="module")
def bags(store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bags")
    write_bag(store, folder / "ep1")
    write_bag(store, folder / "ep2", steps=90, operator=(), instruction="pack it again", outcome="failure")
    write_bag(store, folder / "ep3", steps=60, operator=range(0, 60))
    (folder / "crashed").mkdir()
    (folder / "crashed" / "crashed.mcap").write_bytes(b"\x89MCAP0\r\n")  # a recorder killed at once
    return folder


@pytest.fixture(scope="module")
def exported(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "dataset"
    lines = []
    report = export_bags([bags], out, say=lines.append)
    return out, report, lines


def from_bags(bags, image_size=SIZE):
    episodes, _ = load_bags(bags, aloe_typestore(), image_size=image_size)
    return {episode.episode_id: episode for episode in episodes}


def test_the_export_is_a_v3_dataset_of_the_usable_bags(exported):
    out, report, lines = exported
    assert (report.episodes, report.frames) == (3, 120 + 90 + 60)
    assert [bag.name for bag, _ in report.skipped] == ["crashed"] and any("skipped crashed" in line for line in lines)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 270, 2)
    assert info["features"]["observation.state"]["names"] == JOINTS
    assert info["features"]["observation.images.head"]["shape"] == [*SIZE, 3]
    episodes = pq.read_table(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 120), (120, 210), (210, 270)]
    assert [e["aloe/outcome"] for e in episodes] == ["success", "failure", "success"]
    assert episodes[1]["videos/observation.images.head/from_timestamp"] == pytest.approx(120 / 50)
    frames = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet")
    done = frames.column("next.done").to_pylist()
    assert [i for i, d in enumerate(done) if d] == [119, 209, 269]  # each episode's last frame
    assert sum(frames.column("next.reward").to_pylist()) == 2.0  # the two successes
    assert not (out.parent / "dataset.partial").exists()


def test_reading_the_export_back_gives_the_episodes_the_bags_give(bags, exported):
    out, _, _ = exported
    direct = from_bags(bags)
    back = {episode.episode_id: episode for episode in read_dataset(out, SIZE)}
    assert sorted(back) == sorted(direct) == ["ep1", "ep2", "ep3"]
    for name, expected in direct.items():
        episode = back[name]
        np.testing.assert_array_equal(episode.joints, expected.joints)
        np.testing.assert_array_equal(episode.actions, expected.actions)
        np.testing.assert_array_equal(episode.operator, expected.operator)
        np.testing.assert_array_equal(episode.image_steps, expected.image_steps)
        np.testing.assert_allclose(episode.stage_progress, expected.stage_progress)
        assert (episode.outcome, episode.instruction, episode.task) == (expected.outcome, expected.instruction, expected.task)
        error = np.abs(episode.images.astype(int) - expected.images.astype(int))
        # H.264 at CRF 18, 4:2:0: about 2 levels on this sharp test pattern (0.6 on the simulator's
        # images); the image set one before or after is 18 levels away
        assert error.mean() < 3.0 and np.percentile(error, 99) < 24, (name, error.mean())


def test_a_dataset_without_aloe_metadata_reads_as_operator_data_with_outcome_from_reward(exported, tmp_path):
    out, _, _ = exported
    plain = tmp_path / "plain"
    __import__("shutil").copytree(out, plain)
    for path in (plain / "data").rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns([INTERVENTION]), path)
    for path in (plain / "meta" / "episodes").rglob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.drop_columns([name for name in table.column_names if name.startswith("aloe/")]), path)
    info = json.loads((plain / "meta" / "info.json").read_text())
    del info["features"][INTERVENTION]
    (plain / "meta" / "info.json").write_text(json.dumps(info))
    episodes = read_dataset(plain, SIZE)
    assert [e.outcome for e in episodes] == ["success", "failure", "success"]  # from next.reward
    assert all(e.operator.all() for e in episodes)  # no intervention flag: all the operator's
    assert list(episodes[0].image_steps) == list(range(0, 120, 10))  # 5 Hz image sets
    assert episodes[0].episode_id == "plain-0" and episodes[0].stage_progress is None


def test_bad_input_is_a_message(exported, tmp_path, capsys):
    out, _, _ = exported
    with pytest.raises(DataError, match="not empty"):
        export_bags([tmp_path], out)
    with pytest.raises(DataError, match="no episode bags"):
        export_bags([tmp_path], tmp_path / "new")
    with pytest.raises(DataError, match="not a LeRobot dataset"):
        read_dataset(tmp_path, SIZE)
    (tmp_path / "mapping.yaml").write_text("camera: {}\n")
    with pytest.raises(DataError, match="unknown mapping field"):
        DatasetMapping.from_yaml(tmp_path / "mapping.yaml")
    (tmp_path / "mapping.yaml").write_text("state: observation.joints\n")
    assert aloe(["train", "--lerobot", str(out), "--mapping", str(tmp_path / "mapping.yaml"), "--algo", "bc"]) == 2
    assert "no feature observation.joints" in capsys.readouterr().err


def test_the_cli_exports_and_trains_from_the_export(bags, tmp_path):
    out = tmp_path / "dataset"
    assert aloe(["export", str(bags), "--out", str(out), "--no-progress"]) == 0
    checkpoint = tmp_path / "bc.safetensors"
    assert aloe(["train", "--lerobot", str(out), "--algo", "bc", "--config", str(ROOT / "test" / "tiny_train.yaml"),
                 "--out", str(checkpoint), "--no-progress"]) == 0
    assert checkpoint.exists()


@pytest.fixture(scope="module")
def reader():
    """LeRobot's reader in its own environment (installed on first use, ~6 min)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "lerobot_reader.sh")], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    return ROOT / ".venv-lerobot" / "bin" / "python"


def test_lerobots_own_reader_sees_the_bags_frames(reader, bags, exported, tmp_path):
    out, _, _ = exported
    frames = [0, 57, 119, 120, 209, 269]
    seen = subprocess.run([str(reader), str(ROOT / "test" / "lerobot_reader.py"), str(out), *map(str, frames)],
                          capture_output=True, text=True, timeout=600, env={"HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"})
    assert seen.returncode == 0, seen.stderr[-3000:]
    seen = json.loads(seen.stdout)
    assert (seen["fps"], seen["episodes"], seen["frames"]) == (50, 3, 270)
    assert seen["boundaries"] == [[0, 120], [120, 210], [210, 270]]
    direct = from_bags(bags, image_size=None)
    starts = {"ep1": 0, "ep2": 120, "ep3": 210}
    for frame in frames:
        item = seen["items"][str(frame)]
        name = ["ep1", "ep2", "ep3"][item["episode_index"]]
        episode, step = direct[name], frame - starts[name]
        assert item["frame_index"] == step and item["timestamp"] == pytest.approx(step / 50, abs=1e-4)
        assert item["task"] == episode.instruction
        np.testing.assert_allclose(item["action"], episode.actions[step], rtol=1e-6)
        np.testing.assert_allclose(item["state"], episode.joints[step], rtol=1e-6)
        assert item["intervention"] == float(episode.operator[step])
        assert item["done"] == (step == len(episode) - 1)
        for c, camera in enumerate(CAMERAS):
            decoded = np.asarray(item["images"][f"observation.images.{camera}"], dtype=int)
            expected = episode.images[episode.image_index(step), c].astype(int)  # the newest image at or before the step
            assert decoded.shape == expected.shape and np.abs(decoded - expected).mean() < 3.0, (frame, camera)
