"""Episode bags without ROS: write one rosbag2 (MCAP) per episode with `rosbags`, and
recover a bag whose writer was killed.

The writer takes messages already serialised (CDR, as DDS delivers them to a raw
subscription), so recording costs no decoding. A crashed writer must not take the episode
with it: every `flush_every_s` the pending MCAP chunk is closed and handed to the OS, so a
SIGKILL loses at most that much. Such a bag has no MCAP summary and no metadata.yaml;
`recover` rewrites it from its complete records into a bag every reader opens.
"""
import os
import shutil
import time
from pathlib import Path
from typing import Optional

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from aloe.control.command_arbiter import OPERATOR, POLICY

MCAP_SUFFIX = ".mcap"


class RecordingError(RuntimeError):
    """Recording cannot go on (disk full, bag exists, unknown type); the message says why."""


def aloe_typestore(msg_dir: Optional[Path] = None):
    """ROS 2 Kilted's types plus aloe_msgs, read from the installed .msg definitions."""
    if msg_dir is None:
        msg_dir = Path(__import__("aloe_msgs").__file__).resolve().parents[4] / "share" / "aloe_msgs" / "msg"
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"aloe_msgs/msg/{path.stem}"))
    if not types:
        raise RecordingError(f"no aloe_msgs message definitions in {msg_dir}")
    store.register(types)
    return store


class EpisodeBag:
    """One episode's rosbag2 directory, written as messages arrive."""

    def __init__(self, path: Path, topics: dict, typestore, flush_every_s: float = 0.5):
        """`topics`: topic name -> type name ("sensor_msgs/msg/Image")."""
        self.path = Path(path)
        self.flush_every_s = flush_every_s
        self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        try:
            self.writer.open()
            self.connections = {
                name: self.writer.add_connection(name, type_name, typestore=typestore) for name, type_name in topics.items()
            }
        except OSError as error:
            raise RecordingError(f"cannot create bag {self.path}: {error.strerror or error}") from None
        self.counts = dict.fromkeys(topics, 0)
        self.last_flush = time.monotonic()
        self.flush()  # schemas and channels on disk before the first message

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        try:
            self.writer.write(self.connections[topic], stamp_ns, data)
        except OSError as error:
            raise RecordingError(f"writing {self.path} failed: {error.strerror or error}") from None
        self.counts[topic] += 1
        if time.monotonic() - self.last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        # rosbags keeps the open MCAP chunk in memory until it holds 1 MiB and has no flush
        # of its own: close the chunk and push the file buffer to the OS, so what was
        # recorded so far survives a killed process.
        storage = self.writer.storage
        try:
            storage.close_chunk()
            storage.bio.flush()
        except OSError as error:
            raise RecordingError(f"flushing {self.path} failed: {error.strerror or error}") from None
        self.last_flush = time.monotonic()

    def close(self, metadata: dict) -> None:
        """Finish the bag: MCAP summary, and metadata.yaml with `metadata` as custom data."""
        try:
            for key, value in metadata.items():
                self.writer.set_custom_data(f"aloe.{key}", str(value))
            self.writer.close()
        except OSError as error:
            raise RecordingError(f"closing {self.path} failed: {error.strerror or error}") from None


def mcap_files(bag: Path) -> list:
    return sorted(Path(bag).glob(f"*{MCAP_SUFFIX}"))


def needs_recovery(bag: Path) -> bool:
    """A bag directory whose writer never finished (no metadata.yaml)."""
    bag = Path(bag)
    return bag.is_dir() and not (bag / "metadata.yaml").exists() and bool(mcap_files(bag))


def recover(bag: Path, typestore) -> int:
    """Rewrite a crashed bag from its complete records; returns the messages kept.

    Raises RecordingError when nothing in it can be read."""
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    bag = Path(bag)
    files = mcap_files(bag)
    if not files:
        raise RecordingError(f"{bag}: no MCAP file to recover")
    schemas, channels, messages = {}, {}, []  # schema id -> type; channel id -> (topic, schema id)
    with open(files[0], "rb") as stream:
        try:
            for record in StreamReader(stream).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record.name
                elif isinstance(record, Channel):
                    channels[record.id] = (record.topic, record.schema_id)
                elif isinstance(record, Message):
                    messages.append((record.channel_id, record.log_time, record.data))
        except McapError:
            pass  # the record the writer was killed in: everything before it is kept
    if not channels:
        raise RecordingError(f"{bag}: the writer was killed before anything was written")
    staging = bag.with_name(bag.name + ".recovering")
    if staging.exists():
        shutil.rmtree(staging)
    writer = Writer(staging, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {
        cid: writer.add_connection(topic, schemas[schema_id], typestore=typestore) for cid, (topic, schema_id) in channels.items()
    }
    for cid, stamp, data in sorted(messages, key=lambda m: m[1]):
        writer.write(connections[cid], stamp, data)
    writer.set_custom_data("aloe.outcome", "truncated")
    writer.set_custom_data("aloe.recovered", "the recorder stopped before closing the bag")
    writer.close()
    # Swap the directories so that a crash in here leaves one complete copy.
    broken = bag.with_name(bag.name + ".broken")
    os.rename(bag, broken)
    os.rename(staging, bag)
    (bag / f"{staging.name}{MCAP_SUFFIX}").rename(bag / f"{bag.name}{MCAP_SUFFIX}")
    _rename_in_metadata(bag, staging.name, bag.name)
    shutil.rmtree(broken)
    return len(messages)


def _rename_in_metadata(bag: Path, old: str, new: str) -> None:
    metadata = bag / "metadata.yaml"
    metadata.write_text(metadata.read_text().replace(f"{old}{MCAP_SUFFIX}", f"{new}{MCAP_SUFFIX}"))


class EpisodeLog:
    """What the bag's metadata says about an episode: who drove and which policies ran."""

    def __init__(self, start_event: dict):
        self.start = start_event  # episode_id, task, instruction, seed, variant
        self.commands = []  # (stamp ns, received s, source, policy version) of each command step

    def on_command(self, time_s: float, source: int, policy_version: str, stamp_ns: int = 0) -> None:
        self.commands.append((stamp_ns, time_s, source, policy_version))

    def metadata(self, outcome: str, reason: str, end_s: float, end_stamp_ns: int = 0) -> dict:
        """end_stamp_ns: the end event's stamp. Commands stamped after it reach the recorder
        before the event does (another topic), but are not the episode's: the reading of the bag
        drops them too. Unstamped commands count."""
        commands = [c for c in self.commands if not end_stamp_ns or c[0] <= end_stamp_ns]
        interventions, policy_versions = [], []  # [start s, end s] of each stretch the operator drove
        for _, time_s, source, policy_version in commands:
            operator_driving = bool(interventions) and interventions[-1][1] is None
            if source == OPERATOR and not operator_driving:
                interventions.append([time_s, None])
            elif source == POLICY and operator_driving:
                # Only the policy driving again ends the stretch: a HOLD inside it is the mux
                # holding for an operator whose sample came late, still the operator's control.
                interventions[-1][1] = time_s
            if policy_version and policy_version not in policy_versions:
                policy_versions.append(policy_version)
        lengths = [(end if end is not None else end_s) - start for start, end in interventions]
        return {
            **self.start,
            "outcome": outcome,
            "reason": reason,
            "command_steps": len(commands),
            "policy_versions": ",".join(policy_versions),
            "interventions": len(lengths),
            "intervention_seconds": ",".join(f"{length:.2f}" for length in lengths),
        }
