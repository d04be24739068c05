"""Chunk execution (latency compensation, replanning, ensembling) and observation sync."""
import numpy as np
import pytest

from aloe.control.chunking import Chunk, ChunkExecutor, ObservationSync


def ramp(start, horizon=10, offset=0.0):
    """A chunk whose step k commands start + k + offset: the value says which step it is."""
    return (np.arange(horizon, dtype=float)[:, None] + start + offset) * np.ones((1, 2))


def test_steps_already_past_when_the_chunk_arrives_are_skipped():
    executor = ChunkExecutor(replan_every=5)
    assert executor.tick() is None and executor.wants_observation()
    for _ in range(2):
        executor.tick()  # inference took 3 steps: the observation was at step 0, now it is step 3
    assert executor.add(Chunk(ramp(0), chunk_id=1, version="v1", start_step=0)) is None
    command = executor.tick()
    assert command.positions[0] == 3 and (command.chunk_id, command.step, command.version) == (1, 3, "v1")


def test_replans_every_n_steps_and_drops_a_chunk_that_arrives_too_late():
    executor = ChunkExecutor(replan_every=4)
    executor.add(Chunk(ramp(0), 1, "v1", start_step=0))
    wants = []
    for _ in range(10):
        wants.append(executor.wants_observation())
        executor.tick()
    assert wants[:4] == [False] * 4 and all(wants[4:])
    assert executor.tick() is None  # the 10-step chunk ran out
    reason = executor.add(Chunk(ramp(0), 2, "v1", start_step=0))
    assert "past" in reason


def test_a_chunk_planned_before_a_reset_is_dropped_not_indexed_backwards():
    executor = ChunkExecutor(replan_every=5)
    for _ in range(245):
        executor.tick()
    in_flight = Chunk(ramp(245), 7, "v1", start_step=245)  # observed at step 245 of the last episode
    executor.reset()  # a new episode starts while it is computed
    assert "predates a reset" in executor.add(in_flight)
    assert executor.tick() is None and executor.wants_observation()


def test_a_new_chunk_takes_over_at_once_and_ensembling_blends_overlaps():
    plain = ChunkExecutor(replan_every=2)
    plain.add(Chunk(ramp(0), 1, "v1", 0))
    plain.tick(), plain.tick()
    plain.add(Chunk(ramp(2, offset=100.0), 2, "v2", 2))
    command = plain.tick()
    assert command.positions[0] == 102 and command.version == "v2"  # the newest chunk only

    blended = ChunkExecutor(replan_every=2, temporal_ensembling=True, ensemble_decay=0.0)
    blended.add(Chunk(ramp(0), 1, "v1", 0))
    blended.tick(), blended.tick()
    blended.add(Chunk(ramp(2, offset=100.0), 2, "v2", 2))
    command = blended.tick()
    assert command.positions[0] == pytest.approx((2 + 102) / 2) and command.chunk_id == 2


def test_sync_picks_the_newest_set_within_the_skew_and_the_closest_joint_state():
    sync = ObservationSync(["a", "b"], max_skew_s=0.02, max_age_s=0.5)
    for k in range(10):
        sync.add_joints(k * 0.02, [k])
    sync.add_image("a", 0.10, np.full((2, 2, 3), 1, np.uint8))
    sync.add_image("b", 0.11, np.full((2, 2, 3), 2, np.uint8))
    sync.add_image("a", 0.16, np.full((2, 2, 3), 3, np.uint8))  # its partner from b has not come yet
    observation, reason = sync.latest(now=0.18)
    assert reason is None
    assert observation.images[:, 0, 0, 0].tolist() == [1, 2] and observation.joints[0] == 5  # 0.10 s
    assert observation.skew == pytest.approx(0.01)


def test_sync_names_missing_and_stale_cameras():
    sync = ObservationSync(["head", "left_wrist"], max_age_s=0.5)
    assert sync.latest(0.0) == (None, "no joint state yet")
    sync.add_joints(1.0, [0.0])
    sync.add_image("head", 1.0, np.zeros((2, 2, 3), np.uint8))
    assert sync.latest(1.0)[1] == "no image from camera left_wrist yet"
    sync.add_image("left_wrist", 0.2, np.zeros((2, 2, 3), np.uint8))
    assert sync.latest(1.0)[1] == "camera left_wrist stale: newest image is 0.80 s old"
    sync.add_joints(2.0, [0.0])
    sync.add_image("head", 2.0, np.zeros((2, 2, 3), np.uint8))
    sync.add_image("left_wrist", 2.3, np.zeros((2, 2, 3), np.uint8))
    assert "within 50 ms" in sync.latest(2.3)[1]
